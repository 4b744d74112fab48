#!/usr/bin/env bash
# Runs the benchmarks of this module and prints a benchstat table and the
# target ratios (cmd/targets). The raw `go test -bench` output is kept in
# results/latest.txt, the report in results/latest.md. The raw output of the
# run before is kept in results/previous.txt, and the report ends with a
# benchstat comparison of the two (time per request only).
#
#   ./run.sh                 # 6 rounds of every benchmark
#   COUNT=3 ./run.sh         # fewer rounds
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

# CPU time the hypervisor gave to other guests (steal) slows everything
# down unevenly: report its share of the run.
cpu_ticks() { awk '/^cpu / { print $2+$3+$4+$5+$6+$7+$8+$9, $9 }' /proc/stat; }
read -r total_before steal_before < <(cpu_ticks)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u)
# One pass over every benchmark per round, COUNT rounds: the implementations
# alternate, so a drift of the shared machine touches them all alike instead
# of whichever happened to run during it (go test -count would run each
# benchmark's repetitions back to back).
bin=$(mktemp -d)/bench.test
trap 'kill "$sampler" 2>/dev/null; rm -f "$loadlog"; rm -rf "$(dirname "$bin")"' EXIT
go test -c -o "$bin" . || exit 1
status=0
previous=$out/previous.txt
[ -s "$raw" ] && cp "$raw" "$previous"
: >"$raw"
for round in $(seq 1 "$count"); do
	echo "== round $round of $count" >&2
	"$bin" -test.run '^$' -test.bench "$pattern" -test.benchmem -test.count 1 -test.timeout 60m >"$raw.round" || status=$?
	cat "$raw.round"
	# The header lines (goos, pkg, ...) once; results every round.
	if [ "$round" -eq 1 ]; then
		cat "$raw.round" >>"$raw"
	else
		grep -v -E '^(goos|goarch|pkg|cpu):' "$raw.round" | grep -v -E '^(PASS|ok)' >>"$raw"
	fi
done
rm -f "$raw.round"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
read -r total_after steal_after < <(cpu_ticks)
steal=$(awk -v t=$((total_after - total_before)) -v s=$((steal_after - steal_before)) 'BEGIN { printf "%.1f%%", (t > 0 ? 100 * s / t : 0) }')
load_range=$(sort -g "$loadlog" | sed -n '1p;$p' | paste -sd' ' | sed 's/ / to /')

{
	echo "# FastSession benchmarks"
	echo
	echo "- date: $started"
	echo "- machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
	echo "- $(go version)"
	echo "- code: $(git -C .. log -1 --format='%h %s' 2>/dev/null || echo unknown)$(git -C .. status --porcelain -- . ':!bench' 2>/dev/null | grep -q . && echo ', with uncommitted changes outside bench/')"
	echo "- load average (1, 5, 15 min) before: $load_before; after: $load_after; 1-min load during the run, sampled every 10 s: $load_range; CPU time stolen by the hypervisor: $steal"
	echo "- command: $count rounds of go test -run '^\$' -bench '$pattern' -benchmem -count 1 (the implementations alternate)"
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
	if [ -s "$previous" ] && [ "$status" -eq 0 ]; then
		echo
		echo "## Against the previous run"
		echo
		echo "The same benchmarks in the run before this one (results/previous.txt), time per request. Unchanged code moves between runs with the shared machine: a change shows as a shift of its own benchmarks against the rest. cpu is ignored, as the host's processor name can change between runs."
		echo
		echo '```'
		"$benchstat" -ignore cpu -filter '.unit:sec/op' previous="$previous" latest="$raw"
		echo '```'
	fi
} | tee "$report"

exit "$status"
