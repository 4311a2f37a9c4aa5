#!/usr/bin/env bash
# The fault matrix of issue #7 end to end (docs/reliability-matrix.md): abort
# in init, hang in update_params, unbounded allocation under --mem-limit-mb,
# the input server unreachable for 2 s (tcp_proxy), 5xx on the output URL,
# input gone silent, failing events POSTs, and the security checks on a live
# gateway (0700 runtime dir and sockets, sealed memfds, no_new_privs, no
# secret in logs, the warning for a non-loopback API without a token).
# Usage: tests/integration/faults.sh BUILD
set -u
cd "$(dirname "$0")/../.."
BUILD=${1:-build}
. tests/integration/lib.sh
e2e_init faults
for p in passthrough fixture_hang fixture_crash fixture_leak; do
	[ -f "$BUILD/plugins/$p.so" ] || { fail setup "$BUILD/plugins/$p.so not built"; e2e_finish; }
done
[ -x "$BUILD/tests/helpers/tcp_proxy" ] || { fail setup "$BUILD/tests/helpers/tcp_proxy not built"; e2e_finish; }
P256='"width":"256","height":"256"'
RATE=15
# FAULTS_ONLY="init params leak out io": run only those groups (debugging).
want() { [ -z "${FAULTS_ONLY:-}" ] || [[ " $FAULTS_ONLY " == *" $1 "* ]]; }
# Inputs start sending when their stream is started (lib.sh publish_go), not
# when the publisher is launched: a short input is never over before a slow
# gateway subscribes.
E2E_GATE=1
ts_start
has_bytes() { [ -s "$1" ]; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
secs_since() { python3 -c "print('%.2f' % ($(now) - $1))"; }
totals() { grep "msg=\"stream totals\" stream=$1 " "$E2E_GW_LOG" | sed "s/.*stream=$1 //"; }
# start_raw ID SUB PUB EVENTS: POST /stream/start with explicit URLs.
start_raw() {
	api POST /stream/start "{\"subscribe_url\":\"$2\",\"publish_url\":\"$3\",
		\"events_url\":\"$4\",\"gateway_request_id\":\"$1\",
		\"params\":{$P256,\"max_framerate\":$RATE}}"
}

# ---- 1: abort inside init -------------------------------------------------------
# No worker ever becomes ready: /health must say LOADING (never IDLE or OK),
# /stream/start is refused, the workers are respawned with backoff. Also the
# API on 0.0.0.0 without a token must warn at start (security).
if want init; then
E2E_GW_LOG=$E2E_DIR/gateway.init.log
e2e_bg "$BUILD/gateway" --host 0.0.0.0 --port 0 --gpus none --workers-per-gpu 1 \
	--processor "$BUILD/plugins/fixture_crash.so" --processor-config '{"crash_in":"init"}' \
	>"$E2E_GW_LOG" 2>&1
E2E_GW_PID=$E2E_BG
port=
e2e_wait_for $((10 * E2E_SLOW)) grep -q 'msg="serving" port=' "$E2E_GW_LOG" &&
	port=$(grep -o 'msg="serving" port=[0-9]*' "$E2E_GW_LOG" | head -n1 | tr -dc '0-9')
if [ -n "$port" ]; then
	API=http://127.0.0.1:$port
	health=
	for i in $(seq 1 $((12 * E2E_SLOW))); do health="$health $(gw_health)"; sleep 0.25; done
	r=$(start_stream x "{$P256}")
	spawns=$(grep -c 'worker.*\(exit\|died\|signal\|crash\)' "$E2E_GW_LOG")
	note "init_abort: health seen: $(echo $health | tr ' ' '\n' | sort | uniq -c | tr '\n' ' ')"
	note "init_abort: $spawns worker death lines in 3 s; start answered ${r:0:90}"
	grep -m3 'worker.*\(exit\|died\|signal\|backoff\)' "$E2E_GW_LOG" | cut -c1-200 | sed 's/^/#   /'
	if [[ "$health" == *IDLE* || "$health" == *OK* ]]; then
		fail init_abort "/health said IDLE/OK with no ready worker: $health"
	elif [[ "$health" != *LOADING* ]]; then
		fail init_abort "/health never said LOADING: $health"
	elif [ "${r%% *}" = 200 ]; then
		fail init_abort "a stream was accepted without a ready worker"
	elif [ "$spawns" -lt 2 ]; then
		fail init_abort "the worker was not respawned ($spawns deaths seen)"
	else
		ok init_abort
	fi
	if grep -q 'beyond loopback without --auth-token' "$E2E_GW_LOG"; then
		ok sec_warn_open_api
	else
		fail sec_warn_open_api "no warning for --host 0.0.0.0 without a token"
	fi
	gw_stop || fail init_gateway_exit "exit status $E2E_GW_RC or sanitizer reports"
else
	fail init_abort "gateway did not start"
fi
fi

# ---- 2: hang in update_params ---------------------------------------------------
# The worker is killed after the params deadline (= --frame-deadline); the
# stream goes on on the spare, and the params that hung a worker are not
# replayed to the next one.
if ! want params; then :
elif gw_start --processor "$BUILD/plugins/fixture_hang.so" --processor-config '{"hang_after":-1}' \
	--frame-deadline 700 --workers-per-gpu 2 --crash-budget 3/60 --max-resolution 512x512; then
	read_out hp-out "$E2E_DIR/hp.ts" $((30 * E2E_SLOW)); rd=$READ_PID
	read_events hp-events "$E2E_DIR/hp.ev"; ev=$EV_PID
	publish hp 6 256x256 30 noaudio
	r=$(start_stream hp "{$P256,\"max_framerate\":$RATE}")
	# the hang comes once the stream runs (output seen), not after a guess
	e2e_wait_for $((10 * E2E_SLOW)) has_bytes "$E2E_DIR/hp.ts" || note "hang_params: no output yet"
	t0=$(now)
	p=$(api POST "/stream/params?stream_id=hp" '{"hang_params":true}')
	e2e_wait_for $((10 * E2E_SLOW)) grep -q 'params deadline' "$E2E_GW_LOG" && note "hang_params: killed $(secs_since $t0) s after the POST"
	wait_pid $rd $((30 * E2E_SLOW))
	wait_pid $ev 5
	f=$(probe_frames "$E2E_DIR/hp.ts")
	note "hang_params: ${f:-0} frames out; $(totals hp)"
	note "hang_params: params answered ${p:0:80}"
	if [ "${r%% *}" != 200 ]; then
		fail hang_params "start answered ${r:0:200}"
	elif ! grep -q 'params deadline' "$E2E_GW_LOG"; then
		fail hang_params "no params deadline kill in the gateway log"
	elif [ -z "$(events_of "$E2E_DIR/hp.ev" worker_restarted)" ]; then
		fail hang_params "no worker_restarted event"
	elif [ -n "$(events_of "$E2E_DIR/hp.ev" error)" ]; then
		fail hang_params "the stream ended with $(events_of "$E2E_DIR/hp.ev" error)"
	elif [ -z "$f" ] || [ "$f" -le $((2 * RATE)) ]; then
		fail hang_params "${f:-0} frames out: the stream did not go on"
	else
		ok hang_params
	fi
	gw_stop || fail hang_params_gateway_exit "exit status $E2E_GW_RC or sanitizer reports"
else
	fail hang_params "gateway did not start"
fi

# ---- 3: unbounded allocation under --mem-limit-mb -------------------------------
if ! want leak; then :
elif [ "$E2E_SAN" = 1 ]; then
	note "mem_limit skipped: RLIMIT_AS under ASan"
	ok mem_limit
elif gw_start --processor "$BUILD/plugins/fixture_leak.so" \
	--processor-config '{"mb_per_frame":32,"touch":false}' \
	--mem-limit-mb 768 --workers-per-gpu 2 --crash-budget 20/60 --max-resolution 512x512; then
	# A worker reaches the limit after about a dozen frames; a 10 s input
	# leaves room for several replacements even on a slow machine.
	read_out lk-out "$E2E_DIR/lk.ts" $((30 * E2E_SLOW)); rd=$READ_PID
	read_events lk-events "$E2E_DIR/lk.ev"; ev=$EV_PID
	publish lk 10 256x256 30 noaudio
	r=$(start_stream lk "{$P256,\"max_framerate\":$RATE}")
	wait_pid $rd $((30 * E2E_SLOW))
	wait_pid $ev 5
	f=$(probe_frames "$E2E_DIR/lk.ts")
	nrs=$(events_of "$E2E_DIR/lk.ev" worker_restarted | wc -l)
	# frames the first worker passed through before the limit stopped it
	f1=$(grep -m1 'proc=worker/[0-9]* mod=worker msg="exiting" status=[^0]' "$E2E_GW_LOG" |
		sed -n 's/.* frames=\([0-9]*\).*/\1/p')
	nrec=$(grep -c 'stream recovered on a new worker' "$E2E_GW_LOG")
	note "mem_limit: ${f:-0} frames out, first worker ${f1:-?}, $nrs restarts, $nrec recoveries; $(totals lk)"
	grep -m2 'worker.*\(exit\|died\|signal\)' "$E2E_GW_LOG" | cut -c1-200 | sed 's/^/#   /'
	if [ "${r%% *}" != 200 ]; then
		fail mem_limit "start answered ${r:0:200}"
	elif [ "$nrs" -lt 1 ] || [ -z "$f1" ]; then
		fail mem_limit "the leaking worker was never replaced"
	elif ! grep -q 'plugin out of memory at the worker.s limit' "$E2E_GW_LOG"; then
		fail mem_limit "no 'out of memory at the worker's limit' line: the worker did not exit on its first ENOMEM at the limit"
	elif [ "$nrec" -lt 1 ] || [ -z "$f" ] || [ "$f" -le "$f1" ]; then
		fail mem_limit "${f:-0} frames out, ${f1} from the first worker: the stream did not go on"
	elif ! kill -0 "$E2E_GW_PID" 2>/dev/null; then
		fail mem_limit "the gateway died"
	else
		ok mem_limit
	fi
	gw_stop || fail mem_limit_gateway_exit "exit status $E2E_GW_RC or sanitizer reports"
else
	fail mem_limit "gateway did not start"
fi

# ---- 4, 8: bad plugin output; a slow output server -------------------------------
# fixture_crash passes frames through; params {"bad_out":...} make it return 3
# frames the worker must refuse (size beyond the slot, another format, a plane
# outside the slot). The second stream publishes to a server that reads
# 10 KB/s: the publisher's queue is bounded, segments are dropped and counted.
if ! want out; then :
elif gw_start --processor "$BUILD/plugins/fixture_crash.so" --workers-per-gpu 2 --spare-workers 0 \
	--max-resolution 512x512; then
	PSLOW=$(free_port)
	e2e_bg python3 -c '
import http.server, sys, time
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def ok(self):
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def do_POST(self):
        if self.headers.get("Transfer-Encoding", "") == "chunked":
            tail = b""
            while not tail.endswith(b"0\r\n\r\n"):
                b = self.rfile.read1(512)
                if not b:
                    return
                tail = (tail + b)[-16:]
                time.sleep(0.05)
        else:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.ok()
    do_GET = do_DELETE = ok
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()' "$PSLOW"
	e2e_wait_for 5 curl -s -o /dev/null "http://127.0.0.1:$PSLOW/x"
	E2E_LAZY=1
	read_events bo-events "$E2E_DIR/bo.ev"; ebo=$EV_PID
	read_out bo-out "$E2E_DIR/bo.ts" $((30 * E2E_SLOW)); rbo=$READ_PID
	read_events sl-events "$E2E_DIR/sl.ev"; esl=$EV_PID
	e2e_ready || note "readers slow to start"
	unset E2E_LAZY
	publish bo 6 256x256 30 noaudio
	publish sl 6 512x512 30 noaudio
	rss0=$(ps -o rss= -p "$E2E_GW_PID" | tr -dc '0-9')
	r1=$(start_stream bo "{$P256,\"max_framerate\":$RATE}")
	r2=$(api POST /stream/start "{\"subscribe_url\":\"$T/sl\",\"publish_url\":\"http://127.0.0.1:$PSLOW/sl-out\",
		\"events_url\":\"$T/sl-events\",\"gateway_request_id\":\"sl\",
		\"params\":{\"width\":\"512\",\"height\":\"512\",\"max_framerate\":30}}")
	publish_go sl
	rssmax=$rss0
	e2e_wait_for $((10 * E2E_SLOW)) has_bytes "$E2E_DIR/bo.ts" || note "bad_output: no output yet"
	# Back to back once bo has output: the fixture queues the kinds (3 asks,
	# 9 refused frames however the frames are timed), and a loaded machine
	# may leave little of the input after its first output.
	pbo=
	for kind in size format plane; do
		pbo="$pbo $(api POST "/stream/params?stream_id=bo" "{\"bad_out\":\"$kind\"}" | cut -c1-3)"
		r=$(ps -o rss= -p "$E2E_GW_PID" | tr -dc '0-9'); [ "${r:-0}" -gt "$rssmax" ] && rssmax=$r
	done
	end=$((SECONDS + 40 * E2E_SLOW))
	while kill -0 $esl 2>/dev/null && [ $SECONDS -lt $end ]; do
		r=$(ps -o rss= -p "$E2E_GW_PID" | tr -dc '0-9'); [ "${r:-0}" -gt "$rssmax" ] && rssmax=$r
		sleep 0.3
	done
	wait_pid $rbo $((30 * E2E_SLOW)); wait_pid $ebo 5; wait_pid $esl $((30 * E2E_SLOW))
	fbo=$(probe_frames "$E2E_DIR/bo.ts")
	tbo=$(totals bo)
	dw=$(echo "$tbo" | sed -n 's/.*drop_worker=\([0-9]*\).*/\1/p')
	note "bad_output: ${fbo:-0} frames out; params answered$pbo; $tbo"
	grep -m3 'invalid\|refus' "$E2E_GW_LOG" | cut -c1-220 | sed 's/^/#   /'
	if [ "${r1%% *}" != 200 ]; then
		fail bad_output "start answered ${r1:0:200}"
	elif [ "$pbo" != " 200 200 200" ]; then
		fail bad_output "params answered$pbo"
	elif [ "${dw:-0}" -lt 9 ]; then
		fail bad_output "drop_worker=${dw:-0}, expected at least 9 refused frames"
	elif grep -q 'msg="worker died"' "$E2E_GW_LOG"; then
		fail bad_output "a worker died: $(grep -m1 'msg="worker died"' "$E2E_GW_LOG" | cut -c1-200)"
	elif [ -z "$fbo" ] || [ "$fbo" -lt $((6 * RATE - RATE - 9 - 2 - 6 * RATE / 10)) ]; then
		fail bad_output "${fbo:-0} frames out of ~$((6 * RATE))"
	elif [ -n "$(events_of "$E2E_DIR/bo.ev" error)" ]; then
		fail bad_output "the stream ended with $(events_of "$E2E_DIR/bo.ev" error)"
	else
		ok bad_output
	fi
	slend=$(grep -m1 'msg="stream ended" stream=sl ' "$E2E_GW_LOG" | sed 's/.*\(reason="[^"]*"\).*/\1/')
	note "slow_output: gateway RSS ${rss0} kB before, ${rssmax} kB at most; end $slend"
	note "slow_output: $(totals sl)"
	if [ "${r2%% *}" != 200 ]; then
		fail slow_output "start answered ${r2:0:200}"
	elif ! kill -0 "$E2E_GW_PID" 2>/dev/null; then
		fail slow_output "the gateway died"
	elif [ -z "$slend" ] || [ -n "$(events_of "$E2E_DIR/sl.ev" error)" ]; then
		fail slow_output "the stream did not end cleanly: ${slend:-running} $(events_of "$E2E_DIR/sl.ev" error)"
	elif ! e2e_wait_for 5 gw_health_is IDLE; then
		fail slow_output "health $(gw_health) while the output drains"
	elif [ $((rssmax - rss0)) -gt $((96 * 1024)) ]; then
		fail slow_output "gateway RSS grew by $(((rssmax - rss0) / 1024)) MiB"
	else
		ok slow_output
	fi
	gw_stop || fail out_gateway_exit "exit status $E2E_GW_RC or sanitizer reports"
	# The slow server still reads segment 0: its totals come at the stop.
	note "slow_output at stop: $(grep -m1 'msg="output totals" stream=sl ' "$E2E_GW_LOG" | sed 's/.*stream=sl //')"
else
	fail bad_output "gateway did not start"
fi

# ---- 5, 6, 7, 9, 10: passthrough gateway with a token and a refusing orchestrator --
TOKEN=tok-$RANDOM$RANDOM-faults
SECRET=sec-$RANDOM$RANDOM-faults
CLOSED=$(free_port)
E2E_AUTH=$TOKEN
if ! want io; then :
elif ORCH_URL=http://127.0.0.1:$CLOSED ORCH_SECRET=$SECRET \
	gw_start --processor "$BUILD/plugins/passthrough.so" --auth-token "$TOKEN" \
	--workers-per-gpu 3 --spare-workers 0 --input-silence 8 --max-resolution 512x512 ${FAULTS_DEBUG:+--log-level debug}; then
	# A 503 responder for the output, a proxy in front of the trickle server.
	P503=$(free_port)
	e2e_bg python3 -c '
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def answer(self):
        self.close_connection = True
        self.send_response(503); self.send_header("Content-Length", "0"); self.end_headers()
    do_GET = do_POST = do_DELETE = do_PUT = answer
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()' "$P503"
	PXPORT=$(free_port)
	TSPORT=${T##*:}
	e2e_bg "$BUILD/tests/helpers/tcp_proxy" "$PXPORT" "$TSPORT"; PX=$E2E_BG
	e2e_wait_for 5 curl -s -o /dev/null "http://127.0.0.1:$P503/x"
	e2e_wait_for 5 curl -s -o /dev/null "http://127.0.0.1:$PXPORT/"

	E2E_LAZY=1
	read_out px-out "$E2E_DIR/px.ts" $((40 * E2E_SLOW)); rpx=$READ_PID
	read_events px-events "$E2E_DIR/px.ev"; epx=$EV_PID
	read_out ev-out "$E2E_DIR/ev.ts" $((40 * E2E_SLOW)); rev=$READ_PID
	read_events b5-events "$E2E_DIR/b5.ev"; eb5=$EV_PID
	e2e_ready || note "readers slow to start"
	unset E2E_LAZY
	# /health every 0.3 s in the background while the streams run.
	poll_health() { while :; do echo "$(gw_health)"; sleep 0.3; done; }
	e2e_bg bash -c "API=$API; $(declare -f gw_health poll_health); poll_health" >"$E2E_DIR/health.io"
	HP=$E2E_BG
	publish px 14 256x256 30 noaudio
	publish ev 3 256x256 30 noaudio
	publish b5 3 256x256 30 noaudio
	r1=$(start_raw px "http://127.0.0.1:$PXPORT/px" "$T/px-out" "$T/px-events")
	r2=$(start_raw ev "$T/ev" "$T/ev-out" "http://127.0.0.1:$CLOSED/ev-events")
	r3=$(start_raw b5 "$T/b5" "http://127.0.0.1:$P503/b5-out" "$T/b5-events")
	publish_go px ev b5
	# 5: the input server goes away for 2 s, 2 s into the stream (less than
	# --input-silence: the silence timer runs while the input reconnects):
	# once px has output, so the cut is mid-stream however slow the start.
	e2e_wait_for $((10 * E2E_SLOW)) has_bytes "$E2E_DIR/px.ts" || note "input_outage: no output yet"
	sleep 1
	kill -TERM "$PX" 2>/dev/null; wait "$PX" 2>/dev/null
	t_down=$(now)
	sleep 2
	e2e_bg "$BUILD/tests/helpers/tcp_proxy" "$PXPORT" "$TSPORT"; PX=$E2E_BG
	note "proxy: down for $(secs_since $t_down) s"

	# 10: security checks while three streams run.
	wk=$(gw_workers)
	ipcdir=$(ls -d /tmp/ctrickle-$E2E_GW_PID-* ${XDG_RUNTIME_DIR:-/nonexistent}/ctrickle-$E2E_GW_PID-* 2>/dev/null | head -n1)
	modes=$( [ -n "$ipcdir" ] && stat -c '%a %n' "$ipcdir" "$ipcdir"/* 2>/dev/null)
	note "sec: runtime dir ${ipcdir:-none}: $(echo "$modes" | awk '{print $1}' | sort | uniq -c | tr '\n' ' ')"
	if [ -z "$ipcdir" ]; then
		fail sec_runtime_dir_0700 "no runtime dir of the gateway found"
	elif [ "$(echo "$modes" | head -n1 | cut -d' ' -f1)" != 700 ]; then
		fail sec_runtime_dir_0700 "$(echo "$modes" | head -n1)"
	elif echo "$modes" | tail -n +2 | awk '{ if ($1 !~ /^[0-7]00$/) bad = 1 } END { exit !bad }'; then
		fail sec_runtime_dir_0700 "an entry open to group/others: $(echo "$modes" | tr '\n' ';')"
	else
		ok sec_runtime_dir_0700
	fi
	# memfds: seals must include grow and shrink; growing one must fail EPERM.
	seal=$(python3 - "$E2E_GW_PID" <<'PY'
import fcntl, os, sys
pid = sys.argv[1]; n = 0; bad = []
for fd in os.listdir("/proc/%s/fd" % pid):
    p = "/proc/%s/fd/%s" % (pid, fd)
    try:
        if not os.readlink(p).startswith("/memfd:ctrickle-ring"):
            continue
        f = os.open(p, os.O_RDONLY)
    except OSError:
        continue
    n += 1
    seals = fcntl.fcntl(f, 1034)  # F_GET_SEALS
    size = os.fstat(f).st_size
    if seals & 0x6 != 0x6:  # F_SEAL_SHRINK | F_SEAL_GROW
        bad.append("fd %s seals 0x%x" % (fd, seals))
    os.close(f)
    try:
        w = os.open(p, os.O_RDWR)
    except OSError:
        continue
    try:
        os.ftruncate(w, size + 4096)
        bad.append("fd %s grew" % fd)
    except OSError as e:
        if e.errno != 1:
            bad.append("fd %s errno %d" % (fd, e.errno))
    os.close(w)
print(n, ";".join(bad))
PY
)
	note "sec: memfds checked: $seal"
	if [ "${seal%% *}" = 0 ] || [ -z "$seal" ]; then
		fail sec_memfd_sealed "no ring memfd found in the gateway"
	elif [ -n "${seal#* }" ]; then
		fail sec_memfd_sealed "${seal#* }"
	else
		ok sec_memfd_sealed
	fi
	nnp=
	for w in $wk; do nnp="$nnp $(sed -n 's/^NoNewPrivs:[[:space:]]*//p' /proc/$w/status 2>/dev/null)"; done
	note "sec: workers [$wk] NoNewPrivs:$nnp"
	if [ -z "$wk" ] || [ -z "${nnp// /}" ]; then
		fail sec_no_new_privs "no worker to check"
	elif [[ "$nnp" == *0* ]]; then
		fail sec_no_new_privs "a worker runs without no_new_privs:$nnp"
	else
		ok sec_no_new_privs
	fi

	wait_pid $rpx $((30 * E2E_SLOW)); wait_pid $rev 10; wait_pid $epx 5; wait_pid $eb5 10
	kill -TERM -- "-$HP" 2>/dev/null; wait "$HP" 2>/dev/null
	health=$(grep . "$E2E_DIR/health.io" | tr '\n' ' ')
	note "health seen: $(echo $health | tr ' ' '\n' | sort | uniq -c | tr '\n' ' ')"

	# 5: output after the outage (the input resumes where it was cut).
	fpx=$(probe_frames "$E2E_DIR/px.ts")
	span=$(ffprobe -v error -select_streams v:0 -show_entries packet=pts_time -of csv=p=0 "$E2E_DIR/px.ts" 2>/dev/null |
		python3 -c 'import sys; v=sorted(float(l.strip(",\n")) for l in sys.stdin if l.strip(",\n")); print("%.2f %.2f" % (v[-1]-v[0], max(b-a for a,b in zip(v,v[1:]))) if len(v)>1 else "0 0")')
	read -r span gap <<<"$span"
	note "input_outage: ${fpx:-0} frames spanning ${span} s of a 14 s input, largest pts gap ${gap} s; $(totals px)"
	grep "stream=px " "$E2E_GW_LOG" | grep -i 'input\|retry\|reconnect' | head -n3 | cut -c1-200 | sed 's/^/#   /'
	if [ "${r1%% *}" != 200 ]; then
		fail input_outage "start answered ${r1:0:200}"
	elif [ -z "$fpx" ] || ! less 9.0 "$span"; then
		fail input_outage "${fpx:-0} frames spanning $span s: no output after the outage"
	elif [ -n "$(events_of "$E2E_DIR/px.ev" error)" ]; then
		fail input_outage "the stream ended with $(events_of "$E2E_DIR/px.ev" error)"
	else
		ok input_outage
	fi

	# 9: events POSTs refused: the stream goes on, failures are logged.
	fev=$(probe_frames "$E2E_DIR/ev.ts")
	evfail=$(grep -c 'msg="event not delivered" stream=ev ' "$E2E_GW_LOG")
	note "events_refused: ${fev:-0} frames out, $evfail 'event not delivered' lines; $(totals ev)"
	if [ "${r2%% *}" != 200 ]; then
		fail events_refused "start answered ${r2:0:200}"
	elif [ -z "$fev" ] || [ "$fev" -lt $((3 * RATE - RATE - 2 - 3 * RATE / 10)) ]; then
		fail events_refused "${fev:-0} frames out of a 3 s input"
	elif [ "$evfail" -lt 1 ]; then
		fail events_refused "no 'event not delivered' in the log"
	elif ! grep -q 'msg="stream ended" stream=ev reason="input ended"' "$E2E_GW_LOG"; then
		fail events_refused "$(grep -m1 'stream ended.*stream=ev ' "$E2E_GW_LOG" | cut -c1-200)"
	else
		ok events_refused
	fi

	# 6: the output answers 503: failures logged, the gateway keeps serving.
	segf=$(grep -c 'msg="output segment failed" stream=b5 ' "$E2E_GW_LOG")
	b5end=$(grep -m1 'stream ended.*stream=b5 ' "$E2E_GW_LOG" | sed 's/.*\(reason="[^"]*"\).*/\1/')
	note "output_5xx: $segf failed segments logged; end $b5end; error event: $(events_of "$E2E_DIR/b5.ev" error | head -n1)"
	note "output_5xx: $(totals b5)"
	if [ "${r3%% *}" != 200 ]; then
		fail output_5xx "start answered ${r3:0:200}"
	elif ! kill -0 "$E2E_GW_PID" 2>/dev/null; then
		fail output_5xx "the gateway died"
	elif [ "$segf" -lt 1 ] && [ -z "$(events_of "$E2E_DIR/b5.ev" error)" ]; then
		fail output_5xx "neither failed segments nor an error event"
	elif [ -z "$b5end" ]; then
		fail output_5xx "the stream did not end"
	elif [[ "$health" == *ERROR* ]]; then
		fail output_5xx "/health went ERROR"
	else
		ok output_5xx
	fi

	# 7: input gone silent (--input-silence 8): a segment that stays open
	# after 1 s of data.
	e2e_wait_for 5 gw_health_is IDLE
	ffmpeg -v error -nostdin -f lavfi -i "testsrc2=size=256x256:rate=30" -t 1 -c:v libx264 \
		-preset ultrafast -bf 0 -g 30 -pix_fmt yuv420p -f mpegts "$E2E_DIR/sil-in.ts"
	curl -s -o /dev/null -X POST "$T/sil"
	e2e_bg python3 -c '
import http.client, sys, time
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
c.putrequest("POST", "/sil/0"); c.putheader("Transfer-Encoding", "chunked")
c.putheader("Content-Type", "video/mp2t"); c.endheaders()
d = open(sys.argv[2], "rb").read()
c.send(b"%x\r\n" % len(d) + d + b"\r\n")
open(sys.argv[2] + ".sent", "w").close()
time.sleep(60)' "$TSPORT" "$E2E_DIR/sil-in.ts"
	SILPUB=$E2E_BG
	read_events sil-events "$E2E_DIR/sil.ev"; esil=$EV_PID
	rs=$(api POST /stream/start "{\"subscribe_url\":\"$T/sil\",\"events_url\":\"$T/sil-events\",
		\"gateway_request_id\":\"sil\",\"params\":{$P256,\"max_framerate\":$RATE}}")
	e2e_wait_for 5 test -e "$E2E_DIR/sil-in.ts.sent"
	t0=$(now)
	e2e_wait_for $((15 * E2E_SLOW)) grep -q 'stream ended.*stream=sil ' "$E2E_GW_LOG"
	note "input_silence: ended $(secs_since $t0) s after the last input byte: $(grep -m1 'msg="input ended" stream=sil ' "$E2E_GW_LOG" | sed 's/.*stream=sil //')"
	wait_pid $esil 5
	kill -TERM -- "-$SILPUB" 2>/dev/null; wait "$SILPUB" 2>/dev/null
	if [ "${rs%% *}" != 200 ]; then
		fail input_silence "start answered ${rs:0:200}"
	elif ! grep -q 'msg="input ended" stream=sil reason=input_silence' "$E2E_GW_LOG"; then
		fail input_silence "no input_silence end: $(grep 'stream=sil ' "$E2E_GW_LOG" | tail -n2 | cut -c1-200)"
	elif [ -z "$(events_of "$E2E_DIR/sil.ev" stream_stopped)" ]; then
		fail input_silence "no stream_stopped event"
	elif ! e2e_wait_for 5 gw_health_is IDLE; then
		fail input_silence "health $(gw_health) after the stream ended"
	else
		ok input_silence
	fi

	gw_stop || fail passthrough_gateway_exit "exit status $E2E_GW_RC or sanitizer reports"
	# 10: neither the token nor the orchestrator secret in any log.
	if grep -l -- "$TOKEN\|$SECRET" "$E2E_DIR"/*.log >/dev/null 2>&1; then
		fail sec_no_secret_in_logs "$(grep -l -- "$TOKEN\|$SECRET" "$E2E_DIR"/*.log | tr '\n' ' ')"
	elif ! grep -qi 'regist' "$E2E_GW_LOG"; then
		fail sec_no_secret_in_logs "no registration attempt logged (the check saw nothing)"
	else
		ok sec_no_secret_in_logs
	fi
else
	fail passthrough_faults "gateway did not start"
fi
unset E2E_AUTH
e2e_finish
