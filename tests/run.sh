#!/usr/bin/env bash
# Runs every unit-test binary of BUILD/tests and every tests/integration/*.sh,
# adds up their "N passed, N failed" lines and ends with the total in the same form.
# Usage: tests/run.sh [BUILD]   (CT_SAN=1 under the sanitizers; TEST_FILTER=substr)
set -u
BUILD=${1:-build}
export CT_BUILD=$BUILD
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$(pwd)/tests/lsan.supp:print_suppressions=0}
passed=0
failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

run_one() { # name command...
	local name=$1; shift
	if [ -n "${TEST_FILTER:-}" ] && [[ "$name" != *"$TEST_FILTER"* ]]; then return; fi
	"$@" >"$log" 2>&1
	local rc=$?
	cat "$log"
	local line
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
	if [ -n "$line" ]; then
		local p f
		p=$(echo "$line" | awk '{print $1}')
		f=$(echo "$line" | awk '{print $3}')
		passed=$((passed + p))
		failed=$((failed + f))
		if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
			echo "FAIL $name: exit status $rc after its summary"
			failed=$((failed + 1))
		fi
	else
		echo "FAIL $name: no summary line (exit status $rc)"
		failed=$((failed + 1))
	fi
}

for t in "$BUILD"/tests/*_test; do
	[ -x "$t" ] || continue
	run_one "$(basename "$t")" "$t"
done
for t in tests/integration/*.sh; do
	[ -f "$t" ] || continue
	case "$(basename "$t")" in lib*.sh) continue ;; esac  # shared helpers
	run_one "$(basename "$t")" bash "$t" "$BUILD"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
