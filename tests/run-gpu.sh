#!/usr/bin/env bash
# make test-gpu: the GPU tests (BUILD/tests/gpu_test: CUDA ring across two
# processes with IPC opens counted, SIGKILL cycles with device memory back to
# baseline, discovery, probe, NVML, the invert_cuda plugin), the GPU
# benchmark (BUILD/bench/gpu_ring) and an end-to-end stream on the GPU
# (trickle-server, gateway --gpus auto --workers-per-gpu 2 with
# invert_cuda.so, a solid-colour H.264 input made with the ffmpeg CLI and
# published in real time, the output decoded by BUILD/tests/helpers/frame_mean
# and checked inverted, cudaIpcOpenMemHandle counted per worker lifetime from
# the workers' "cuda ring opened" lines, 20 worker SIGKILL cycles with device
# memory back to baseline). Without a GPU the GPU parts print "skipped: no
# GPU" and pass. Ends with "N passed, N failed".
# Usage: tests/run-gpu.sh [BUILD]
#        tests/run-gpu.sh --bundle OUT.tar.xz [BUILD]
# --bundle packs all of that for a machine without Debian's packages (the
# device tool's): BUILD/{gateway,worker,trickle-server}, BUILD/plugins/
# (invert_cuda, passthrough, grayscale), BUILD/tests/gpu_test,
# BUILD/tests/helpers/frame_mean, BUILD/bench/gpu_ring, the input stream
# (media/gpu_e2e_in.ts, made here with the ffmpeg CLI), this script and
# scripts/trickle-read.sh, and every shared library they load except glibc's
# (lib/). The ffmpeg CLI itself is not carried: with its libavfilter and
# libavdevice closure the bundle is 76 MB at xz -9, over the 60 MiB a call
# may carry; the device side needs no ffmpeg. OUT.tar.xz (xz -9) unpacks with
# Python alone (tarfile + lzma); OUT.tar.zst needs zstd there (the device
# machine may not have it). Then:
#   python3 -c 'import tarfile; tarfile.open("OUT.tar.xz").extractall("/tmp/g")'
#   cd /tmp/g && LD_LIBRARY_PATH=/tmp/g/lib ./run-gpu.sh build
# Environment: GPU_BENCH_FRAMES (2000), GPU_E2E_SECONDS (input length, 8),
# GPU_KILL_CYCLES (20), GPU_E2E_KEEP=1 (keep the e2e logs).
set -u
here=$(cd "$(dirname "$0")" && pwd)
if [ -f "$here/scripts/trickle-read.sh" ]; then ROOT=$here; else ROOT=$(cd "$here/.." && pwd); fi

GPU_E2E_SECONDS=${GPU_E2E_SECONDS:-8}
# gpu_e2e_input OUT: GPU_E2E_SECONDS of solid 0x204080 at 256x256, 30 fps,
# H.264 (keyframe every second) in MPEG-TS, made with the ffmpeg CLI.
gpu_e2e_input() {
	command -v ffmpeg >/dev/null 2>&1 || return 1
	ffmpeg -hide_banner -loglevel error -nostdin -y \
		-f lavfi -i "color=c=0x204080:size=256x256:rate=30" -t "$GPU_E2E_SECONDS" \
		-c:v libx264 -preset veryfast -tune zerolatency -bf 0 -g 30 -pix_fmt yuv420p -an \
		-f mpegts "$1"
}

# ---- --bundle ---------------------------------------------------------------
if [ "${1:-}" = "--bundle" ]; then
	OUTF=${2:?--bundle needs an output file}
	BUILD=${3:-build}
	stage=$(mktemp -d)
	trap 'rm -rf "$stage"' EXIT
	mkdir -p "$stage/build/tests/helpers" "$stage/build/bench" "$stage/build/plugins" \
		"$stage/lib" "$stage/media" "$stage/scripts"
	for f in gateway worker trickle-server tests/gpu_test tests/helpers/frame_mean bench/gpu_ring; do
		cp "$BUILD/$f" "$stage/build/$f" || exit 1
	done
	for p in invert_cuda passthrough grayscale; do
		cp "$BUILD/plugins/$p.so" "$stage/build/plugins/" 2>/dev/null ||
			echo "run-gpu: no $BUILD/plugins/$p.so (CUDA=0 build?)" >&2
	done
	gpu_e2e_input "$stage/media/gpu_e2e_in.ts" || { echo "run-gpu: no ffmpeg CLI for the input" >&2; exit 1; }
	cp "$0" "$stage/run-gpu.sh"
	cp "$ROOT/scripts/trickle-read.sh" "$stage/scripts/"
	for b in "$stage"/build/gateway "$stage"/build/worker "$stage"/build/trickle-server \
		"$stage"/build/tests/gpu_test "$stage"/build/tests/helpers/frame_mean \
		"$stage"/build/bench/gpu_ring "$stage"/build/plugins/*.so; do
		ldd "$b" | awk '$3 ~ /^\// {print $3}'
	done | sort -u | grep -v -E '/(libc|libm|libpthread|libdl|librt|libresolv|libutil|ld-linux[^/]*)\.so' |
		while read -r l; do cp -L "$l" "$stage/lib/"; done
	raw=$(du -sh "$stage" | cut -f1)
	case $OUTF in
	*.tar.xz) tar -C "$stage" -cf - . | xz -T2 -"${XZ_LEVEL:-9}" >"$OUTF" || exit 1 ;;
	*.tar.zst) tar -C "$stage" -cf - . | zstd -q -T2 -"${ZSTD_LEVEL:-19}" -o "$OUTF" -f || exit 1 ;;
	*) echo "run-gpu: --bundle wants OUT.tar.xz or OUT.tar.zst" >&2; exit 2 ;;
	esac
	bytes=$(stat -c %s "$OUTF")
	echo "run-gpu: $((bytes / 1048576)) MiB ($bytes bytes; $raw unpacked) in $OUTF" \
		"($(ls "$stage/lib" | wc -l) libraries)"
	if [ "$bytes" -ge $((60 * 1048576)) ]; then
		echo "run-gpu: bundle over 60 MiB" >&2
		exit 1
	fi
	exit 0
fi

BUILD=${1:-build}
export CT_BUILD=$BUILD
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=0}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$ROOT/tests/lsan.supp:print_suppressions=0}
passed=0
failed=0
log=$(mktemp)
E2E_DIR=$(mktemp -d /tmp/run-gpu.XXXXXX)
E2E_PGIDS=()
gpu_cleanup() {
	local g
	for g in "${E2E_PGIDS[@]}"; do kill -TERM -- "-$g" 2>/dev/null; done
	sleep 0.2
	for g in "${E2E_PGIDS[@]}"; do kill -KILL -- "-$g" 2>/dev/null; done
	rm -f "$log"
	if [ -n "${GPU_E2E_KEEP:-}" ]; then echo "# e2e logs kept in $E2E_DIR"; else rm -rf "$E2E_DIR"; fi
}
trap gpu_cleanup EXIT
ok() { echo "ok $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }

echo "== machine"
have_gpu=
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >"$log" 2>&1 && grep -q '^GPU' "$log"; then
	cat "$log"
	nvidia-smi --query-gpu=name,memory.total,driver_version,mig.mode.current \
		--format=csv,noheader 2>/dev/null
	have_gpu=1
else
	echo "skipped: no GPU (nvidia-smi finds none); host-side cases still run"
fi
grep -qi gvisor /proc/version 2>/dev/null && echo "runtime: gVisor (CUDA IPC may fail)"
grep -qi microsoft /proc/sys/kernel/osrelease 2>/dev/null && echo "runtime: WSL2 (no CUDA IPC)"
command -v zstd >/dev/null 2>&1 && echo "zstd: present" || echo "zstd: absent (bundles: .tar.xz)"
command -v ffmpeg >/dev/null 2>&1 && echo "ffmpeg CLI: present" || echo "ffmpeg CLI: absent"

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

# ---- end to end on the GPU ------------------------------------------------------

# http METHOD URL [BODY]: prints "STATUS BODY" (Python: the device machine
# may have no curl).
http() {
	python3 - "$@" <<'PY'
import sys, urllib.request, urllib.error
m, url = sys.argv[1], sys.argv[2]
data = sys.argv[3].encode() if len(sys.argv) > 3 else (b"" if m == "POST" else None)
req = urllib.request.Request(url, data=data, method=m,
                             headers={"Content-Type": "application/json"})
try:
    r = urllib.request.urlopen(req, timeout=10)
    print(r.status, r.read().decode(errors="replace"))
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode(errors="replace"))
except Exception as e:
    print(0, e)
PY
}

# wait_for SECONDS CMD...: polls CMD every 0.1 s until it succeeds.
wait_for() {
	local end=$((SECONDS + $1)); shift
	until "$@"; do
		[ $SECONDS -ge $end ] && return 1
		sleep 0.1
	done
}
spawn_bg() { setsid "$@" & BG=$!; E2E_PGIDS+=("$BG"); }
count() { grep -c -- "$1" "$GW_LOG" 2>/dev/null || true; }
opens() { count 'msg="cuda ring opened"'; }
readies() { grep -cE 'proc=worker/[0-9]+ mod=worker msg="ready"' "$GW_LOG" 2>/dev/null || true; }
# children PID: its child processes (from /proc; the device machine may lack pgrep).
children() {
	python3 -c '
import os, sys
for d in os.listdir("/proc"):
    if d.isdigit():
        try:
            st = open("/proc/%s/stat" % d).read()
        except OSError:
            continue
        if st[st.rindex(")") + 2:].split()[1] == sys.argv[1]:
            print(d)' "$1"
}
mem_used_mib() { nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits 2>/dev/null | awk '{s += $1} END {print s + 0}'; }
stats() { # min / median / max of the numbers on stdin
	python3 -c '
import sys
v = sorted(float(x) for x in sys.stdin.read().split())
print("n=%d min %.0f median %.0f max %.0f" % (len(v), v[0], v[len(v) // 2], v[-1]) if v else "n=0")'
}

# The stream: a solid colour in, invert_cuda on the GPU, the output decoded.
gpu_e2e() {
	local secs=$GPU_E2E_SECONDS cycles=${GPU_KILL_CYCLES:-20} f pf port t0 r o0 o1
	local in=$ROOT/media/gpu_e2e_in.ts
	for f in gateway worker trickle-server plugins/invert_cuda.so tests/helpers/frame_mean; do
		[ -e "$BUILD/$f" ] || { fail e2e_setup "$BUILD/$f not built"; return; }
	done
	if [ ! -s "$in" ]; then
		in=$E2E_DIR/in.ts
		gpu_e2e_input "$in" || { fail e2e_setup "no media/gpu_e2e_in.ts and no ffmpeg CLI"; return; }
	fi
	pf=$E2E_DIR/ts.port
	spawn_bg "$BUILD/trickle-server" --host 127.0.0.1 --port 0 --port-file "$pf" --log-level warn \
		>"$E2E_DIR/trickle-server.log" 2>&1
	wait_for 10 test -s "$pf" || { fail e2e_setup "trickle-server did not start"; return; }
	T=http://127.0.0.1:$(cat "$pf")
	GW_LOG=$E2E_DIR/gateway.log
	t0=$(date +%s%N)
	spawn_bg "$BUILD/gateway" --host 127.0.0.1 --port 0 --gpus auto --workers-per-gpu 2 \
		--processor "$BUILD/plugins/invert_cuda.so" --max-resolution 512x512 \
		--log-level info >"$GW_LOG" 2>&1
	GW_PID=$BG
	wait_for 60 grep -q 'msg="serving" port=' "$GW_LOG" ||
		{ fail e2e_setup "gateway did not start: $(tail -n 5 "$GW_LOG")"; return; }
	port=$(grep -o 'msg="serving" port=[0-9]*' "$GW_LOG" | head -n1 | tr -dc '0-9')
	API=http://127.0.0.1:$port
	wait_for 60 sh -c "python3 -c 'import urllib.request; print(urllib.request.urlopen(\"$API/health\", timeout=5).read().decode())' 2>/dev/null | grep -q IDLE" ||
		{ fail e2e_setup "gateway not IDLE: $(tail -n 5 "$GW_LOG")"; return; }
	wait_for 30 sh -c "[ \$(grep -cE 'proc=worker/[0-9]+ mod=worker msg=\"ready\"' '$GW_LOG') -ge 2 ]"
	echo "gateway up in $(( ($(date +%s%N) - t0) / 1000000 )) ms; workers ready: $(readies)," \
		"cuda ring opens: $(opens)"
	grep -E 'msg="(host ring|gpu|cuda ring exported)|mod=gpu' "$GW_LOG" | grep -v 'proc=worker' | head -n 5 | sed 's/^/#   /'
	grep 'msg="cuda ring opened"' "$GW_LOG" | sed -n 's/.*open_us=\([0-9]*\).*/\1/p' >"$E2E_DIR/open_us"
	[ -s "$E2E_DIR/open_us" ] && echo "cudaIpcOpenMemHandle open_us: $(stats <"$E2E_DIR/open_us")"

	# -- the stream
	o0=$(opens)
	http POST "$T/gin" >/dev/null
	http POST "$T/gin-out" >/dev/null
	spawn_bg bash "$ROOT/scripts/trickle-read.sh" "$T/gin-out" "$E2E_DIR/out.ts" $((secs + 40)) bytes
	local rd=$BG
	cat >"$E2E_DIR/publish.py" <<'PY'
# Publishes FILE as trickle segment 0 with one chunked POST, paced over
# SECONDS as a live source would, then DELETEs the channel.
import http.client, sys, time, urllib.parse
path, url, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
data = open(path, "rb").read()
u = urllib.parse.urlparse(url)
c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
c.putrequest("POST", u.path + "/0")
c.putheader("Content-Type", "video/mp2t")
c.putheader("Transfer-Encoding", "chunked")
c.endheaders()
step = 188 * 20
t0 = time.time()
for off in range(0, len(data), step):
    chunk = data[off:off + step]
    c.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    due = t0 + secs * (off + len(chunk)) / len(data)
    if due > time.time():
        time.sleep(due - time.time())
c.send(b"0\r\n\r\n")
c.getresponse().read()
c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
c.request("DELETE", u.path)
c.getresponse().read()
PY
	spawn_bg python3 "$E2E_DIR/publish.py" "$in" "$T/gin" "$secs"
	local pub=$BG
	wait_for 10 sh -c "python3 -c 'import urllib.request; urllib.request.urlopen(\"$T/gin/next\", timeout=2)' 2>/dev/null"
	r=$(http POST "$API/stream/start" "{\"subscribe_url\":\"$T/gin\",\"publish_url\":\"$T/gin-out\",\"gateway_request_id\":\"gpu-e2e\",\"params\":{}}")
	wait_for $((secs + 20)) sh -c "! kill -0 $pub 2>/dev/null"
	sleep 2
	local st
	st=$(http GET "$API/stream/status")
	http POST "$API/stream/stop" '' >/dev/null
	wait_for 20 sh -c "! kill -0 $rd 2>/dev/null"
	o1=$(opens)
	local out=$E2E_DIR/out.ts rgb
	rgb=$("$BUILD/tests/helpers/frame_mean" "$out" 2>&1)
	echo "stream: start ${r:0:60}; status ${st:0:160}"
	echo "output: $(stat -c %s "$out" 2>/dev/null || echo 0) bytes; ${rgb:-nothing decoded}" \
		"(input about 30 63 127 after H.264, inverted about 225 192 128)"
	if [ "${r%% *}" != 200 ]; then
		fail e2e_stream_inverted "start answered ${r:0:200}"
	elif ! echo "$rgb" | sed -n 's/.*mean=//p' | awk '{ exit !(NF == 3 && $1 > 211 && $1 < 237 && $2 > 179 && $2 < 205 && $3 > 115 && $3 < 141) }'; then
		fail e2e_stream_inverted "decoded ${rgb:-nothing}, want a mean about 225 192 128"
	else
		ok e2e_stream_inverted
	fi
	if grep -q 'msg="host ring' "$GW_LOG"; then
		fail e2e_ipc_opens "the gateway used a host ring: $(grep -m1 'msg="host ring' "$GW_LOG")"
	elif [ "$o0" -lt 1 ] || [ "$o0" -ne "$(readies)" ] || [ "$o1" -ne "$o0" ]; then
		fail e2e_ipc_opens "opens $o0 for $(readies) worker lifetimes before the stream, $o1 after"
	else
		ok e2e_ipc_opens
		echo "cudaIpcOpenMemHandle: $o0 for $(readies) worker lifetimes, $((o1 - o0)) during the stream"
	fi

	# -- SIGKILL cycles
	local base used pids victim i k=0 r0 t1 dmax=0 bad=
	: >"$E2E_DIR/respawn_ms"
	sleep 1
	base=$(mem_used_mib)
	echo "device memory used before the kill cycles: $base MiB"
	for i in $(seq 1 "$cycles"); do
		pids=($(children "$GW_PID"))
		[ ${#pids[@]} -gt 0 ] || { bad="no worker to kill at cycle $i"; break; }
		victim=${pids[$((i % ${#pids[@]}))]}
		r0=$(readies)
		t1=$(date +%s%N)
		kill -KILL "$victim"
		if ! wait_for 30 sh -c "[ \$(grep -cE 'proc=worker/[0-9]+ mod=worker msg=\"ready\"' '$GW_LOG') -gt $r0 ]"; then
			bad="no worker ready again within 30 s at cycle $i"
			break
		fi
		echo $(( ($(date +%s%N) - t1) / 1000000 )) >>"$E2E_DIR/respawn_ms"
		local d=0 end=$((SECONDS + 10))
		while :; do
			used=$(mem_used_mib)
			d=$((used - base)); [ $d -lt 0 ] && d=$((-d))
			[ $d -le 64 ] && break
			[ $SECONDS -ge $end ] && break
			sleep 0.2
		done
		[ $d -gt $dmax ] && dmax=$d
		[ $d -le 64 ] || { bad="cycle $i: device memory $used MiB, baseline $base MiB"; break; }
		k=$i
	done
	echo "kill cycles: $k of $cycles; respawn to ready ms: $(stats <"$E2E_DIR/respawn_ms");" \
		"largest device memory delta after a cycle: $dmax MiB"
	[ -z "$bad" ] && ok e2e_kill_cycles || fail e2e_kill_cycles "$bad"
	if [ "$(opens)" -ne "$(readies)" ]; then
		fail e2e_ipc_opens_after_kills "opens $(opens) for $(readies) worker lifetimes"
	else
		ok e2e_ipc_opens_after_kills
		echo "after the kill cycles: $(opens) opens for $(readies) worker lifetimes"
	fi
	kill -TERM "$GW_PID" 2>/dev/null
	wait_for 20 sh -c "! kill -0 $GW_PID 2>/dev/null" || fail e2e_gateway_exit "gateway still running 20 s after SIGTERM"
	grep -E 'lvl=error' "$GW_LOG" | head -n 5 | sed 's/^/#   error: /'
}

echo "== e2e: gateway --gpus auto --workers-per-gpu 2, invert_cuda.so"
if [ -n "$have_gpu" ]; then
	gpu_e2e
else
	for c in e2e_stream_inverted e2e_ipc_opens e2e_kill_cycles e2e_ipc_opens_after_kills; do
		echo "ok $c: skipped: no GPU"
		passed=$((passed + 1))
	done
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
