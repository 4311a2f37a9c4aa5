#!/usr/bin/env bash
# Runs every libFuzzer target of BUILD/bin (or only the NAMEs given) for SECONDS
# each over its corpus in tests/fuzz/corpus/NAME (copied to a scratch dir so
# the tree stays clean). A crash, leak, timeout or OOM input is kept in
# BUILD/artifacts/NAME/ with the command that reproduces it.
# Usage: tests/fuzz/run.sh [BUILD] [SECONDS] [NAME...]
# Ends with "N passed, N failed" (a target that finds anything fails).
set -u
BUILD=${1:-build/fuzz}
SECS=${2:-60}
shift $(( $# > 2 ? 2 : $# ))
passed=0; failed=0
for f in "$BUILD"/bin/*_fuzz; do
	[ -x "$f" ] || continue
	name=$(basename "$f")
	if [ $# -gt 0 ] && [[ " $* " != *" $name "* ]]; then continue; fi
	work=$(mktemp -d)
	arts=$(mktemp -d)
	[ -d "tests/fuzz/corpus/$name" ] && cp -r "tests/fuzz/corpus/$name/." "$work/"
	if ASAN_OPTIONS=detect_leaks=1 "$f" -max_total_time="$SECS" -max_len=65536 \
		-timeout=10 -artifact_prefix="$arts/" -print_final_stats=0 "$work" \
		>"$work.log" 2>&1; then
		echo "ok   fuzz.$name (${SECS}s, $(ls "$work" | wc -l) corpus entries)"
		passed=$((passed + 1))
	else
		echo "FAIL fuzz.$name: see below"; tail -n 40 "$work.log"
		mkdir -p "$BUILD/artifacts/$name"
		for a in "$arts"/*; do
			[ -f "$a" ] || continue
			cp "$a" "$BUILD/artifacts/$name/"
			echo "  kept $BUILD/artifacts/$name/$(basename "$a");" \
				"reproduce: $f $BUILD/artifacts/$name/$(basename "$a")"
		done
		failed=$((failed + 1))
	fi
	rm -rf "$work" "$work.log" "$arts"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
