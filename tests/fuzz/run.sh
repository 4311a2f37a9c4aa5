#!/usr/bin/env bash
# Runs every libFuzzer target of BUILD/bin for SECONDS each over its corpus in
# tests/fuzz/corpus/NAME (copied to a scratch dir so the tree stays clean).
# Ends with "N passed, N failed" (a target that finds a crash fails).
set -u
BUILD=${1:-build/fuzz}
SECS=${2:-60}
passed=0; failed=0
for f in "$BUILD"/bin/*_fuzz; do
	[ -x "$f" ] || continue
	name=$(basename "$f")
	work=$(mktemp -d)
	[ -d "tests/fuzz/corpus/$name" ] && cp -r "tests/fuzz/corpus/$name/." "$work/"
	if ASAN_OPTIONS=detect_leaks=1 "$f" -max_total_time="$SECS" -max_len=65536 \
		-artifact_prefix="$work/" -print_final_stats=0 "$work" >"$work.log" 2>&1; then
		echo "ok   fuzz.$name (${SECS}s, $(ls "$work" | wc -l) corpus entries)"
		passed=$((passed + 1))
	else
		echo "FAIL fuzz.$name: see below"; tail -n 40 "$work.log"
		ls "$work"/crash-* "$work"/leak-* 2>/dev/null
		failed=$((failed + 1))
	fi
	rm -rf "$work" "$work.log"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
