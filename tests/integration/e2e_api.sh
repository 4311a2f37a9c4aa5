#!/usr/bin/env bash
# The gateway's HTTP API against a running build/gateway: --auth-token (401
# without or with a wrong token, /health open) and every bad body of
# PROTOCOL.md section 2 with its documented status; start without
# subscribe_url or publish_url (section 2.3).
# Usage: tests/integration/e2e_api.sh BUILD
set -u
cd "$(dirname "$0")/../.."
BUILD=${1:-build}
. tests/integration/lib.sh
e2e_init e2e_api
TOKEN=s3cret-token
ts_start
gw_start --processor "$BUILD/plugins/passthrough.so" --workers-per-gpu 1 \
	--auth-token "$TOKEN" --max-resolution 512x512 ||
	{ fail setup "gateway did not start"; e2e_finish; }

# ---- case 9: auth ---------------------------------------------------------------
code() { curl -s -m 10 -o /dev/null -w '%{http_code}' "$@"; }
bad=
for path in /stream/status /workers /metrics /version; do
	c=$(code "$API$path"); [ "$c" = 401 ] || bad="$bad $path(no token)=$c"
	c=$(code -H "Authorization: Bearer wrong" "$API$path"); [ "$c" = 401 ] || bad="$bad $path(wrong)=$c"
	c=$(code -H "Authorization: Bearer $TOKEN" "$API$path"); [ "$c" = 200 ] || bad="$bad $path(token)=$c"
done
c=$(code -X POST -H 'Content-Type: application/json' -d '{"gateway_request_id":"x"}' "$API/stream/start")
[ "$c" = 401 ] || bad="$bad start(no token)=$c"
c=$(code -X POST -H "Authorization: Bearer ${TOKEN}x" -H 'Content-Type: application/json' \
	-d '{"gateway_request_id":"x"}' "$API/stream/start")
[ "$c" = 401 ] || bad="$bad start(longer token)=$c"
c=$(code -X POST -H "Authorization: Basic $TOKEN" "$API/stream/stop")
[ "$c" = 401 ] || bad="$bad stop(basic)=$c"
c=$(code "$API/health"); [ "$c" = 200 ] || bad="$bad health(no token)=$c"
[ "$(gw_health)" = IDLE ] || bad="$bad health=$(gw_health)"
[ -z "$bad" ] && ok auth_token || fail auth_token "$bad"

# ---- case 10: bad bodies ------------------------------------------------------------
E2E_AUTH=$TOKEN
expect() { # NAME STATUS METHOD PATH BODY [CONTENT-TYPE]
	local name=$1 want=$2 r
	shift 2
	r=$(api "$@")
	if [ "${r%% *}" = "$want" ]; then
		ok "$name"
	else
		fail "$name" "got ${r:0:160}, want $want"
	fi
}
expect start_malformed_json 400 POST /stream/start '{"gateway_request_id": "x",'
expect start_not_object 400 POST /stream/start '[1,2]'
expect start_missing_request_id 400 POST /stream/start "{\"subscribe_url\":\"$T/x\"}"
expect start_params_not_object 400 POST /stream/start '{"gateway_request_id":"x","params":"fast"}'
expect start_width_without_height 400 POST /stream/start '{"gateway_request_id":"x","params":{"width":256}}'
expect start_bad_framerate 400 POST /stream/start '{"gateway_request_id":"x","params":{"max_framerate":0}}'
expect start_wrong_content_type 400 POST /stream/start '{"gateway_request_id":"x"}' text/plain
expect start_ftp_url 400 POST /stream/start '{"gateway_request_id":"x","subscribe_url":"ftp://127.0.0.1/in"}'
expect params_no_stream 400 POST /stream/params '{"max_framerate":10}'
expect params_wrong_content_type 500 POST /stream/params '{"max_framerate":10}' text/plain
expect params_bad_value 500 POST /stream/params '{"max_framerate":"fast"}'
expect stop_no_stream 400 POST /stream/stop ''
big=$E2E_DIR/big.json
python3 -c "import sys; sys.stdout.write('{\"gateway_request_id\":\"x\",\"params\":{\"pad\":\"' + 'a' * (10 * 1024 * 1024 + 16) + '\"}}')" >"$big"
r=$(curl -s -m 20 -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $TOKEN" \
	-H 'Content-Type: application/json' --data-binary @"$big" "$API/stream/start")
[ "$r" = 413 ] && ok start_body_over_10mib || fail start_body_over_10mib "got $r, want 413"
expect get_on_start 405 GET /stream/start
[ "$(gw_health)" = IDLE ] && ok health_idle_after_bad_bodies ||
	fail health_idle_after_bad_bodies "health $(gw_health)"

# ---- PROTOCOL.md 2.3: a start without subscribe_url or publish_url --------------------
# No publish_url: frames are processed, nothing published; the stream runs
# until stopped.
E2E_GATE=1 # inputs start sending when their stream starts (lib.sh publish_go)
publish np 10 256x256 30 noaudio
r=$(start_stream np '{"width":"256","height":"256"}' "" no-out)
# frames_out counts up once the stream runs: wait for it, not a fixed time
processed() { s=$(api GET /stream/status); echo "$s" | grep -q '"frames_out": *[1-9]'; }
e2e_wait_for $((10 * E2E_SLOW)) processed
s=$(api GET /stream/status)
st=$(api POST /stream/stop '')
if [ "${r%% *}" != 200 ] || [ "${st%% *}" != 200 ]; then
	fail start_without_publish_url "start ${r:0:100}, stop ${st:0:100}"
elif ! echo "$s" | grep -q '"frames_out": *[1-9]'; then
	fail start_without_publish_url "no frame processed: ${s:0:300}"
else
	ok start_without_publish_url
fi
kill -TERM -- "-$PUB_PID" 2>/dev/null
e2e_wait_for 5 gw_health_is IDLE
# No subscribe_url: nothing comes in; the stream runs (health OK) until stopped.
r=$(start_stream ni '{}' no-in)
sleep 0.5
h=$(gw_health)
st=$(api POST /stream/stop '')
if [ "${r%% *}" != 200 ] || [ "$h" != OK ] || [ "${st%% *}" != 200 ]; then
	fail start_without_subscribe_url "start ${r:0:100}, health $h, stop ${st:0:100}"
elif ! e2e_wait_for 5 gw_health_is IDLE; then
	fail start_without_subscribe_url "health $(gw_health) after stop"
else
	ok start_without_subscribe_url
fi
# Input only (no publish_url, no events_url): the stream ends by itself at
# the end of its input and frees itself.
publish io 2 256x256 30 noaudio
r=$(api POST /stream/start "{\"subscribe_url\":\"$T/io\",\"gateway_request_id\":\"io\",
	\"params\":{\"width\":\"256\",\"height\":\"256\"}}")
publish_go io
if [ "${r%% *}" != 200 ]; then
	fail input_only_stream_ends "start ${r:0:100}"
elif ! e2e_wait_for $((10 * E2E_SLOW)) gw_health_is IDLE; then
	fail input_only_stream_ends "health $(gw_health) 10 s after a 2 s input"
elif ! grep -q 'msg="stream ended" stream=io reason="input ended"' "$E2E_GW_LOG"; then
	fail input_only_stream_ends "no 'stream ended ... input ended' in the log"
else
	ok input_only_stream_ends
fi
unset E2E_AUTH
gw_stop || fail gateway_exit "exit status $E2E_GW_RC or sanitizer reports"
e2e_finish
