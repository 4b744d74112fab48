#!/usr/bin/env bash
# Load-tests the read route over real HTTP on loopback: bare Gin against
# FastSession on its memory store (cmd/server), each with
# `wrk -t2 -c64 -d10s`, and prints requests/s and their ratio.
# DURATION (default 10s) changes the length of each run. wrk is installed
# with apt-get when missing.
set -euo pipefail
cd "$(dirname "$0")"
export GOWORK=off

duration=${DURATION:-10s}
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

# measure MODE: starts the server, runs wrk against it, stops the server
# and sets rps to the requests/s measured. It runs in this shell, not in a
# subshell, so the EXIT trap always sees the server to stop.
rps=""
measure() {
	local mode=$1 url="" cookie="" line
	"$tmp/server" -mode "$mode" >"$tmp/$mode.out" 2>"$tmp/$mode.err" &
	server_pid=$!
	for _ in $(seq 1 100); do
		grep -q '^url ' "$tmp/$mode.out" 2>/dev/null && break
		kill -0 "$server_pid" 2>/dev/null || break
		sleep 0.1
	done
	url=$(sed -n 's/^url //p' "$tmp/$mode.out")
	cookie=$(sed -n 's/^cookie //p' "$tmp/$mode.out")
	if [ -z "$url" ]; then
		echo "the $mode server did not start:" >&2
		cat "$tmp/$mode.err" >&2
		exit 1
	fi
	case $url in
	http://127.0.0.1:*) ;;
	*) echo "refusing a non-loopback URL: $url" >&2; exit 1 ;;
	esac
	local args=(-t2 -c64 -d"$duration")
	[ -n "$cookie" ] && args+=(-H "Cookie: $cookie")
	timeout 120 wrk "${args[@]}" "$url" >"$tmp/$mode.wrk"
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

echo "wrk -t2 -c64 -d$duration on $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
measure bare
bare=$rps
measure session
session=$rps
awk -v b="$bare" -v s="$session" 'BEGIN {
	printf "| server | requests/s |\n|---|---|\n"
	printf "| bare gin | %.0f |\n| fastsession memstore read | %.0f |\n", b, s
	printf "\nfastsession / bare: %.3f\n", s / b
}'
