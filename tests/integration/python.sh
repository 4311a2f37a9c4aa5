#!/usr/bin/env bash
# End to end through build/trickle-server with Python processors (python.so):
# a processor written as PyTrickle's docs write one (gray, then black after
# /stream/params), one that raises in process_video_async (the stream goes on,
# frames passed through), one that calls os.abort() on a param (worker
# restarted, stream kept alive), and examples/python/torch_filter.py through
# the python:MODULE:CLASS shorthand. Needs python3-torch (else: skipped).
# Usage: tests/integration/python.sh BUILD
set -u
cd "$(dirname "$0")/../.."
BUILD=${1:-build}
. tests/integration/lib.sh
e2e_init python
[ -f "$BUILD/plugins/python.so" ] || { fail setup "$BUILD/plugins/python.so not built"; e2e_finish; }
if ! /usr/bin/python3 -c 'import numpy, torch' 2>/dev/null; then
	note "skipped: no torch (apt-get install python3-torch; scripts/install-deps.sh)"
	e2e_finish
fi
P256='"width":"256","height":"256"'
RATE=15
SECS=8
ts_start

# The test processor: PyTrickle's FrameProcessor shape, async hooks, torch.
cat >"$E2E_DIR/pt_proc.py" <<'PY'
import asyncio
import logging
import os
from typing import Any, Dict, List, Optional

import torch

from pytrickle import FrameProcessor
from pytrickle.frames import AudioFrame, VideoFrame

logger = logging.getLogger(__name__)


class TestProcessor(FrameProcessor):
    """Gray (BT.601 luma in R, G and B), black or off, per params; raises on
    every Nth frame, or aborts once (marker file) on request."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.mode = "gray"
        self.raise_every = 0
        self.abort_marker = None
        self.n = 0

    async def load_model(self, **kwargs):
        self.luma = torch.tensor([0.299, 0.587, 0.114])

    async def on_stream_start(self, params: Optional[Dict[str, Any]] = None):
        await self.update_params(params or {})

    async def update_params(self, params: Dict[str, Any]):
        if "mode" in params:
            self.mode = params["mode"]
            logger.warning("mode now %s", self.mode)
        if "raise_every" in params:
            self.raise_every = int(params["raise_every"])
        if params.get("abort"):
            self.abort_marker = params["abort"]

    async def process_video_async(self, frame: VideoFrame) -> Optional[VideoFrame]:
        self.n += 1
        if self.abort_marker and not os.path.exists(self.abort_marker):
            open(self.abort_marker, "w").close()
            os.abort()
        if self.raise_every and self.n % self.raise_every == 0:
            raise ValueError("test exception on frame %d" % self.n)
        await asyncio.sleep(0)
        t = frame.tensor
        if self.mode == "gray":
            y = (t * self.luma).sum(-1, keepdim=True).expand_as(t)
        elif self.mode == "black":
            y = torch.zeros_like(t)
        else:
            return frame
        return frame.replace_tensor(y)

    async def process_audio_async(self, frame: AudioFrame) -> Optional[List[AudioFrame]]:
        return [frame]
PY

# py_gw_start ARGS...: gw_start, with more time for the workers' init (each
# imports torch: several seconds on a loaded 2-core machine).
py_gw_start() {
	API=
	gw_start "$@" && return 0
	[ -n "$API" ] && e2e_wait_for $((90 * E2E_SLOW)) gw_health_is IDLE
}

# stat_series FILE KEY: a signalstats value (SATAVG, YAVG) of every frame.
stat_series() {
	ffmpeg -v error -nostdin -i "$1" -an \
		-vf signalstats,metadata=print:key=lavfi.signalstats.$2:file=- \
		-f null - 2>/dev/null | sed -n "s/.*$2=//p"
}

# ---- run 1: the test processor, three streams at once -------------------------
# live edge + a loaded machine (the inputs start with their streams:
# E2E_GATE); only the build's factor lowers it, not the load's
MIN=$((SECS * RATE * 4 / 10 / (E2E_SAN ? 3 : 1)))
E2E_GATE=1
has_bytes() { [ -s "$1" ]; }
if [ "$E2E_SAN" = 1 ]; then
	# Under ASan torch's large tensors come from ASan's allocator (fresh pages,
	# quarantine): a 256x256 frame costs ~70 ms, so few frames get through.
	MIN=4
	note "ASan build: frame-count thresholds lowered to $MIN (torch ~50x slower under ASan)"
fi
if py_gw_start --processor "$BUILD/plugins/python.so" \
	--processor-config "{\"module\":\"pt_proc\",\"class\":\"TestProcessor\",\"path\":\"$E2E_DIR\"}" \
	--workers-per-gpu 4 --spare-workers 1 --crash-budget 5/60 --max-resolution 512x512; then
	# Readers first (each starts a python3), then the live inputs.
	read_out g-out "$E2E_DIR/g.ts" $((60 * E2E_SLOW)); rg=$READ_PID
	read_out e-out "$E2E_DIR/e.ts" $((60 * E2E_SLOW)); re=$READ_PID
	read_out a-out "$E2E_DIR/a.ts" $((60 * E2E_SLOW)); ra=$READ_PID
	read_events e-events "$E2E_DIR/e.ev"; eve=$EV_PID
	read_events a-events "$E2E_DIR/a.ev"; eva=$EV_PID
	publish g $SECS 256x256 30 noaudio
	publish e $SECS 256x256 30 noaudio
	publish a $SECS 256x256 30 noaudio
	r1=$(start_stream g "{$P256,\"max_framerate\":$RATE,\"mode\":\"gray\"}")
	r2=$(start_stream e "{$P256,\"max_framerate\":$RATE,\"mode\":\"gray\",\"raise_every\":3}")
	r3=$(start_stream a "{$P256,\"max_framerate\":$RATE,\"mode\":\"gray\"}")
	# the params change once g has output (gray frames first), then 1 s more
	e2e_wait_for $((20 * E2E_SLOW)) has_bytes "$E2E_DIR/g.ts" || note "g: no output yet"
	sleep 1
	pg=$(api POST "/stream/params?stream_id=g" '{"mode":"black"}')
	sleep 1
	pa=$(api POST "/stream/params?stream_id=a" "{\"abort\":\"$E2E_DIR/aborted\"}")
	wait_pid $rg $((60 * E2E_SLOW)); wait_pid $re 5; wait_pid $ra 5
	wait_pid $eve 5; wait_pid $eva 5
	fg=$(probe_frames "$E2E_DIR/g.ts"); fe=$(probe_frames "$E2E_DIR/e.ts")
	fa=$(probe_frames "$E2E_DIR/a.ts")
	stat_series "$E2E_DIR/g.ts" SATAVG >"$E2E_DIR/g.sat"
	stat_series "$E2E_DIR/g.ts" YAVG >"$E2E_DIR/g.y"
	stat_series "$E2E_DIR/e.ts" SATAVG >"$E2E_DIR/e.sat"
	sat_first=$(mean 0 5 <"$E2E_DIR/g.sat")
	y_last=$(mean -3 3 <"$E2E_DIR/g.y")
	y_first=$(mean 0 3 <"$E2E_DIR/g.y")
	# In e, 1 frame in 3 raised and passed through in colour: max SAT high.
	sat_e_max=$(sort -g "$E2E_DIR/e.sat" | tail -n1)
	sat_e_med=$(sort -g "$E2E_DIR/e.sat" | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
	raised=$(grep -c 'process_video_async raised' "$E2E_GW_LOG")
	rs_e=$(events_of "$E2E_DIR/e.ev" worker_restarted | head -n1)
	rs_a=$(events_of "$E2E_DIR/a.ev" worker_restarted | head -n1)
	note "g: ${fg:-0} frames, SAT first $sat_first, Y first $y_first, Y last $y_last"
	note "e: ${fe:-0} frames, SAT median $sat_e_med max $sat_e_max, $raised error lines"
	note "a: ${fa:-0} frames, event ${rs_a:-none}"
	grep -m1 'process_video_async raised' "$E2E_GW_LOG" | cut -c1-300 | sed 's/^/#   /'
	if [ "${r1%% *}" != 200 ] || [ "${pg%% *}" != 200 ]; then
		fail pytrickle_processor "start/params answered ${r1:0:100} / ${pg:0:100}"
	elif [ -z "$fg" ] || [ "$fg" -lt $MIN ]; then
		fail pytrickle_processor "${fg:-0} frames out (want >= $MIN)"
	elif ! less "$sat_first" 2; then
		fail pytrickle_processor "output not gray: mean saturation $sat_first"
	else
		ok pytrickle_processor
	fi
	if [ "${pg%% *}" != 200 ]; then
		fail python_update_params "params answered ${pg:0:100}"
	elif ! less "$y_last" 25 || ! less 40 "$y_first"; then
		fail python_update_params "Y first $y_first last $y_last: the frames did not turn black"
	else
		ok python_update_params
	fi
	if [ "${r2%% *}" != 200 ]; then
		fail python_exception "start answered ${r2:0:100}"
	elif [ -z "$fe" ] || [ "$fe" -lt $MIN ]; then
		fail python_exception "${fe:-0} frames out (want >= $MIN)"
	elif [ "$raised" -eq 0 ]; then
		fail python_exception "no 'process_video_async raised' line in the log"
	elif [ -n "$rs_e" ]; then
		fail python_exception "the worker was restarted: $rs_e"
	elif ! less "$sat_e_med" 2 || less "$sat_e_max" 10; then
		fail python_exception "SAT median $sat_e_med max $sat_e_max: want gray frames and passed-through colour ones"
	else
		ok python_exception
	fi
	if [ "${r3%% *}" != 200 ] || [ "${pa%% *}" != 200 ]; then
		fail python_abort "start/params answered ${r3:0:100} / ${pa:0:100}"
	elif [ ! -e "$E2E_DIR/aborted" ]; then
		fail python_abort "the processor did not reach os.abort()"
	elif [ -z "$rs_a" ]; then
		fail python_abort "no worker_restarted event"
	elif [ -z "$fa" ] || [ "$fa" -lt $MIN ]; then
		fail python_abort "${fa:-0} frames out (want >= $MIN): the stream did not go on"
	else
		ok python_abort
	fi
	gw_stop || fail python_gateway_exit "exit status $E2E_GW_RC or sanitizer reports"
else
	fail pytrickle_processor "gateway did not start"
fi

# ---- run 2: examples/python/torch_filter.py via python:MODULE:CLASS ------------
if py_gw_start --processor python:torch_filter:TorchFilter \
	--processor-config "{\"path\":\"$(pwd)/examples/python\"}" --max-resolution 512x512; then
	read_out t-out "$E2E_DIR/t.ts" $((30 * E2E_SLOW)); rt=$READ_PID
	publish t 6 256x256 30 noaudio
	r=$(start_stream t "{$P256,\"max_framerate\":$RATE,\"mode\":\"edges\"}")
	wait_pid $rt $((30 * E2E_SLOW))
	ft=$(probe_frames "$E2E_DIR/t.ts")
	sat=$(stat_series "$E2E_DIR/t.ts" SATAVG | mean)
	y=$(stat_series "$E2E_DIR/t.ts" YAVG | mean)
	note "t: ${ft:-0} frames, SAT $sat, Y $y (testsrc2 in: SAT ~40+, Y ~100+)"
	if [ "${r%% *}" != 200 ]; then
		fail torch_filter_example "start answered ${r:0:100}"
	elif [ -z "$ft" ] || [ "$ft" -lt $((MIN * 6 / SECS)) ]; then
		fail torch_filter_example "${ft:-0} frames out"
	elif ! less "$sat" 2 || ! less "$y" 90; then
		fail torch_filter_example "SAT $sat Y $y: not an edge map"
	else
		ok torch_filter_example
	fi
	gw_stop || fail torch_filter_gateway_exit "exit status $E2E_GW_RC or sanitizer reports"
else
	fail torch_filter_example "gateway did not start"
fi
e2e_finish
