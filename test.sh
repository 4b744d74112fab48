#!/usr/bin/env bash
# Runs every check and every test of every module: gofmt, go vet, and
# go test -race -count=1 (the library, each store, the examples, the
# benchmark module). Store tests need their servers; see README.md.
set -uo pipefail
cd "$(dirname "$0")"

fail=0
unformatted=$(gofmt -l . | grep -v '^_examples/.*/testdata/' || true)
if [ -n "$unformatted" ]; then
	echo "gofmt: these files need formatting:"
	echo "$unformatted"
	fail=1
fi

# Every module of the workspace, the _examples one included (./... skips
# folders starting with an underscore, so each module is run on its own).
mapfile -t modules < <(go list -m -f '{{.Dir}}')
for dir in "${modules[@]}"; do
	rel=${dir#"$PWD"/}
	[ "$rel" = "$dir" ] && rel=.
	echo "== $rel"
	if ! (cd "$dir" && go vet ./...); then
		echo "go vet failed in $rel"
		fail=1
	fi
	if ! (cd "$dir" && go test -race -count=1 ./...); then
		echo "go test failed in $rel"
		fail=1
	fi
done

# Each fuzz target runs for a bounded time on top of its committed seed
# corpus (testdata/fuzz), so every run explores new inputs. Minimizing a
# new interesting input may take go test up to a minute by default, with no
# new input tried meanwhile; 3 s keeps the budget for exploring.
FUZZTIME=${FUZZTIME:-20s}
for dir in "${modules[@]}"; do
	rel=${dir#"$PWD"/}
	[ "$rel" = "$dir" ] && rel=.
	for target in $(cat "$dir"/*_test.go 2>/dev/null | grep -o '^func Fuzz[A-Za-z]*' | cut -d' ' -f2); do
		echo "== fuzz $rel $target ($FUZZTIME)"
		if ! (cd "$dir" && go test -run '^$' -fuzz "^$target\$" -fuzztime "$FUZZTIME" -fuzzminimizetime 3s .); then
			echo "fuzzing $target in $rel failed"
			fail=1
		fi
	done
done

if [ "$fail" -ne 0 ]; then
	echo "FAILED"
	exit 1
fi
echo "all modules passed"
