#!/usr/bin/env bash
# Load-tests the read route over real HTTP on loopback: bare Gin against
# FastSession on its memory store (cmd/server), each with
# `wrk -t2 -c64 -d10s`, and prints requests/s and their ratio. Both servers
# get the very same requests, session cookie included (bare Gin ignores
# it), so the ratio is the middleware's cost and not that of a longer
# request. The two alternate for ROUNDS rounds (default 3) and the median
# ratio is reported, since a shared machine drifts.
# DURATION (default 10s) changes the length of each run. wrk is installed
# with apt-get when missing.
set -euo pipefail
cd "$(dirname "$0")"
export GOWORK=off

duration=${DURATION:-10s}
rounds=${ROUNDS:-3}
tmp=$(mktemp -d)
server_pid=""

stop_server() {
	if [ -n "$server_pid" ]; then
		kill "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
		server_pid=""
	fi
}
trap 'stop_server; rm -rf "$tmp"' EXIT

if ! command -v wrk >/dev/null 2>&1; then
	echo "installing wrk" >&2
	sudo=""
	[ "$(id -u)" -ne 0 ] && sudo=sudo
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq wrk >/dev/null
fi

go build -o "$tmp/server" ./cmd/server

rps=""
cookie=""
url=""
# start MODE: starts the server and sets url, and in session mode cookie:
# each session server has its own key and store, so it mints its own. Bare
# Gin is sent the last one minted, a request of the same size.
start() {
	local mode=$1
	url=""
	"$tmp/server" -mode "$mode" >"$tmp/$mode.out" 2>"$tmp/$mode.err" &
	server_pid=$!
	for _ in $(seq 1 100); do
		grep -q '^url ' "$tmp/$mode.out" 2>/dev/null && break
		kill -0 "$server_pid" 2>/dev/null || break
		sleep 0.1
	done
	url=$(sed -n 's/^url //p' "$tmp/$mode.out")
	if [ "$mode" = session ]; then
		cookie=$(sed -n 's/^cookie //p' "$tmp/$mode.out")
	fi
	if [ -z "$url" ]; then
		echo "the $mode server did not start:" >&2
		cat "$tmp/$mode.err" >&2
		exit 1
	fi
	case $url in
	http://127.0.0.1:*) ;;
	*) echo "refusing a non-loopback URL: $url" >&2; exit 1 ;;
	esac
}

# measure MODE: starts the server, runs wrk against it, stops the server
# and sets rps to the requests/s measured. It runs in this shell, not in a
# subshell, so the EXIT trap always sees the server to stop.
measure() {
	local mode=$1 line
	start "$mode"
	timeout 120 wrk -t2 -c64 -d"$duration" -H "Cookie: $cookie" "$url" >"$tmp/$mode.wrk"
	stop_server
	if grep -q 'Non-2xx or 3xx responses' "$tmp/$mode.wrk"; then
		echo "the $mode server answered errors:" >&2
		cat "$tmp/$mode.wrk" >&2
		exit 1
	fi
	line=$(grep '^Requests/sec:' "$tmp/$mode.wrk") || {
		cat "$tmp/$mode.wrk" >&2
		exit 1
	}
	rps=${line##* }
}

echo "wrk -t2 -c64 -d$duration on $(nproc) CPUs, $rounds rounds, load average $(cut -d' ' -f1-3 /proc/loadavg)"
# The session server mints its cookie: start it once first so that bare
# Gin, measured first in each round, gets the same Cookie header.
start session
stop_server
results=()
for round in $(seq 1 "$rounds"); do
	measure bare
	bare=$rps
	measure session
	results+=("$bare $rps")
done
printf '%s\n' "${results[@]}" | awk '
	BEGIN { printf "| round | bare gin requests/s | fastsession memstore read requests/s | ratio |\n|---|---|---|---|\n" }
	{ printf "| %d | %.0f | %.0f | %.3f |\n", NR, $1, $2, $2 / $1 }'
median=$(printf '%s\n' "${results[@]}" | awk '{ printf "%.6f\n", $2 / $1 }' | sort -g |
	awk '{ r[NR] = $1 } END { printf "%.3f", (NR % 2) ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2 }')
echo
echo "fastsession / bare, median of $rounds rounds: $median"
