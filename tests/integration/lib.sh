# Shared helpers of the end-to-end tests (sourced, not run): a private
# trickle-server and gateway on ports picked at bind time (--port 0), live
# test streams published and read through the trickle server, case results
# as "ok NAME" / "FAIL NAME: why" and the "N passed, N failed" summary.
# Every process started here is in its own process group and killed on exit.
# Usage: BUILD=$1; . tests/integration/lib.sh; e2e_init NAME

E2E_PASSED=0
E2E_FAILED=0
E2E_PGIDS=()
E2E_GW_PID=
E2E_GW_LOG=
E2E_SAN=0
E2E_NGW=0

# e2e_init NAME: temp dir, traps, tools check. BUILD must be set.
e2e_init() {
	E2E_NAME=$1
	E2E_DIR=$(mktemp -d "/tmp/e2e-$1.XXXXXX")
	trap e2e_cleanup EXIT
	trap 'exit 130' INT TERM
	E2E_T0=$(date +%s.%N)
	# Timeouts (waits for a condition, never a pass threshold) scale with
	# E2E_SLOW: 1, 3 for a SAN=1 build, doubled on a machine loaded past
	# 2 runnable tasks a core; E2E_SLOW=N in the environment (CI) wins.
	local slow=1
	if nm "$BUILD/gateway" 2>/dev/null | grep -q __asan_init; then
		E2E_SAN=1
		slow=3
	fi
	if awk -v n="$(nproc 2>/dev/null || echo 1)" '{ exit !($1 > 2 * n) }' /proc/loadavg 2>/dev/null; then
		slow=$((slow * 2))
	fi
	E2E_SLOW=${E2E_SLOW:-$slow}
	local m
	for m in gateway worker trickle-server; do
		[ -x "$BUILD/$m" ] || { fail setup "$BUILD/$m not built"; e2e_finish; }
	done
	for m in ffmpeg ffprobe curl python3; do
		command -v $m >/dev/null || { fail setup "$m not installed"; e2e_finish; }
	done
}

e2e_cleanup() {
	local g
	for g in "${E2E_PGIDS[@]}"; do kill -TERM -- "-$g" 2>/dev/null; done
	sleep 0.2
	for g in "${E2E_PGIDS[@]}"; do kill -KILL -- "-$g" 2>/dev/null; done
	if [ -n "${E2E_KEEP:-}" ]; then
		echo "# logs kept in $E2E_DIR"
	else
		rm -rf "$E2E_DIR"
	fi
}

ok() { echo "ok $1"; E2E_PASSED=$((E2E_PASSED + 1)); }
fail() { echo "FAIL $1: $2"; E2E_FAILED=$((E2E_FAILED + 1)); }
note() { echo "# $*"; }

# e2e_finish: the summary line; exit status 1 when a case failed.
e2e_finish() {
	note "$E2E_NAME took $(python3 -c "print('%.1f s' % ($(date +%s.%N) - $E2E_T0))")"
	echo "$E2E_PASSED passed, $E2E_FAILED failed"
	[ "$E2E_FAILED" -eq 0 ] && exit 0
	exit 1
}

# e2e_bg CMD...: runs CMD in the background in its own process group
# (killed at exit); sets E2E_BG to its pid.
e2e_bg() {
	setsid "$@" &
	E2E_BG=$!
	E2E_PGIDS+=("$E2E_BG")
}

# e2e_wait_for SECONDS CMD...: polls CMD every 0.1 s until it succeeds.
e2e_wait_for() {
	local end=$((SECONDS + $1)); shift
	until "$@"; do
		[ $SECONDS -ge $end ] && return 1
		sleep 0.1
	done
}

# ts_start: a trickle server on a free port; sets T (its base URL).
ts_start() {
	local pf=$E2E_DIR/ts.port
	e2e_bg "$BUILD/trickle-server" --host 127.0.0.1 --port 0 --port-file "$pf" \
		--log-level warn >"$E2E_DIR/trickle-server.log" 2>&1
	e2e_wait_for 10 test -s "$pf" || { fail setup "trickle-server did not start"; e2e_finish; }
	T=http://127.0.0.1:$(cat "$pf")
}

# gw_start ARGS...: a gateway on a free port with ARGS (--processor etc.);
# waits for /health IDLE. Sets API, E2E_GW_PID, E2E_GW_LOG. Returns 1 on failure.
gw_start() {
	E2E_GW_LOG=$E2E_DIR/gateway.$((++E2E_NGW)).log
	e2e_bg "$BUILD/gateway" --host 127.0.0.1 --port 0 --gpus none "$@" >"$E2E_GW_LOG" 2>&1
	E2E_GW_PID=$E2E_BG
	local port=
	e2e_wait_for $((10 * E2E_SLOW)) grep -q 'msg="serving" port=' "$E2E_GW_LOG" &&
		port=$(grep -o 'msg="serving" port=[0-9]*' "$E2E_GW_LOG" | head -n1 | tr -dc '0-9')
	[ -n "$port" ] || { note "gateway log:"; tail -n 20 "$E2E_GW_LOG" | sed 's/^/#   /'; return 1; }
	API=http://127.0.0.1:$port
	e2e_wait_for $((10 * E2E_SLOW)) gw_health_is IDLE || return 1
}

gw_health() { curl -s -m 5 "$API/health" 2>/dev/null | sed -n 's/.*"status": *"\([A-Z]*\)".*/\1/p'; }
gw_health_is() { [ "$(gw_health)" = "$1" ]; }

# gw_workers: pids of the gateway's worker processes (its children).
gw_workers() { pgrep -P "$E2E_GW_PID" | tr '\n' ' '; }

# gw_worker_of STREAM: pid of the worker serving STREAM, from the gateway
# log's latest 'msg="stream assigned" stream=STREAM ... pid=N' line (empty
# when none).
gw_worker_of() {
	grep "msg=\"stream assigned\" stream=$1 " "$E2E_GW_LOG" | tail -n1 | sed -n 's/.* pid=\([0-9]*\).*/\1/p'
}

# gw_stop: SIGTERM, waits for the exit (SIGKILL after a while); sets
# E2E_GW_RC. Returns 1 when the exit was not clean or the sanitizers spoke.
gw_stop() {
	[ -n "$E2E_GW_PID" ] || return 0
	kill -TERM "$E2E_GW_PID" 2>/dev/null
	local end=$((SECONDS + 15 * E2E_SLOW))
	while kill -0 "$E2E_GW_PID" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.1; done
	if kill -0 "$E2E_GW_PID" 2>/dev/null; then
		kill -KILL -- "-$E2E_GW_PID" 2>/dev/null
		E2E_GW_RC=timeout
	fi
	wait "$E2E_GW_PID" 2>/dev/null
	local rc=$?
	[ "${E2E_GW_RC:-}" = timeout ] || E2E_GW_RC=$rc
	E2E_GW_LASTPID=$E2E_GW_PID
	E2E_GW_PID=
	[ "$E2E_GW_RC" = 0 ] && ! gw_log_sanitizer
}

# gw_log_sanitizer: true (and notes the lines) when the gateway's log holds
# a sanitizer report of the gateway process (LeakSanitizer at exit,
# AddressSanitizer) or any UBSan "runtime error". Workers log to the same
# file: their reports carry their own pid (fixture_crash SEGVs on purpose).
gw_log_sanitizer() {
	local pid=${E2E_GW_LASTPID:-$E2E_GW_PID}
	local re="==$pid==.*(LeakSanitizer|AddressSanitizer)|runtime error:"
	if grep -qE "$re" "$E2E_GW_LOG"; then
		grep -E "$re|SUMMARY" "$E2E_GW_LOG" | head -n 5 | sed 's/^/#   /'
		return 0
	fi
	return 1
}

# publish CHANNEL SECONDS [SIZE] [FPS] [noaudio]: a live test stream in the
# background; sets PUB_PID. Waits until the channel exists.
# With E2E_GATE=1 the channel is created at once but the publisher sends
# nothing until `publish_go CHANNEL` (start_stream ID does it for ID): the
# stream's SECONDS start when its consumer is there, however slow the setup
# (a late consumer of a short live input finds it over, or gets its first
# seconds as one burst that the gateway's drop-oldest queue thins out).
publish() {
	local gate=
	if [ -n "${E2E_GATE:-}" ]; then
		gate=$E2E_DIR/gate-$1
		rm -f "$gate"
		curl -s -o /dev/null -X POST "$T/$1"
	fi
	TRICKLE_PUBLISH_GATE=$gate e2e_bg scripts/trickle-publish.sh "$T/$1" "$2" \
		"${3:-256x256}" "${4:-30}" "${5:-audio}" >"$E2E_DIR/publish-$1.log" 2>&1
	PUB_PID=$E2E_BG
	if [ -n "$gate" ]; then
		curl -sf -o /dev/null "$T/$1/next"
		return
	fi
	if [ -n "${E2E_LAZY:-}" ]; then
		E2E_PENDING_CH+=("$1")
		return 0
	fi
	e2e_wait_for $((10 * E2E_SLOW)) curl -sf -o /dev/null "$T/$1/next"
}

# publish_go CHANNEL...: lets gated publishers (E2E_GATE=1) send.
publish_go() {
	local c
	for c in "$@"; do
		[ -n "${E2E_DIR:-}" ] && touch "$E2E_DIR/gate-$c"
	done
}

# With E2E_LAZY=1, publish, read_out and read_events return at once (so
# several start side by side); e2e_ready then waits until every reader
# waits for its segment 0 and every publisher's channel exists.
E2E_PENDING_CH=()
E2E_PENDING_READY=()
e2e_ready() {
	local x rc=0
	for x in "${E2E_PENDING_READY[@]}"; do
		e2e_wait_for $((10 * E2E_SLOW)) test -e "$x" || rc=1
	done
	for x in "${E2E_PENDING_CH[@]}"; do
		e2e_wait_for $((10 * E2E_SLOW)) curl -sf -o /dev/null "$T/$x/next" || rc=1
	done
	E2E_PENDING_CH=()
	E2E_PENDING_READY=()
	return $rc
}

# trickle_read URL FILE TIMEOUT lines|bytes: reads a trickle channel from
# seq 0 over one kept-alive connection until it closes or TIMEOUT seconds
# pass (scripts/trickle-read.sh); touches FILE.ready once it is connected
# and waiting, so a caller can start a short stream only then.
trickle_read() {
	TRICKLE_READ_READY="$2.ready" scripts/trickle-read.sh "$@"
}

# read_out CHANNEL FILE [TIMEOUT]: creates the channel and reads it into
# FILE in the background until it closes; returns once the reader waits for
# segment 0 (so a short stream is not missed); sets READ_PID.
read_out() {
	curl -s -o /dev/null -X POST "$T/$1"
	e2e_bg bash -c "$(declare -f trickle_read); trickle_read \"\$@\"" _ "$T/$1" "$2" "${3:-60}" bytes
	READ_PID=$E2E_BG
	if [ -n "${E2E_LAZY:-}" ]; then
		E2E_PENDING_READY+=("$2.ready")
		return 0
	fi
	e2e_wait_for $((10 * E2E_SLOW)) test -e "$2.ready"
}

# read_events CHANNEL FILE: the same for an events channel, each message one
# line of FILE; sets EV_PID.
read_events() {
	curl -s -o /dev/null -X POST "$T/$1"
	e2e_bg bash -c "$(declare -f trickle_read); trickle_read \"\$@\"" _ "$T/$1" "$2" 120 lines
	EV_PID=$E2E_BG
	if [ -n "${E2E_LAZY:-}" ]; then
		E2E_PENDING_READY+=("$2.ready")
		return 0
	fi
	e2e_wait_for $((10 * E2E_SLOW)) test -e "$2.ready"
}

# wait_pid PID SECONDS: waits for a background pid; 1 when it outlived SECONDS.
wait_pid() {
	local end=$((SECONDS + $2))
	while kill -0 "$1" 2>/dev/null; do
		[ $SECONDS -ge $end ] && return 1
		sleep 0.1
	done
	wait "$1" 2>/dev/null
	return 0
}

# api METHOD PATH [BODY] [CONTENT-TYPE]: prints "STATUS BODY".
api() {
	local ct=${4:-application/json} out=$E2E_DIR/api.body code
	if [ -n "${3+x}" ]; then
		code=$(curl -s -m 10 -o "$out" -w '%{http_code}' -X "$1" \
			${E2E_AUTH:+-H "Authorization: Bearer $E2E_AUTH"} \
			-H "Content-Type: $ct" --data-binary "$3" "$API$2")
	else
		code=$(curl -s -m 10 -o "$out" -w '%{http_code}' -X "$1" \
			${E2E_AUTH:+-H "Authorization: Bearer $E2E_AUTH"} "$API$2")
	fi
	echo "$code $(cat "$out" 2>/dev/null)"
}

# start_stream ID PARAMS_JSON [no-in] [no-out]: POST /stream/start with the
# channels ID, ID-out and ID-events (no control
# channel: a 404 there would end the stream, PROTOCOL.md 2.9), then lets a
# gated publisher of ID send (publish_go). Prints "STATUS BODY".
start_stream() {
	local sub="\"subscribe_url\":\"$T/$1\"," pub="\"publish_url\":\"$T/$1-out\","
	[ "${3:-}" = no-in ] && sub=
	[ "${4:-}" = no-out ] && pub=
	api POST /stream/start "{$sub $pub
		\"events_url\":\"$T/$1-events\",
		\"gateway_request_id\":\"$1\", \"params\": ${2:-{\}}}"
	publish_go "$1"
}

# probe FILE: "VIDEO_FRAMES WIDTHxHEIGHT" of a media file (0 when unreadable).
probe_frames() {
	ffprobe -v error -count_frames -select_streams v:0 \
		-show_entries stream=nb_read_frames -of csv=p=0 "$1" 2>/dev/null | head -n1 | tr -dc '0-9'
}
probe_size() {
	ffprobe -v error -select_streams v:0 -show_entries stream=width,height \
		-of csv=s=x:p=0 "$1" 2>/dev/null | head -n1
}

# sat_series FILE: the saturation (signalstats SATAVG) of every video frame
# of FILE, one a line.
sat_series() {
	ffmpeg -v error -nostdin -i "$1" -an \
		-vf signalstats,metadata=print:key=lavfi.signalstats.SATAVG:file=- \
		-f null - 2>/dev/null | sed -n 's/.*SATAVG=//p'
}

# mean [FROM] [COUNT]: mean of the numbers on stdin (lines FROM.., COUNT of
# them; FROM may be negative: from the end); "nan" when there are none.
mean() {
	python3 -c '
import sys
v = [float(l) for l in sys.stdin if l.strip()]
a = int(sys.argv[1]); n = int(sys.argv[2])
v = v[a:a + n] if a >= 0 else v[len(v) + a:][:n]
print("%.2f" % (sum(v) / len(v)) if v else "nan")' "${1:-0}" "${2:-1000000}"
}

# within VALUE EXPECTED TOLERANCE: |VALUE - EXPECTED| <= TOLERANCE (floats).
within() { awk -v v="$1" "BEGIN { if (v !~ /^-?[0-9.]+\$/) exit 1; d = v - ($2); exit !(d <= $3 && -d <= $3) }"; }

# less VALUE LIMIT: VALUE < LIMIT (floats; false for nan or empty).
less() { awk -v a="$1" -v b="$2" 'BEGIN { if (a !~ /^-?[0-9.]+$/ || b !~ /^-?[0-9.]+$/) exit 1; exit !(a + 0 < b + 0) }'; }

# events_of FILE TYPE: the events of TYPE in an events file, one JSON a line.
events_of() {
	python3 -c '
import json, sys
for l in open(sys.argv[1]):
    try:
        e = json.loads(l)["event"]
    except Exception:
        continue
    if e.get("type") == sys.argv[2]:
        print(json.dumps(e))' "$1" "$2"
}

# av_info FILE: "VIDEO_START AUDIO_START AUDIO_CODEC,RATE,CHANNELS" in one
# ffprobe call ("nan" / "none" for a missing stream).
av_info() {
	ffprobe -v error -show_entries stream=codec_type,codec_name,sample_rate,channels,start_time \
		-of json "$1" 2>/dev/null | python3 -c '
import json, sys
try:
    ss = json.load(sys.stdin).get("streams", [])
except Exception:
    ss = []
v = [x for x in ss if x.get("codec_type") == "video"]
a = [x for x in ss if x.get("codec_type") == "audio"]
print(v[0].get("start_time", "nan") if v else "nan",
      a[0].get("start_time", "nan") if a else "nan",
      "%s,%s,%s" % (a[0].get("codec_name"), a[0].get("sample_rate"), a[0].get("channels")) if a else "none")'
}

# av_start FILE: "VIDEO_START AUDIO_START" times (s) of the first packets.
av_start() {
	local v a
	v=$(ffprobe -v error -select_streams v:0 -show_entries stream=start_time -of csv=p=0 "$1" 2>/dev/null | head -n1)
	a=$(ffprobe -v error -select_streams a:0 -show_entries stream=start_time -of csv=p=0 "$1" 2>/dev/null | head -n1)
	echo "${v:-nan} ${a:-nan}"
}
