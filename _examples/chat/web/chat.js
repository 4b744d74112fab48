// The chat page's script: sends a message and shows the reply as it
// streams. Text goes into the page through textContent only, never as HTML.
"use strict";

(function () {
  const form = document.getElementById("send");
  const input = document.getElementById("text");
  const button = document.getElementById("send-button");
  const log = document.getElementById("log");
  const hint = document.getElementById("hint");
  const chats = document.getElementById("chats");

  function add(role, text) {
    const li = document.createElement("li");
    li.className = "msg " + role;
    li.textContent = text;
    log.appendChild(li);
    hint.hidden = true;
    li.scrollIntoView({ block: "end" });
    return li;
  }

  // events reads a text/event-stream body and yields {event, data}, with
  // data parsed as JSON.
  async function* events(body) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += value;
      let end;
      while ((end = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, end);
        buf = buf.slice(end + 2);
        let event = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) event = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5));
        }
        yield { event, data: JSON.parse(data.join("\n")) };
      }
    }
  }

  // showChat puts the conversation on top of the list, and in the address
  // bar so that a reload shows it again.
  function showChat(id, title, turn) {
    form.elements.c.value = id;
    log.dataset.chat = id;
    history.replaceState(null, "", "/?c=" + encodeURIComponent(id));
    let li = null;
    for (const a of chats.querySelectorAll("a")) {
      a.removeAttribute("aria-current");
      if (a.getAttribute("href") === "/?c=" + id) li = a.parentElement;
    }
    if (!li) {
      li = document.createElement("li");
      const a = document.createElement("a");
      a.href = "/?c=" + id;
      a.textContent = title;
      const turns = document.createElement("span");
      turns.className = "turns";
      turns.title = "turns";
      li.append(a, " ", turns);
    }
    li.querySelector("a").setAttribute("aria-current", "page");
    li.querySelector(".turns").textContent = String(turn);
    chats.prepend(li);
  }

  async function send(text) {
    add("user", text);
    const reply = add("bot streaming", "");
    try {
      const resp = await fetch(form.action, {
        method: "POST",
        headers: { Accept: "text/event-stream" },
        body: new URLSearchParams({ c: form.elements.c.value, text }),
      });
      const type = resp.headers.get("Content-Type") || "";
      if (!resp.ok || !type.startsWith("text/event-stream")) {
        throw new Error((await resp.text()) || resp.statusText);
      }
      for await (const { event, data } of events(resp.body)) {
        if (event === "chat") showChat(data.id, data.title, data.turn);
        else if (event === "token") reply.textContent += data.text;
        else if (event === "error") throw new Error(data.error);
        else if (event === "done") reply.classList.remove("streaming");
      }
      if (reply.classList.contains("streaming")) throw new Error("the reply was cut off");
    } catch (err) {
      reply.classList.remove("streaming");
      reply.classList.add("error");
      reply.textContent += (reply.textContent ? " " : "") + "(" + err.message + ")";
    }
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text || log.getAttribute("aria-busy") === "true") return;
    input.value = "";
    log.setAttribute("aria-busy", "true");
    button.disabled = true;
    try {
      await send(text);
    } finally {
      log.setAttribute("aria-busy", "false");
      button.disabled = false;
      input.focus();
    }
  });

  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit();
    }
  });

  log.setAttribute("aria-busy", "false");
  if (log.lastElementChild) log.lastElementChild.scrollIntoView({ block: "end" });
  input.focus();
})();
