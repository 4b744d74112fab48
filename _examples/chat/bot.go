package main

import (
	"fmt"
	"strings"
)

// botReply is the toy bot: deterministic, local, and answering from the
// conversation's history, so the history can be seen at work. msgs is the
// history the session kept, ending with the visitor's new message; turn is
// its number, counting turns the cap has dropped; limit is the cap.
func botReply(msgs []message, turn, limit int) string {
	var said []string // the visitor's messages, oldest first
	for _, m := range msgs {
		if m.Role == roleUser {
			said = append(said, m.Text)
		}
	}
	text := said[len(said)-1]
	q := strings.Trim(strings.ToLower(strings.Join(strings.Fields(text), " ")), " ?!.")
	dropped := turn - len(said) // turns the cap has dropped

	switch {
	case strings.Contains(q, "say first") || strings.Contains(q, "first message"):
		switch {
		case dropped > 0:
			return fmt.Sprintf("I keep only the last %d messages, so your first %d turns are gone. The first thing you said that I still have: %s", limit, dropped, quote(said[0]))
		case len(said) == 1:
			return "This is your first message: " + quote(text)
		}
		return "You first said: " + quote(said[0])
	case strings.Contains(q, "just say") || strings.Contains(q, "say last") || strings.Contains(q, "previous message"):
		if len(said) < 2 {
			return "Nothing yet: this is your first message."
		}
		return "Before this, you said: " + quote(said[len(said)-2])
	case strings.Contains(q, "how many turns") || strings.Contains(q, "how many messages"):
		return fmt.Sprintf("This is turn %d. I remember %d messages of this conversation, counting yours just now.", turn, len(msgs))
	case q == "help":
		return `Ask me "what did I say first?", "what did I just say?" or "how many turns?". Anything else, I echo.`
	}
	return fmt.Sprintf("Turn %d. You said: %s", turn, quote(text))
}

func quote(s string) string { return "“" + s + "”" }

// tokens splits a reply into the pieces streamed one by one: words with
// the space that follows them.
func tokens(reply string) []string {
	return strings.SplitAfter(reply, " ")
}
