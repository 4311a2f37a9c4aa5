#!/usr/bin/env bash
# GPU placement without a GPU (issue #8): CTRICKLE_TEST_FAKE_GPUS=2 makes the
# gateway see two fake GPUs, each with its own (host) frame ring. With
# --workers-per-gpu 2: every worker reports its GPU in /workers, 2 rings are
# made, concurrent streams spread over the GPUs (least loaded first), a
# SIGKILLed worker's stream recovers on a worker of the same GPU, /hardware
# answers {} without NVML; --gpus 0,5 is refused with exit 2 and --gpus none
# gives one host ring.
# Usage: tests/integration/gpu_placement.sh BUILD
set -u
cd "$(dirname "$0")/../.."
BUILD=${1:-build}
. tests/integration/lib.sh
e2e_init gpu_placement
gp_cleanup() {
	disown -a 2>/dev/null # no "Killed" job notices after the summary
	e2e_cleanup
}
trap gp_cleanup EXIT
PT=$BUILD/plugins/passthrough.so
[ -f "$PT" ] || { fail setup "$PT not built"; e2e_finish; }
P256='"width":"256","height":"256"'

# workers_lines: /workers as "id gpu pid state stream" lines.
workers_lines() {
	curl -s -m 5 "$API/workers" | python3 -c '
import json, sys
for w in json.load(sys.stdin).get("workers", []):
    print(w["id"], w["gpu"], w["pid"], w["state"], w["stream"])'
}
# gpu_of STREAM / pid_of STREAM: the GPU / pid of the worker serving STREAM.
gpu_of() { workers_lines | awk -v s="$1" '$5 == s && $4 == "busy" { print $2 }'; }
pid_of() { workers_lines | awk -v s="$1" '$5 == s && $4 == "busy" { print $3 }'; }
served_by_new() { # STREAM OLDPID: served by a busy worker other than OLDPID
	local p
	p=$(pid_of "$1")
	[ -n "$p" ] && [ "$p" != "$2" ]
}

ts_start

# ---- fake GPUs, 2 workers each ----------------------------------------------------
export CTRICKLE_TEST_FAKE_GPUS=2
if ! gw_start --gpus auto --workers-per-gpu 2 --spare-workers 0 --processor "$PT" \
	--max-resolution 512x512 --ring-slots 2; then
	fail setup "gateway with fake GPUs did not start"
	e2e_finish
fi
unset CTRICKLE_TEST_FAKE_GPUS

gpus=$(workers_lines | awk '{ printf "%s%s", (NR > 1 ? "," : ""), $2 }')
if [ "$gpus" = "0,0,1,1" ]; then ok workers_gpu; else fail workers_gpu "worker GPUs: $gpus (want 0,0,1,1)"; fi

# Each worker sees only its GPU (CUDA_VISIBLE_DEVICES=<gpu>, --gpu 0) and
# maps its GPU's ring: workers of a GPU map the same memfd, GPUs differ.
env_ok=1 rings_seen=
while read -r id gpu pid state stream; do
	cvd=$(tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | sed -n 's/^CUDA_VISIBLE_DEVICES=//p')
	arg=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -o -- '--gpu [-0-9]*')
	ino=$(awk '/memfd:/ { print $5 }' "/proc/$pid/maps" 2>/dev/null | sort -u | tr '\n' '+')
	[ "$cvd" = "$gpu" ] && [ "$arg" = "--gpu 0" ] && [ -n "$ino" ] || env_ok=0
	rings_seen="$rings_seen $gpu:$ino"
	note "worker $id pid $pid: CUDA_VISIBLE_DEVICES=$cvd $arg ring inode $ino"
done < <(workers_lines)
set -- $rings_seen
if [ "$env_ok" = 1 ] && [ $# = 4 ] && [ "${1#*:}" = "${2#*:}" ] && [ "${3#*:}" = "${4#*:}" ] &&
	[ "${1#*:}" != "${3#*:}" ]; then
	ok workers_env_and_ring
else
	fail workers_env_and_ring "env_ok=$env_ok rings:$rings_seen"
fi

rings=$(grep -c 'msg="frame ring created"' "$E2E_GW_LOG")
r0=$(grep -c 'msg="frame ring created" gpu=0 backend=host' "$E2E_GW_LOG")
r1=$(grep -c 'msg="frame ring created" gpu=1 backend=host' "$E2E_GW_LOG")
fb=$(grep -c 'CUDA ring unavailable' "$E2E_GW_LOG")
hook=$(grep -c 'test hook active' "$E2E_GW_LOG")
if [ "$rings" = 2 ] && [ "$r0" = 1 ] && [ "$r1" = 1 ] && [ "$fb" = 2 ] && [ "$hook" = 1 ]; then
	ok rings_per_gpu
else
	fail rings_per_gpu "rings=$rings gpu0=$r0 gpu1=$r1 fallback_lines=$fb hook_lines=$hook"
fi
# Each worker was given its GPU's ring: the ring of GPU 0 has 2x2+8 slots.
grep -q 'msg="frame ring created" gpu=0 backend=host slots=12 ' "$E2E_GW_LOG" &&
	ok ring_size || fail ring_size "$(grep -m1 'frame ring created' "$E2E_GW_LOG" | cut -c1-200)"

hi=$(api GET /hardware/info)
hs=$(api GET /hardware/stats)
if [ "${hi%% *}" = 200 ] && [ "${hs%% *}" = 200 ] &&
	echo "${hi#* }" | grep -q '"gpu_info": *{}' && echo "${hs#* }" | grep -q '"gpu_stats": *{}'; then
	ok hardware_without_nvml
else
	fail hardware_without_nvml "info: ${hi:0:160} stats: ${hs:0:160}"
fi

# Three streams: the first two land on different GPUs, the third on the
# least loaded (a tie: GPU 0).
E2E_LAZY=1
for s in ga gb gc; do
	read_out $s-out "$E2E_DIR/$s.ts" $((90 * E2E_SLOW))
	publish $s 60 256x256 15 noaudio
done
e2e_ready || note "some channels were slow to appear"
E2E_LAZY=
ra=$(start_stream ga "{$P256}")
rb=$(start_stream gb "{$P256}")
rc=$(start_stream gc "{$P256}")
wl=$(workers_lines)
g_of() { echo "$wl" | awk -v s="$1" '$5 == s && $4 == "busy" { print $2 }'; }
ga=$(g_of ga); gb=$(g_of gb); gc=$(g_of gc)
note "streams: ga on GPU ${ga:-?}, gb on GPU ${gb:-?}, gc on GPU ${gc:-?}"
if [ "${ra%% *}" != 200 ] || [ "${rb%% *}" != 200 ] || [ "${rc%% *}" != 200 ]; then
	fail streams_spread "start answered: ${ra:0:120} / ${rb:0:120} / ${rc:0:120}"
elif [ -z "$ga" ] || [ -z "$gb" ] || [ "$ga" = "$gb" ]; then
	fail streams_spread "ga on '${ga}', gb on '${gb}': not on two GPUs"
elif [ "$ga" != 0 ] || [ "$gc" != 0 ]; then
	fail streams_spread "ga on $ga, gc on $gc (want 0 and 0: least loaded, ties to GPU 0)"
else
	ok streams_spread
fi

# SIGKILL of ga's worker: GPU 1 has an idle worker, GPU 0 only gc's; the
# stream must wait for GPU 0's respawned worker (its frames are in GPU 0's
# ring), not move to GPU 1.
old=$(pid_of ga)
has_out() { [ "$(grep -c 'msg="stream recovered on a new worker" stream=ga ' "$E2E_GW_LOG")" -ge 1 ]; }
if [ -z "$old" ]; then
	fail kill_same_gpu "no worker serves ga"
else
	# killed once ga has output (frames in flight), not after a guess
	e2e_wait_for $((10 * E2E_SLOW)) test -s "$E2E_DIR/ga.ts" || note "ga: no output yet"
	kill -KILL "$old"
	if ! e2e_wait_for $((15 * E2E_SLOW)) served_by_new ga "$old"; then
		fail kill_same_gpu "ga not served again after SIGKILL of pid $old"
	else
		ng=$(gpu_of ga)
		e2e_wait_for $((10 * E2E_SLOW)) has_out
		if [ "$ng" != "$ga" ]; then
			fail kill_same_gpu "ga moved from GPU $ga to GPU $ng"
		elif ! has_out; then
			fail kill_same_gpu "no 'stream recovered' line for ga"
		else
			ok kill_same_gpu
		fi
	fi
fi
for s in ga gb gc; do api POST /stream/stop "{\"gateway_request_id\":\"$s\"}" >/dev/null; done
gw_stop && ok fake_gateway_exit || fail fake_gateway_exit "exit status $E2E_GW_RC or sanitizer reports"

# ---- refused GPU lists --------------------------------------------------------------
out=$E2E_DIR/refused.log
CTRICKLE_TEST_FAKE_GPUS=2 timeout $((20 * E2E_SLOW)) "$BUILD/gateway" --host 127.0.0.1 --port 0 \
	--gpus 0,5 --processor "$PT" >"$out" 2>&1
rc=$?
if [ "$rc" = 2 ] && grep -q 'gpu 5: no such device' "$out"; then
	ok gpus_list_refused
else
	fail gpus_list_refused "exit $rc: $(head -c 300 "$out")"
fi
CTRICKLE_TEST_FAKE_GPUS=9 timeout $((20 * E2E_SLOW)) "$BUILD/gateway" --host 127.0.0.1 --port 0 \
	--processor "$PT" >"$out" 2>&1
rc=$?
[ "$rc" = 2 ] && grep -q CTRICKLE_TEST_FAKE_GPUS "$out" && ok fake_hook_checked ||
	fail fake_hook_checked "exit $rc: $(head -c 200 "$out")"

# ---- --gpus none: one host ring, even with GPUs there --------------------------------
export CTRICKLE_TEST_FAKE_GPUS=2
if gw_start --gpus none --workers-per-gpu 2 --processor "$PT" --max-resolution 512x512; then
	rings=$(grep -c 'msg="frame ring created"' "$E2E_GW_LOG")
	host=$(grep -c 'msg="frame ring created" gpu=-1 backend=host' "$E2E_GW_LOG")
	gpus=$(workers_lines | awk '{ printf "%s%s", (NR > 1 ? "," : ""), $2 }')
	if [ "$rings" = 1 ] && [ "$host" = 1 ] && [ "$gpus" = "-1,-1" ]; then
		ok gpus_none_host_ring
	else
		fail gpus_none_host_ring "rings=$rings host=$host worker gpus=$gpus"
	fi
	gw_stop || fail none_gateway_exit "exit status $E2E_GW_RC or sanitizer reports"
else
	fail gpus_none_host_ring "gateway did not start"
fi
unset CTRICKLE_TEST_FAKE_GPUS
e2e_finish
