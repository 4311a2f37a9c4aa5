#!/usr/bin/env bash
# make test-gpu: the GPU tests (BUILD/tests/gpu_test: CUDA ring across two
# processes with IPC opens counted, SIGKILL cycles with device memory back to
# baseline, discovery, probe, NVML, the invert_cuda plugin) and the GPU
# benchmark (BUILD/bench/gpu_ring). Without a GPU the GPU cases print
# "skipped: no GPU" and pass. Ends with "N passed, N failed".
# Usage: tests/run-gpu.sh [BUILD]
#        tests/run-gpu.sh --bundle OUT.tar.zst [BUILD]
# --bundle packs what the GPU checks need onto a machine without Debian's
# packages (the device tool's): BUILD/{tests/gpu_test,bench/gpu_ring,
# plugins/invert_cuda.so}, this script, and every shared library they load
# except glibc's. OUT.tar.xz (xz -6: 40 MB, ~2 min) unpacks with Python
# alone; OUT.tar.zst (zstd -3: 54 MB, seconds) needs zstd there. Then:
#   python3 -c 'import tarfile; tarfile.open("OUT.tar.xz").extractall("/tmp/g")'
#   cd /tmp/g && LD_LIBRARY_PATH=/tmp/g/lib ./run-gpu.sh build
set -u
if [ "${1:-}" = "--bundle" ]; then
	OUTF=${2:?--bundle needs an output file}
	BUILD=${3:-build}
	stage=$(mktemp -d)
	trap 'rm -rf "$stage"' EXIT
	mkdir -p "$stage/build/tests" "$stage/build/bench" "$stage/build/plugins" "$stage/lib"
	cp "$BUILD/tests/gpu_test" "$stage/build/tests/" || exit 1
	cp "$BUILD/bench/gpu_ring" "$stage/build/bench/" || exit 1
	cp "$BUILD/plugins/invert_cuda.so" "$stage/build/plugins/" 2>/dev/null ||
		echo "run-gpu: no $BUILD/plugins/invert_cuda.so (CUDA=0 build?)" >&2
	cp "$0" "$stage/run-gpu.sh"
	for b in "$stage"/build/tests/gpu_test "$stage"/build/bench/gpu_ring; do
		ldd "$b" | awk '$3 ~ /^\// {print $3}'
	done | sort -u | grep -v -E '/(libc|libm|libpthread|libdl|librt|libresolv|ld-linux[^/]*)\.so' |
		while read -r l; do cp -L "$l" "$stage/lib/"; done
	case $OUTF in
	*.tar.xz) tar -C "$stage" -cf - . | xz -T2 -"${XZ_LEVEL:-6}" >"$OUTF" || exit 1 ;;
	*) tar -C "$stage" -cf - . | zstd -q -T2 -"${ZSTD_LEVEL:-3}" -o "$OUTF" -f || exit 1 ;;
	esac
	echo "run-gpu: $(du -h "$OUTF" | cut -f1) in $OUTF ($(ls "$stage/lib" | wc -l) libraries)"
	exit 0
fi
BUILD=${1:-build}
export CT_BUILD=$BUILD
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=0}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$(pwd)/tests/lsan.supp:print_suppressions=0}
passed=0
failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

echo "== machine"
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >"$log" 2>&1; then
	cat "$log"
	nvidia-smi --query-gpu=name,memory.total,driver_version,mig.mode.current \
		--format=csv,noheader 2>/dev/null
else
	echo "skipped: no GPU (nvidia-smi finds none); host-side cases still run"
fi
grep -qi gvisor /proc/version 2>/dev/null && echo "runtime: gVisor (CUDA IPC may fail)"
grep -qi microsoft /proc/sys/kernel/osrelease 2>/dev/null && echo "runtime: WSL2 (no CUDA IPC)"

echo "== gpu_test"
if [ -x "$BUILD/tests/gpu_test" ]; then
	"$BUILD/tests/gpu_test" >"$log" 2>&1
	rc=$?
	cat "$log"
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
	if [ -n "$line" ]; then
		passed=$((passed + $(echo "$line" | awk '{print $1}')))
		f=$(echo "$line" | awk '{print $3}')
		failed=$((failed + f))
		[ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && failed=$((failed + 1))
	else
		echo "FAIL gpu_test: no summary line (exit status $rc)"
		failed=$((failed + 1))
	fi
else
	echo "FAIL gpu_test: $BUILD/tests/gpu_test not built"
	failed=$((failed + 1))
fi

echo "== bench/gpu_ring"
if [ -x "$BUILD/bench/gpu_ring" ]; then
	if "$BUILD/bench/gpu_ring" --frames "${GPU_BENCH_FRAMES:-2000}"; then
		passed=$((passed + 1))
	else
		echo "FAIL bench/gpu_ring"
		failed=$((failed + 1))
	fi
else
	echo "FAIL bench/gpu_ring: $BUILD/bench/gpu_ring not built"
	failed=$((failed + 1))
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
