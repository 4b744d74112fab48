#!/usr/bin/env bash
# Runs the benchmarks of this module and prints a benchstat table and the
# target ratios (cmd/targets). The raw `go test -bench` output is kept in
# results/latest.txt, the report in results/latest.md.
#
#   ./run.sh                 # -count 6, every benchmark
#   COUNT=3 ./run.sh         # fewer runs
#   BENCH='Sessions/read' ./run.sh
#
# Redis and PostgreSQL are reached as the tests reach them
# (FASTSESSION_REDIS_ADDR, FASTSESSION_PG_DSN); without them their
# benchmarks skip.
set -uo pipefail
cd "$(dirname "$0")"
export GOWORK=off # the module's own go.mod, whatever the workspace holds

count=${COUNT:-6}
pattern=${BENCH:-.}
out=${OUT:-results}
mkdir -p "$out"
raw=$out/latest.txt
report=$out/latest.md

benchstat=$(command -v benchstat || true)
if [ -z "$benchstat" ]; then
	benchstat="$(go env GOPATH)/bin/benchstat"
	if [ ! -x "$benchstat" ]; then
		echo "installing benchstat" >&2
		go install golang.org/x/perf/cmd/benchstat@latest || exit 1
	fi
fi

# Other work on the machine skews the numbers: sample the load meanwhile.
loadlog=$(mktemp)
(while :; do cut -d' ' -f1 /proc/loadavg >>"$loadlog"; sleep 10; done) &
sampler=$!
trap 'kill "$sampler" 2>/dev/null; rm -f "$loadlog"' EXIT

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u)
go test -run '^$' -bench "$pattern" -benchmem -count "$count" -timeout 60m | tee "$raw"
status=${PIPESTATUS[0]}
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
load_range=$(sort -g "$loadlog" | sed -n '1p;$p' | paste -sd' ' | sed 's/ / to /')

{
	echo "# FastSession benchmarks"
	echo
	echo "- date: $started"
	echo "- machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
	echo "- $(go version)"
	echo "- code: $(git -C .. log -1 --format='%h %s' 2>/dev/null || echo unknown)$(git -C .. status --porcelain -- . ':!bench' 2>/dev/null | grep -q . && echo ', with uncommitted changes outside bench/')"
	echo "- load average (1, 5, 15 min) before: $load_before; after: $load_after; 1-min load during the run, sampled every 10 s: $load_range"
	echo "- command: go test -run '^\$' -bench '$pattern' -benchmem -count $count"
	[ "$status" -ne 0 ] && echo "- go test FAILED (status $status): see $raw"
	echo
	echo "## benchstat"
	echo
	echo '```'
	"$benchstat" "$raw"
	echo '```'
	echo
	echo "## Targets"
	echo
	go run ./cmd/targets "$raw"
} | tee "$report"

exit "$status"
