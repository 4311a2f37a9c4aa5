#!/usr/bin/env bash
# The main job, end to end on this machine (make demo):
#   installs what is missing, builds, starts build/trickle-server and
#   build/gateway with 2 grayscale workers, publishes a 20 s 512x512 30 fps
#   test stream with sound in real time, starts the stream through the API,
#   SIGKILLs the serving worker halfway, reads the output channel into
#   out/demo.ts, makes out/demo-contact.png, and prints a summary.
# Env: DEMO_SECONDS (20), DEMO_PORT (8000), DEMO_TRICKLE_PORT (2939),
#      DEMO_PLUGIN (build/plugins/grayscale.so), BUILD (build), DEMO_OUT (out).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${DEMO_SECONDS:-20}
PORT=${DEMO_PORT:-8000}
TPORT=${DEMO_TRICKLE_PORT:-2939}
BUILD=${BUILD:-build}
PLUGIN=${DEMO_PLUGIN:-$BUILD/plugins/grayscale.so}
OUT=${DEMO_OUT:-out}
T=http://127.0.0.1:$TPORT
API=http://127.0.0.1:$PORT

say() { printf 'demo: %s\n' "$*"; }

scripts/install-deps.sh >/dev/null || { say "installing dependencies failed"; exit 1; }
make -s -j"$(nproc)" BUILD="$BUILD" "$BUILD/gateway" "$BUILD/worker" "$BUILD/trickle-server" \
	"$BUILD/plugins/grayscale.so" "$BUILD/plugins/passthrough.so" >/dev/null
mkdir -p "$OUT"
rm -f "$OUT"/demo.ts "$OUT"/demo-contact.png "$OUT"/*.log "$OUT"/events.jsonl

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

"$BUILD/trickle-server" --port "$TPORT" --log-level warn >"$OUT/trickle-server.log" 2>&1 &
pids+=($!)
"$BUILD/gateway" --host 127.0.0.1 --port "$PORT" --processor "$PLUGIN" \
	--workers-per-gpu 2 >"$OUT/gateway.log" 2>&1 &
gw=$!
pids+=($gw)

for _ in $(seq 100); do
	[ "$(curl -s "$API/health" 2>/dev/null)" = '{"status":"IDLE"}' ] && break
	sleep 0.1
done
say "gateway up: $(curl -s "$API/health"), workers: $(curl -s "$API/workers" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["workers"]))')"

scripts/trickle-publish.sh "$T/demo" "$SECS" 512x512 30 >"$OUT/publish.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -sf -o /dev/null "$T/demo/next" && break; sleep 0.1; done

scripts/trickle-read.sh "$T/demo-out" "$OUT/demo.ts" $((SECS + 40)) &
reader=$!
pids+=($reader)
scripts/trickle-read.sh "$T/demo-events" "$OUT/events.jsonl" $((SECS + 40)) lines &
pids+=($!)

start=$(curl -s -X POST -H 'Content-Type: application/json' "$API/stream/start" -d "{
  \"subscribe_url\": \"$T/demo\", \"publish_url\": \"$T/demo-out\",
  \"events_url\": \"$T/demo-events\", \"gateway_request_id\": \"demo\",
  \"params\": {\"width\": 512, \"height\": 512, \"max_framerate\": 30}}")
say "start: $start" | cut -c1-120

sleep $((SECS / 2))
victim=$(curl -s "$API/workers" | python3 -c 'import json,sys; w=[x for x in json.load(sys.stdin)["workers"] if x["state"]=="busy"]; print(w[0]["pid"] if w else "")')
if [ -n "$victim" ]; then
	say "killing the serving worker (pid $victim) with SIGKILL"
	kill -KILL "$victim"
else
	say "no busy worker found to kill"
fi

wait "$reader" || true
sleep 0.5
status=$(curl -s "$API/metrics")
kill -TERM "$gw" 2>/dev/null || true
wait "$gw" 2>/dev/null || true

if [ -s "$OUT/demo.ts" ]; then
	ffmpeg -v error -y -i "$OUT/demo.ts" -vf "fps=1,scale=256:256,tile=5x4" -frames:v 1 \
		"$OUT/demo-contact.png" || true
fi
frames_out=$(ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames \
	-of csv=p=0 "$OUT/demo.ts" 2>/dev/null | sed -n 1p || true)
audio=$(ffprobe -v error -select_streams a:0 -show_entries stream=codec_name,sample_rate,channels \
	-of csv=p=0 "$OUT/demo.ts" 2>/dev/null | sed -n 1p || true)
printf '%s\n' "$status" >"$OUT/metrics.txt"
python3 - "$OUT/events.jsonl" "$frames_out" "$audio" "$SECS" "$OUT/metrics.txt" "$OUT" <<'PY'
import json, sys
events_file, frames_file, audio, secs = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
m = {}
buckets = []
for line in open(sys.argv[5]):
    if line.startswith('#') or not line.strip():
        continue
    name, _, val = line.rpartition(' ')
    try:
        v = float(val)
    except ValueError:
        continue
    if 'stream="demo"' in name or 'stream=' not in name:
        m[name] = v
        if name.startswith('ctrickle_frame_latency_ms_bucket'):
            le = name.split('le="')[1].split('"')[0]
            buckets.append((float('inf') if le == '+Inf' else float(le), v))
def g(kind, fam='ctrickle_frames_total', lab='kind'):
    return int(m.get('%s{%s="%s"}' % (fam, lab, kind), 0))
def pct(p):
    if not buckets: return float('nan')
    total = buckets[-1][1]
    for le, c in sorted(buckets):
        if c >= p * total: return le
    return float('nan')
drops = sum(g(c, 'ctrickle_dropped_frames_total', 'cause') for c in ('rate_limit', 'queue', 'ring', 'worker'))
restart = None
evs = []
for line in open(events_file):
    try:
        e = json.loads(line)['event']
    except Exception:
        continue
    evs.append(e.get('type'))
    if e.get('type') == 'worker_restarted':
        restart = e
print('demo summary')
print('  frames in (decoded)      %d' % g('in'))
print('  frames out (processed)   %d' % g('out'))
print('  frames in output file    %s' % (frames_file or '0'))
print('  dropped                  %d (rate limit %d, queue %d, ring %d, worker %d)' % (
    drops, g('rate_limit', 'ctrickle_dropped_frames_total', 'cause'),
    g('queue', 'ctrickle_dropped_frames_total', 'cause'),
    g('ring', 'ctrickle_dropped_frames_total', 'cause'),
    g('worker', 'ctrickle_dropped_frames_total', 'cause')))
print('  re-sent after the kill   %d, lost %d' % (g('resent'), g('lost')))
print('  output fps               %.1f' % (g('out') / secs))
print('  added latency (gateway)  p50 <= %g ms, p99 <= %g ms (decoded frame -> processed result)' % (pct(0.5), pct(0.99)))
if restart:
    print('  restart gap              %s ms (worker %s, frames lost %s, reason: %s)' % (
        restart.get('gap_ms'), restart.get('worker'), restart.get('frames_lost'), restart.get('reason')))
else:
    print('  restart gap              no worker_restarted event seen')
print('  audio                    %s' % (audio or 'none'))
print('  events                   %s' % ', '.join(sorted(set(t for t in evs if t))))
print('  output: %s/demo.ts, %s/demo-contact.png; logs in %s/' % ((sys.argv[6],) * 3))
PY
