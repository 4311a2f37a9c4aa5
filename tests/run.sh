#!/usr/bin/env bash
# Runs every unit-test binary of BUILD/tests and every tests/integration/*.sh,
# adds up their "N passed, N failed" lines and ends with the total in the same form.
# Usage: tests/run.sh [BUILD]
#   CT_SAN=1 under the sanitizers; TEST_FILTER=substr runs matching ones only;
#   CT_JOBS=N integration scripts at once (default 3: they stream in real time
#   and mostly wait, each on its own ports).
set -u
BUILD=${1:-build}
export CT_BUILD=$BUILD
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$(pwd)/tests/lsan.supp:print_suppressions=0}
passed=0
failed=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

selected() { [ -z "${TEST_FILTER:-}" ] || [[ "$1" == *"$TEST_FILTER"* ]]; }

# Prints a finished run's output and adds its summary line to the totals.
tally() { # name exit-status output-file
	local name=$1 rc=$2 out=$3 line p f
	cat "$out"
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -n 1)
	if [ -z "$line" ]; then
		echo "FAIL $name: no summary line (exit status $rc)"
		failed=$((failed + 1))
		return
	fi
	p=$(echo "$line" | awk '{print $1}')
	f=$(echo "$line" | awk '{print $3}')
	passed=$((passed + p))
	failed=$((failed + f))
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "FAIL $name: exit status $rc after its summary"
		failed=$((failed + 1))
	fi
}

for t in "$BUILD"/tests/*_test; do
	[ -x "$t" ] || continue
	selected "$(basename "$t")" || continue
	"$t" >"$work/unit.out" 2>&1
	tally "$(basename "$t")" $? "$work/unit.out"
done

scripts=()
for t in tests/integration/*.sh; do
	[ -f "$t" ] || continue
	case "$(basename "$t")" in lib*.sh) continue ;; esac  # shared helpers
	selected "$(basename "$t")" && scripts+=("$t")
done
for i in "${!scripts[@]}"; do
	while [ "$(jobs -rp | wc -l)" -ge "${CT_JOBS:-3}" ]; do sleep 0.2; done
	( bash "${scripts[$i]}" "$BUILD" >"$work/$i.out" 2>&1; echo $? >"$work/$i.rc" ) &
done
wait
for i in "${!scripts[@]}"; do
	tally "$(basename "${scripts[$i]}")" "$(cat "$work/$i.rc" 2>/dev/null || echo 1)" "$work/$i.out"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
