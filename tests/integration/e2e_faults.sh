#!/usr/bin/env bash
# End to end through build/trickle-server with faulty plugins: the hang
# fixture is killed after --frame-deadline and its stream goes on; the crash
# fixture crashing on every frame of one stream ends that stream only (crash
# budget) while /health stays not ERROR and a second stream keeps running;
# a plugin with process_audio (fixture_slow) gets the audio and its
# AUDIO_OUT reaches the output.
# Usage: tests/integration/e2e_faults.sh BUILD
set -u
cd "$(dirname "$0")/../.."
BUILD=${1:-build}
. tests/integration/lib.sh
e2e_init e2e_faults
for p in fixture_hang fixture_crash fixture_slow; do
	[ -f "$BUILD/plugins/$p.so" ] || { fail setup "$BUILD/plugins/$p.so not built"; e2e_finish; }
done
P256='"width":"256","height":"256"'
RATE=15
E2E_GATE=1 # inputs start sending when their stream starts (lib.sh publish_go)
ts_start

# ---- case 5: hang ---------------------------------------------------------------
# Each worker process hangs from its 25th frame on; a 4 s stream at 15 fps
# has 60 frames, so one hang (maybe two) happens, each caught after 500 ms.
DEADLINE=500
if gw_start --processor "$BUILD/plugins/fixture_hang.so" --processor-config '{"hang_after":25}' \
	--frame-deadline $DEADLINE --workers-per-gpu 2 --crash-budget 5/60 --max-resolution 512x512; then
	read_out h-out "$E2E_DIR/h.ts" $((30 * E2E_SLOW)); rd=$READ_PID
	read_events h-events "$E2E_DIR/h.ev"; ev=$EV_PID
	publish h 4 256x256 30 noaudio
	r=$(start_stream h "{$P256,\"max_framerate\":$RATE}")
	wait_pid $rd $((30 * E2E_SLOW))
	wait_pid $ev 5
	fh=$(probe_frames "$E2E_DIR/h.ts")
	rs=$(events_of "$E2E_DIR/h.ev" worker_restarted | head -n1)
	kills=$(grep -c 'frame deadline\|deadline' "$E2E_GW_LOG")
	note "h: ${fh:-0} frames out; $(grep 'msg="stream totals" stream=h ' "$E2E_GW_LOG" | sed 's/.*stream=h //')"
	note "h: event ${rs:-none}"
	grep -m2 -i 'deadline' "$E2E_GW_LOG" | cut -c1-220 | sed 's/^/#   /'
	if [ "${r%% *}" != 200 ]; then
		fail hang_deadline "start answered ${r:0:200}"
	elif [ "$kills" -eq 0 ]; then
		fail hang_deadline "no deadline kill in the gateway log"
	elif [ -z "$rs" ]; then
		fail hang_deadline "no worker_restarted event"
	elif [ -z "$fh" ] || [ "$fh" -le 30 ]; then
		fail hang_deadline "${fh:-0} frames out: the stream did not go on after the hang at frame 25"
	elif [ -z "$(events_of "$E2E_DIR/h.ev" stream_stopped)" ] || [ -n "$(events_of "$E2E_DIR/h.ev" error)" ]; then
		fail hang_deadline "the stream did not end cleanly: $(events_of "$E2E_DIR/h.ev" error)"
	else
		ok hang_deadline
	fi
	gw_stop || fail hang_gateway_exit "exit status $E2E_GW_RC or sanitizer reports"
else
	fail hang_deadline "gateway did not start"
fi

# ---- case 6: crash budget ---------------------------------------------------------
if gw_start --processor "$BUILD/plugins/fixture_crash.so" --workers-per-gpu 3 --spare-workers 1 \
	--crash-budget 3/60 --max-resolution 512x512; then
	read_out good-out "$E2E_DIR/good.ts" $((30 * E2E_SLOW)); rd=$READ_PID
	read_events bad-events "$E2E_DIR/bad.ev"; ev=$EV_PID
	publish good 5 256x256 30 noaudio
	publish bad 5 256x256 30 noaudio
	r1=$(start_stream good "{$P256,\"max_framerate\":$RATE}")
	r2=$(start_stream bad "{$P256,\"max_framerate\":$RATE}")
	# From now on every frame of "bad" crashes its worker (the params are
	# replayed to each next worker).
	p=$(api POST "/stream/params?stream_id=bad" '{"crash":true}')
	health=
	end=$((SECONDS + 30 * E2E_SLOW))
	while kill -0 $rd 2>/dev/null && [ $SECONDS -lt $end ]; do
		health="$health $(gw_health)"
		sleep 0.3
	done
	wait_pid $rd 1
	wait_pid $ev 5
	fg=$(probe_frames "$E2E_DIR/good.ts")
	err=$(events_of "$E2E_DIR/bad.ev" error | head -n1)
	note "good: ${fg:-0} frames; $(grep 'msg="stream totals" stream=good ' "$E2E_GW_LOG" | sed 's/.*stream=good //')"
	note "bad: error event ${err:-none}"
	note "health seen: $(echo $health | tr ' ' '\n' | sort | uniq -c | tr '\n' ' ')"
	if [ "${r1%% *}" != 200 ] || [ "${r2%% *}" != 200 ] || [ "${p%% *}" != 200 ]; then
		fail crash_budget "start/params answered ${r1:0:60} / ${r2:0:60} / ${p:0:60}"
	elif ! echo "$err" | grep -q 'crash budget'; then
		fail crash_budget "no crash budget error event for the bad stream"
	elif [[ "$health" == *ERROR* ]]; then
		fail crash_budget "/health went ERROR"
	elif [ -z "$fg" ] || [ "$fg" -lt $((5 * RATE - RATE - 2 - 5 * RATE / 10)) ]; then
		fail crash_budget "the good stream has ${fg:-0} frames of ~$((5 * RATE))"
	elif ! e2e_wait_for 5 gw_health_is IDLE; then
		fail crash_budget "health $(gw_health) after both streams ended"
	else
		ok crash_budget
	fi
	gw_stop || fail crash_gateway_exit "exit status $E2E_GW_RC or sanitizer reports"
else
	fail crash_budget "gateway did not start"
fi
# ---- audio through the worker (a plugin with process_audio) ----------------------
if gw_start --processor "$BUILD/plugins/fixture_slow.so" --workers-per-gpu 1 --max-resolution 512x512; then
	read_out au-out "$E2E_DIR/au.ts" $((30 * E2E_SLOW)); rd=$READ_PID
	read_out au "$E2E_DIR/au-in.ts" $((30 * E2E_SLOW))
	publish au 3 256x256 30
	r=$(start_stream au "{$P256,\"max_framerate\":$RATE}")
	wait_pid $rd $((30 * E2E_SLOW))
	ainfo=$(ffprobe -v error -select_streams a:0 -show_entries stream=codec_name,sample_rate,channels \
		-of csv=p=0 "$E2E_DIR/au.ts" 2>/dev/null | head -n1)
	adur=$(ffprobe -v error -select_streams a:0 -show_entries packet=duration_time -of csv=p=0 "$E2E_DIR/au.ts" 2>/dev/null |
		python3 -c 'import sys; print("%.2f" % sum(float(l.strip().strip(",")) for l in sys.stdin if l.strip().strip(",")))')
	read -r vs as <<<"$(av_start "$E2E_DIR/au.ts")"
	read -r ivs ias <<<"$(av_start "$E2E_DIR/au-in.ts")"
	note "au: audio $ainfo, ${adur:-0} s of it; starts at $as s (input $ias s), video at $vs s"
	tot=$(grep 'msg="stream totals" stream=au ' "$E2E_GW_LOG" | sed 's/.*stream=au //')
	back=$(echo "$tot" | sed -n 's/.*audio_from_worker=\([0-9]*\).*/\1/p')
	note "au: $tot"
	if [ "${r%% *}" != 200 ]; then
		fail audio_through_worker "start answered ${r:0:200}"
	elif grep -q 'bad audio descriptor\|without process_audio' "$E2E_GW_LOG"; then
		fail audio_through_worker "$(grep -m1 'bad audio descriptor\|without process_audio' "$E2E_GW_LOG" | cut -c1-200)"
	elif [ "${back:-0}" -eq 0 ]; then
		fail audio_through_worker "no AUDIO_OUT came back from the worker"
	elif [ "$ainfo" != "opus,48000,1" ]; then
		fail audio_through_worker "output audio '$ainfo'"
	elif ! less 2.0 "${adur:-0}" || ! within "$as" "$ias" 0.1; then
		fail audio_through_worker "${adur:-0} s of audio from a 3 s input, starting at $as s (input $ias s)"
	else
		ok audio_through_worker
	fi
	gw_stop || fail audio_gateway_exit "exit status $E2E_GW_RC or sanitizer reports"
else
	fail audio_through_worker "gateway did not start"
fi
# ---- audio off the input's timeline -----------------------------------------------
# A processor that returns its audio an hour later: the gateway drops that
# audio (counted, one log line) and the video goes on; before, every video
# frame looked late to the encoder's A/V sync and was dropped.
if gw_start --processor "$BUILD/plugins/fixture_slow.so" --processor-config '{"audio_pts_shift_s":3600}' \
	--workers-per-gpu 1 --max-resolution 512x512; then
	read_out as-out "$E2E_DIR/as.ts" $((30 * E2E_SLOW)); rd=$READ_PID
	publish as 4 256x256 30
	r=$(start_stream as "{$P256,\"max_framerate\":$RATE}")
	wait_pid $rd $((30 * E2E_SLOW))
	f=$(probe_frames "$E2E_DIR/as.ts")
	tot=$(grep 'msg="stream totals" stream=as ' "$E2E_GW_LOG" | sed 's/.*stream=as //')
	adrop=$(echo "$tot" | sed -n 's/.*audio_dropped=\([0-9]*\).*/\1/p')
	note "as: ${f:-0} frames out; $tot"
	if [ "${r%% *}" != 200 ]; then
		fail audio_pts_off_timeline "start answered ${r:0:200}"
	elif ! grep -q "worker audio dropped: pts off the input's timeline" "$E2E_GW_LOG"; then
		fail audio_pts_off_timeline "no 'pts off the input's timeline' line"
	elif [ "${adrop:-0}" -lt 10 ]; then
		fail audio_pts_off_timeline "audio_dropped=${adrop:-0}: the shifted audio was not refused"
	elif [ -z "$f" ] || [ "$f" -lt $((4 * RATE / 2)) ]; then
		fail audio_pts_off_timeline "${f:-0} video frames out of ~$((4 * RATE)): the video did not go on"
	else
		ok audio_pts_off_timeline
	fi
	gw_stop || fail audio_pts_gateway_exit "exit status $E2E_GW_RC or sanitizer reports"
else
	fail audio_pts_off_timeline "gateway did not start"
fi
e2e_finish
