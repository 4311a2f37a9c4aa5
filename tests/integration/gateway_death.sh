#!/usr/bin/env bash
# Gateway death (issue #7 item 3): SIGKILL of a gateway serving a live stream
# makes every worker exit within 1 s (parent-death signal), no process keeps
# the ring's memfd mapped, and a new gateway starts at once on the same port
# and serves the same input. A runtime directory left by the dead gateway is
# reported (a note) and must not bother the new one.
# Usage: tests/integration/gateway_death.sh BUILD
BUILD=${1:-build}
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
e2e_init gateway_death

STALE_DIRS=()
gd_cleanup() {
	disown -a 2>/dev/null  # no "Killed" job notices after the summary
	e2e_cleanup
	local d
	for d in "${STALE_DIRS[@]}"; do rm -rf "$d"; done
}
trap gd_cleanup EXIT

# memfd_inodes PID: "DEV:INODE" of every memfd the process maps.
memfd_inodes() {
	awk '/memfd:/ { print $4 ":" $5 }' "/proc/$1/maps" 2>/dev/null | sort -u
}

# mappers INODE...: pids of live processes that map a memfd with one of
# these inodes (pid 0 when none).
mappers() {
	local f pid
	for f in /proc/[0-9]*/maps; do
		pid=${f#/proc/}; pid=${pid%/maps}
		awk -v want="$*" 'BEGIN { n = split(want, w, " "); for (i = 1; i <= n; i++) k[w[i]] = 1 }
			/memfd:/ && (($4 ":" $5) in k) { found = 1; exit } END { exit !found }' \
			"$f" 2>/dev/null && echo "$pid"
	done
}

# runtime_dirs PID: the ipc runtime directories a gateway of that pid made.
runtime_dirs() {
	local b
	for b in "${XDG_RUNTIME_DIR:-}" /tmp; do
		[ -n "$b" ] && ls -d "$b/ctrickle-$1-"* 2>/dev/null
	done | sort -u
}

alive() { # PID...: the ones still running (zombies count as gone)
	local p st x
	for p in "$@"; do
		st=
		read -r x x st x 2>/dev/null <"/proc/$p/stat"
		[ -n "$st" ] && [ "$st" != Z ] && echo "$p"
	done
}

ts_start
# Longer than any setup can take (ended at exit): the new gateway must
# find it live.
publish gd 600 256x256 30 noaudio || { fail setup "publisher did not start"; e2e_finish; }
gw_start --processor "$BUILD/plugins/passthrough.so" --workers-per-gpu 2 ||
	{ fail setup "gateway did not start"; e2e_finish; }
port=${API##*:}
gw1=$E2E_GW_PID
r=$(api POST /stream/start "{\"subscribe_url\":\"$T/gd\",\"publish_url\":\"$T/gd-out\",
	\"gateway_request_id\":\"gd\",\"params\":{}}")
[ "${r%% *}" = 200 ] || { fail setup "stream start: $r"; e2e_finish; }
out_frames() {
	curl -s -m 5 "$API/metrics" | sed -n 's/^ctrickle_frames_total{kind="out"} \([0-9]*\).*/\1/p'
}
has_output() { [ "$(out_frames)" -gt 0 ] 2>/dev/null; }
e2e_wait_for $((10 * E2E_SLOW)) has_output || note "no processed frames yet on the first gateway"

workers=$(gw_workers)
inodes=$(memfd_inodes "$gw1" | tr '\n' ' ')
wmaps=0
for w in $workers; do [ -n "$(memfd_inodes "$w")" ] && wmaps=$((wmaps + 1)); done
dirs=$(runtime_dirs "$gw1")
note "gateway $gw1 on port $port, workers: $workers, ring memfds: $inodes($wmaps workers map one), runtime dir: ${dirs:-none found}"
[ -n "$workers" ] && [ -n "$inodes" ] || { fail setup "no workers or no memfd ring"; e2e_finish; }

# ---- the kill ------------------------------------------------------------------
# SIGKILL, then wait on a pidfd of each worker (the moment each one exits,
# not a polling interval): prints "MS_UNTIL_ALL_GONE PIDS_LEFT...".
disown "$gw1" 2>/dev/null
limit_ms=$((1000 * E2E_SLOW))
res=$(python3 - "$gw1" $workers <<'PY'
import os, select, signal, sys, time
gw, ws = int(sys.argv[1]), [int(x) for x in sys.argv[2:]]
fds = {}
for w in ws:
    try:
        fds[os.pidfd_open(w)] = w
    except OSError:
        pass  # already gone
t0 = time.monotonic()
os.kill(gw, signal.SIGKILL)
left = set(fds)
while left and time.monotonic() - t0 < 3:
    r, _, _ = select.select(list(left), [], [], 0.1)
    left -= set(r)
print("%.0f %s" % ((time.monotonic() - t0) * 1000, " ".join(str(fds[f]) for f in left)))
PY
)
now_ms=${res%% *}
left=$(echo "${res#* }" | tr -d ' ')
[ -z "$left" ] && gone_ms=$now_ms || gone_ms=
left=${res#* }
E2E_GW_PID=
if [ -n "$gone_ms" ] && [ "$gone_ms" -le "$limit_ms" ]; then
	ok "workers_exit_after_gateway_sigkill"
	note "every worker gone ${gone_ms} ms after the gateway's SIGKILL (limit ${limit_ms} ms)"
else
	fail workers_exit_after_gateway_sigkill "still alive after ${now_ms} ms: $left"
	for p in $left; do kill -KILL "$p" 2>/dev/null; done
fi

m=$(mappers $inodes | tr '\n' ' ')
if [ -z "$m" ]; then
	ok "no_memfd_mapping_survives"
else
	fail no_memfd_mapping_survives "processes still map the ring memfd: $m"
fi

orph=$(alive $workers | tr '\n' ' ')
[ -z "$orph" ] && ok "no_orphan_or_zombie_worker" ||
	fail no_orphan_or_zombie_worker "pids still in /proc: $orph"

stale=
for d in $dirs; do
	if [ -e "$d" ]; then
		stale="$stale $d ($(ls "$d" 2>/dev/null | tr '\n' ' '))"
		STALE_DIRS+=("$d")
	fi
done
[ -n "$stale" ] && note "the dead gateway's runtime dir was left behind:$stale" ||
	note "no runtime dir of the dead gateway left"

# ---- a new gateway, same port, at once ----------------------------------------
E2E_GW_LOG=$E2E_DIR/gateway.new.log
t1=$(date +%s%N)
e2e_bg "$BUILD/gateway" --host 127.0.0.1 --port "$port" --gpus none \
	--processor "$BUILD/plugins/passthrough.so" --workers-per-gpu 2 >"$E2E_GW_LOG" 2>&1
E2E_GW_PID=$E2E_BG
if e2e_wait_for $((5 * E2E_SLOW)) gw_health_is IDLE; then
	up_ms=$((($(date +%s%N) - t1) / 1000000))
	ok "new_gateway_same_port"
	note "new gateway $E2E_GW_PID IDLE on port $port ${up_ms} ms after its start"
else
	fail new_gateway_same_port "not IDLE on port $port: $(tail -n 3 "$E2E_GW_LOG" | tr '\n' ' ')"
	e2e_finish
fi
ndirs=$(runtime_dirs "$E2E_GW_PID")
r=$(api POST /stream/start "{\"subscribe_url\":\"$T/gd\",\"publish_url\":\"$T/gd2-out\",
	\"gateway_request_id\":\"gd2\",\"params\":{}}")
if [ "${r%% *}" = 200 ] && e2e_wait_for $((10 * E2E_SLOW)) has_output; then
	ok "new_gateway_serves"
	note "new gateway: $(out_frames) frames processed, runtime dir ${ndirs:-?}"
else
	fail new_gateway_serves "start: $r; frames out: $(out_frames)"
fi
gw_stop || fail new_gateway_clean_stop "exit status $E2E_GW_RC"
for d in $ndirs; do
	[ -e "$d" ] && fail new_gateway_clean_stop "runtime dir $d left after a clean stop"
done
e2e_finish
