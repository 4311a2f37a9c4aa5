#!/usr/bin/env bash
# End to end through build/trickle-server with grayscale workers: output
# decodes, frame count and gray; Opus audio in sync; two concurrent streams
# stay independent; a params update changes the output mid-stream; SIGKILL of
# a stream's worker; stop returns /health to IDLE; SIGTERM drains.
# Usage: tests/integration/e2e_stream.sh BUILD
set -u
cd "$(dirname "$0")/../.."
BUILD=${1:-build}
. tests/integration/lib.sh
e2e_init e2e_stream
E2E_LAZY=1 # readers and publishers start side by side; e2e_ready waits
E2E_GATE=1 # inputs start sending when their stream starts (lib.sh publish_go)
has_bytes() { [ -s "$1" ]; }

SECS=4          # input length of a stream, seconds (30 fps)
RATE_A=15       # max_framerate of stream a
RATE_B=10       # max_framerate of stream b
# Expected frame count: SECS x max_framerate. Tolerance: at most 2 + 5%
# over; under, also one second of frames, since the decoder hands over the
# first second (the probe) at once and the depth-1 drop-oldest queue in
# front of the worker keeps only the newest of that burst (counted drops).
fc_ok() { # FRAMES SECS RATE
	local e=$(($2 * $3))
	[ -n "$1" ] && [ "$1" -le $((e + 2 + e / 20)) ] && [ "$1" -ge $((e - $3 - 2 - e / 10)) ]
}
fc_range() { local e=$(($1 * $2)); echo "$((e - $2 - 2 - e / 10))..$((e + 2 + e / 20))"; }
# totals LOG STREAM: the gateway's closing counters of a stream.
totals() { grep "msg=\"stream totals\" stream=$2 " "$1" | sed 's/.*stream=[^ ]* //' | tail -n1; }

ts_start
gw_start --processor "$BUILD/plugins/grayscale.so" --workers-per-gpu 3 \
	--spare-workers 1 --max-resolution 512x512 --log-level info ||
	{ fail setup "gateway did not start"; e2e_finish; }
P256='"width":"256","height":"256"'

# ---- a and b at once: cases 1, 2 and 7 --------------------------------------
read_out a-out "$E2E_DIR/a.ts" $((30 * E2E_SLOW)); rd_a=$READ_PID
read_out a "$E2E_DIR/a-in.ts" $((30 * E2E_SLOW))
read_out b-out "$E2E_DIR/b.ts" $((30 * E2E_SLOW)); rd_b=$READ_PID
read_events a-events "$E2E_DIR/a.ev"; ev_a=$EV_PID
e2e_ready || note "a reader was slow to start"
publish a $SECS 256x256 30
publish b $SECS 256x256 30 noaudio
e2e_ready || note "a publisher was slow to start"
t0=$(date +%s.%N)
r1=$(start_stream a "{$P256,\"max_framerate\":$RATE_A}")
r2=$(start_stream b "{$P256,\"max_framerate\":$RATE_B}")
wa=$(gw_worker_of a); wb=$(gw_worker_of b)
wait_pid $rd_a $((30 * E2E_SLOW)); wait_pid $rd_b $((30 * E2E_SLOW))
note "streams a+b: output read in $(python3 -c "print('%.1f' % ($(date +%s.%N) - $t0))") s (input $SECS s)"
wait_pid $ev_a 5 || true

sat_series "$E2E_DIR/a.ts" >"$E2E_DIR/a.sat"
fa=$(grep -c . "$E2E_DIR/a.sat"); fb=$(probe_frames "$E2E_DIR/b.ts")
[ "$fa" -gt 0 ] || fa=$(probe_frames "$E2E_DIR/a.ts")
size_a=$(probe_size "$E2E_DIR/a.ts")
note "a: ${fa:-0} frames (expected $(fc_range $SECS $RATE_A)), $size_a, worker pid $wa"
note "a: $(totals "$E2E_GW_LOG" a)"
note "b: ${fb:-0} frames (expected $(fc_range $SECS $RATE_B)), worker pid $wb"
note "b: $(totals "$E2E_GW_LOG" b)"
sat=$(mean <"$E2E_DIR/a.sat")
if [ "${r1%% *}" != 200 ]; then
	fail output_decodes_gray "start answered ${r1:0:200}"
elif [ -z "$fa" ] || [ "$fa" -eq 0 ]; then
	fail output_decodes_gray "output does not decode ($(stat -c %s "$E2E_DIR/a.ts") bytes)"
elif [ "$size_a" != 256x256 ]; then
	fail output_decodes_gray "size $size_a, not 256x256"
elif ! less "$sat" 1.0; then
	fail output_decodes_gray "not gray: mean SATAVG $sat"
else
	ok output_decodes_gray
fi
note "a: mean SATAVG $sat"
if fc_ok "$fa" $SECS $RATE_A; then
	ok frame_count
else
	fail frame_count "${fa:-0} frames, expected $(fc_range $SECS $RATE_A)"
fi

# case 2: Opus 48 kHz mono, in sync: the output keeps the input's timeline
# (first audio pts = the input's, the first video pts is one of the input's
# frames), and its first audio and video pts lie within one frame period,
# plus the video frames dropped before the first one out (drop-oldest at a
# cold worker; counted as queue drops).
read -r vs as ainfo <<<"$(av_info "$E2E_DIR/a.ts")"
read -r ivs ias _ <<<"$(av_info "$E2E_DIR/a-in.ts")"
note "a: audio $ainfo; output video starts at $vs s, audio at $as s; input video $ivs s, audio $ias s"
lead=$(python3 -c "print(max(0, round(($vs - $ivs) * 30)))" 2>/dev/null)
if [ "$ainfo" != "opus,48000,1" ]; then
	fail audio_opus_sync "audio is '$ainfo', not opus,48000,1"
elif ! within "$as" "$ias" "1.0 / $RATE_A"; then
	fail audio_opus_sync "output audio starts at $as s, the input's at $ias s"
elif ! python3 -c "import sys; d = ($vs - $ivs) * 30; sys.exit(0 if abs(d - round(d)) < 0.05 else 1)"; then
	fail audio_opus_sync "output video starts at $vs s: not on the input's frame grid (from $ivs s)"
elif ! within "$vs" "$as" "1.0 / $RATE_A + ${lead:-0} / 30.0"; then
	fail audio_opus_sync "first video pts $vs s, first audio pts $as s: more than a frame period (+$lead dropped input frames) apart"
else
	ok audio_opus_sync
fi

# case 7: both complete with their own rate, on two different workers
if [ "${r2%% *}" != 200 ]; then
	fail two_streams_independent "second start answered ${r2:0:200}"
elif [ -z "$wa" ] || [ -z "$wb" ] || [ "$wa" = "$wb" ]; then
	fail two_streams_independent "workers of a and b: '$wa' '$wb'"
elif ! fc_ok "$fb" $SECS $RATE_B || ! fc_ok "$fa" $SECS $RATE_A; then
	fail two_streams_independent "frames a=${fa:-0} ($(fc_range $SECS $RATE_A)) b=${fb:-0} ($(fc_range $SECS $RATE_B))"
elif [ "$(av_info "$E2E_DIR/b.ts" | cut -d' ' -f3)" != none ]; then
	fail two_streams_independent "b has audio but its input had none"
else
	ok two_streams_independent
fi
e2e_wait_for $((5 * E2E_SLOW)) gw_health_is IDLE || note "health after a+b: $(gw_health)"

# ---- c (params update) and d (SIGKILL) at once: cases 3 and 4 ---------------
SECS2=6
read_out c-out "$E2E_DIR/c.ts" $((30 * E2E_SLOW)); rd_c=$READ_PID
read_out d-out "$E2E_DIR/d.ts" $((30 * E2E_SLOW)); rd_d=$READ_PID
read_events d-events "$E2E_DIR/d.ev"; ev_d=$EV_PID
e2e_ready || note "a reader was slow to start"
publish c $SECS2 256x256 30
publish d $SECS2 256x256 30 noaudio
e2e_ready || note "a publisher was slow to start"
r3=$(start_stream c "{$P256,\"max_framerate\":\"$RATE_A\"}")
r4=$(start_stream d "{$P256,\"max_framerate\":$RATE_A}")
victim=$(gw_worker_of d)
# the update and the kill come 1 s after both streams have output (c's
# first frames gray, d's kill mid-stream), however slow the start was
e2e_wait_for $((10 * E2E_SLOW)) has_bytes "$E2E_DIR/c.ts" || note "c: no output yet"
e2e_wait_for $((10 * E2E_SLOW)) has_bytes "$E2E_DIR/d.ts" || note "d: no output yet"
sleep 1
pu=$(api POST "/stream/params?stream_id=c" '{"enabled":false}')
[ -n "$victim" ] && kill -KILL "$victim"
wait_pid $rd_c $((30 * E2E_SLOW)); wait_pid $rd_d $((30 * E2E_SLOW))
wait_pid $ev_d 5 || true

sat_series "$E2E_DIR/c.ts" >"$E2E_DIR/c.sat"
first=$(mean 0 10 <"$E2E_DIR/c.sat"); last=$(mean -10 10 <"$E2E_DIR/c.sat")
note "c: $(wc -l <"$E2E_DIR/c.sat") frames, SATAVG first 10 $first, last 10 $last"
if [ "${r3%% *}" != 200 ] || [ "${pu%% *}" != 200 ]; then
	fail params_update "start answered ${r3:0:100}, params answered ${pu:0:200}"
elif ! less "$first" 1.0 || ! less 5.0 "$last"; then
	fail params_update "grayscale not switched off: SATAVG first $first, last $last"
else
	ok params_update
fi

fd=$(probe_frames "$E2E_DIR/d.ts")
rs=$(events_of "$E2E_DIR/d.ev" worker_restarted | head -n1)
lost=$(echo "$rs" | python3 -c 'import json,sys; print(json.load(sys.stdin)["frames_lost"])' 2>/dev/null)
note "d: killed worker pid ${victim:-none}; ${fd:-0} frames out (expected $(fc_range $SECS2 $RATE_A)); event: ${rs:-none}"
note "d: $(totals "$E2E_GW_LOG" d)"
# frames after the kill: the output's last video pts lies past the kill
span=$(ffprobe -v error -select_streams v:0 -show_entries packet=pts_time -of csv=p=0 "$E2E_DIR/d.ts" 2>/dev/null |
	python3 -c 'import sys; v=[float(l.strip().strip(",")) for l in sys.stdin if l.strip().strip(",")]; print("%.2f" % (max(v)-min(v)) if v else "0")')
if [ -z "$victim" ]; then
	fail sigkill_worker "no worker found serving d (start: ${r4:0:100})"
elif [ -z "$rs" ]; then
	fail sigkill_worker "no worker_restarted event"
elif [ -z "$lost" ] || [ "$lost" -gt 2 ]; then
	fail sigkill_worker "frames_lost '$lost' > 2 frames in flight"
elif ! fc_ok "$fd" $SECS2 $RATE_A; then
	fail sigkill_worker "${fd:-0} frames out, expected $(fc_range $SECS2 $RATE_A)"
elif ! less $((SECS2 - 2)) "$span"; then
	fail sigkill_worker "output spans $span s only (killed at ~1 s of $SECS2 s)"
else
	ok sigkill_worker
fi
note "d: output spans $span s of video"
e2e_wait_for $((5 * E2E_SLOW)) gw_health_is IDLE || note "health after c+d: $(gw_health)"

# ---- e: stop returns /health to IDLE (case 8a) -------------------------------
read_out e-out "$E2E_DIR/e.ts" $((30 * E2E_SLOW)); rd_e=$READ_PID
e2e_ready || note "a reader was slow to start"
publish e 20 256x256 30 noaudio
e2e_ready || note "a publisher was slow to start"
start_stream e "{$P256}" >/dev/null
sleep 1
h1=$(gw_health)
st=$(api POST /stream/stop "")
ts=$(date +%s.%N)
if ! e2e_wait_for $((3 * E2E_SLOW)) gw_health_is IDLE; then
	fail stop_idle "health $(gw_health) after stop (${st:0:100})"
elif ! wait_pid $rd_e $((5 * E2E_SLOW)); then
	fail stop_idle "output channel not closed after stop"
elif [ "$h1" != OK ] || [ "${st%% *}" != 200 ]; then
	fail stop_idle "health while running '$h1', stop answered ${st:0:100}"
else
	ok stop_idle
fi
note "e: IDLE and output closed $(python3 -c "print('%.2f' % ($(date +%s.%N) - $ts))") s after stop; $(probe_frames "$E2E_DIR/e.ts") frames"
kill -TERM -- "-$PUB_PID" 2>/dev/null

# ---- f: SIGTERM drains (case 8b) ---------------------------------------------
read_out f-out "$E2E_DIR/f.ts" $((30 * E2E_SLOW)); rd_f=$READ_PID
read_events f-events "$E2E_DIR/f.ev"; ev_f=$EV_PID
e2e_ready || note "a reader was slow to start"
publish f 20 256x256 30
e2e_ready || note "a publisher was slow to start"
start_stream f "{$P256}" >/dev/null
sleep 1.5
workers=$(gw_workers)
gwlog=$E2E_GW_LOG
ts=$(date +%s.%N)
gw_stop; gw_ok=$?
note "f: gateway exit $E2E_GW_RC $(python3 -c "print('%.2f' % ($(date +%s.%N) - $ts))") s after SIGTERM; workers were: $workers"
left=
for w in $workers; do kill -0 "$w" 2>/dev/null && left="$left $w"; done
wait_pid $rd_f 5; rd_ok=$?
wait_pid $ev_f 5
if [ "$E2E_GW_RC" != 0 ]; then
	fail sigterm_drain "gateway exit status $E2E_GW_RC"
elif [ -n "$left" ]; then
	fail sigterm_drain "workers still running:$left"
elif [ -z "$(events_of "$E2E_DIR/f.ev" stream_stopped)" ]; then
	fail sigterm_drain "no stream_stopped event"
elif [ $rd_ok -ne 0 ]; then
	fail sigterm_drain "output channel not closed"
elif [ -z "$workers" ]; then
	fail sigterm_drain "no worker process seen before SIGTERM"
else
	ok sigterm_drain
fi
if [ $gw_ok -ne 0 ] && gw_log_sanitizer; then
	fail sanitizers "the gateway log has sanitizer reports ($gwlog)"
else
	ok sanitizers_clean
fi
e2e_finish
