"""The bridge between python.so (C) and a PyTrickle-style processor.

python.so creates one Bridge per worker with the plugin's config (JSON text)
and calls its methods from the worker's single frame thread, GIL held:

    Bridge(config_json)          import the module, build the processor,
                                 run load_model(**kwargs) on the event loop
    stream_start(params_json)    on_stream_start(params) (or on_stream_start())
    video(...)                   process_video_async(VideoFrame) -> 0/1/2 or (0, w, h)
    audio(...)                   process_audio_async(AudioFrame) -> 1/2 or (0, n)
    update_params(params_json)   update_params(dict) -> 0 or -errno
    stream_stop()                on_stream_stop()
    close()                      stream_stop if needed, cancel tasks, close the loop

Policy (docs/python.md): a processor exception while handling a frame is a
frame error, not a crash: it is logged (one line, at most one a second, with
the count of the ones left out) and the input frame is passed through, as
PyTrickle's StreamProcessor does. Return codes are the plugin ABI's:
FP_OK 0, FP_DROP 1, FP_PASS 2.
"""

import asyncio
import importlib
import inspect
import json
import logging
import os
import sys
import time
import traceback
from fractions import Fraction

import numpy as np

from pytrickle.frame_processor import FrameProcessor
from pytrickle.frames import AudioFrame, VideoFrame, VideoOutput
from pytrickle.stream_processor import StreamProcessor, _handlers_of

from . import runtime

if os.environ.get("CT_PYTHON_NO_TORCH") == "1":
    torch = None  # numpy frames even where torch is installed
else:
    try:
        import torch
    except ImportError:  # numpy-only installs: frames carry numpy arrays
        torch = None

FP_OK, FP_DROP, FP_PASS = 0, 1, 2
EINVAL = 22
ERROR_LOG_INTERVAL = 1.0  # seconds between two frame-error log lines

_SAMPLE_DTYPES = {"s16": np.int16, "s16p": np.int16, "flt": np.float32, "fltp": np.float32}
_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 6: "5.1", 8: "7.1"}


def _one_line(exc):
    """A traceback as one log line: the frames, then 'Type: message'."""
    parts = []
    for fs in traceback.extract_tb(exc.__traceback__):
        parts.append("%s:%d in %s" % (os.path.basename(fs.filename), fs.lineno, fs.name))
    msg = "".join(traceback.format_exception_only(type(exc), exc)).strip().replace("\n", " ")
    return "%s [traceback: %s]" % (msg, " <- ".join(reversed(parts)) or "-")


def _accepts_argument(fn):
    """True when fn (bound) takes at least one positional argument."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return True
    for p in sig.parameters.values():
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL):
            return True
    return False


class Bridge:
    """One processor in one worker; see the module docstring."""

    def __init__(self, config_json):
        cfg = json.loads(config_json or "{}")
        if not isinstance(cfg, dict):
            raise ValueError("processor config must be a JSON object")
        self.cfg = cfg
        self._install_logging()
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.processor = self._build(cfg)
        self.uint8 = bool(getattr(self.processor, "ctrickle_uint8", False))
        self.has_audio = self._overrides(self.processor, "process_audio_async")
        self.started = False
        self.frames = 0
        self.errors = 0
        self._err_last = -1e9
        self._err_left_out = 0
        kwargs = cfg.get("kwargs") or {}
        if not isinstance(kwargs, dict):
            raise ValueError('"kwargs" must be a JSON object')
        load = getattr(self.processor, "load_model", None)
        if load is not None:
            self._call(load, **kwargs)
        runtime.log(2, "python: %s.%s ready (uint8=%s audio=%s torch=%s)" % (
            type(self.processor).__module__, type(self.processor).__qualname__,
            self.uint8, self.has_audio, torch.__version__ if torch else "none"))

    # ---- setup ----------------------------------------------------------

    @staticmethod
    def _install_logging():
        """Python logging goes to the worker's log (root level WARNING until
        the processor's own logging.basicConfig(level=...) lowers it; with
        our handler in place basicConfig adds no stderr handler)."""
        root = logging.getLogger()
        if not any(isinstance(h, runtime.WorkerLogHandler) for h in root.handlers):
            h = runtime.WorkerLogHandler()
            h.setFormatter(logging.Formatter("%(name)s: %(message)s"))
            root.addHandler(h)

    @staticmethod
    def _resolve_module(cfg):
        """(module name, extra sys.path dirs) from "module" and "path"."""
        mod = cfg.get("module")
        if not isinstance(mod, str) or not mod:
            raise ValueError('processor config needs "module" (a module name or a .py file)')
        paths = cfg.get("path") or []
        if isinstance(paths, str):
            paths = [paths]
        paths = [os.path.abspath(p) for p in paths]
        if mod.endswith(".py") or "/" in mod:
            fn = os.path.abspath(mod if mod.endswith(".py") else mod + ".py")
            paths.insert(0, os.path.dirname(fn))
            mod = os.path.basename(fn)[:-3]
        return mod, paths

    def _build(self, cfg):
        """Imports the module and makes the processor object."""
        name, paths = self._resolve_module(cfg)
        for p in reversed(paths):
            if p not in sys.path:
                sys.path.insert(0, p)
        module = importlib.import_module(name)
        cls_name = cfg.get("class")
        if cls_name:
            obj = module
            for part in str(cls_name).split("."):
                obj = getattr(obj, part)
        else:
            found = [v for v in vars(module).values()
                     if inspect.isclass(v) and issubclass(v, FrameProcessor)
                     and v.__module__ == module.__name__]
            if len(found) != 1:
                raise ValueError('module %s defines %d FrameProcessor classes; name one '
                                 'with "class"' % (name, len(found)))
            obj = found[0]
        init_kwargs = cfg.get("init_kwargs") or {}
        inst = obj(**init_kwargs) if inspect.isclass(obj) else obj
        if isinstance(inst, StreamProcessor):
            return inst._frame_processor
        if hasattr(inst, "process_video_async"):
            return inst
        if _handlers_of(inst):
            return StreamProcessor.from_handlers(inst)._frame_processor
        raise TypeError("%s is neither a FrameProcessor, a StreamProcessor nor a "
                        "class with @video_handler methods" % cls_name)

    @staticmethod
    def _overrides(inst, meth):
        """True when inst's class defines meth itself (not the base default)."""
        fn = getattr(type(inst), meth, None)
        if fn is None:
            fn = getattr(inst, meth, None)
            return fn is not None
        return fn is not getattr(FrameProcessor, meth, None)

    # ---- running hooks ---------------------------------------------------

    def _call(self, fn, *args, **kwargs):
        """Calls a plain or async hook; awaits the result on our loop."""
        r = fn(*args, **kwargs)
        if inspect.isawaitable(r):
            r = self.loop.run_until_complete(r)
        return r

    def _frame_error(self, what, seq, exc):
        """Logs a frame error, at most one line per ERROR_LOG_INTERVAL."""
        self.errors += 1
        now = time.monotonic()
        if now - self._err_last < ERROR_LOG_INTERVAL:
            self._err_left_out += 1
            return
        more = ""
        if self._err_left_out:
            more = " (%d more since the last line)" % self._err_left_out
        self._err_last = now
        self._err_left_out = 0
        runtime.log(0, "python: %s raised on frame %d, input passed through%s: %s"
                    % (what, seq, more, _one_line(exc)))

    def stream_start(self, params_json):
        try:
            params = json.loads(params_json or "{}")
        except ValueError:
            params = {}
        self.started = True
        fn = getattr(self.processor, "on_stream_start", None)
        if fn is None:
            return 0
        try:
            if _accepts_argument(fn):
                self._call(fn, params)
            else:
                self._call(fn)
        except Exception as e:  # PyTrickle logs and ignores these
            runtime.log(1, "python: on_stream_start raised: %s" % _one_line(e))
        return 0

    def stream_stop(self):
        if not self.started:
            return 0
        self.started = False
        fn = getattr(self.processor, "on_stream_stop", None)
        if fn is not None:
            try:
                self._call(fn)
            except Exception as e:
                runtime.log(1, "python: on_stream_stop raised: %s" % _one_line(e))
        return 0

    def update_params(self, params_json):
        fn = getattr(self.processor, "update_params", None)
        if fn is None:
            return 0
        try:
            params = json.loads(params_json)
            self._call(fn, params)
        except Exception as e:
            runtime.log(0, "python: update_params raised: %s" % _one_line(e))
            return -EINVAL
        return 0

    def close(self):
        self.stream_stop()
        try:
            pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
            for t in pending:
                t.cancel()
            if pending:
                self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            self.loop.close()
        return 0

    # ---- video -----------------------------------------------------------

    def video(self, vin, vout, w, h, in_stride, out_stride, max_w, max_h,
              pts, tb_num, tb_den, seq):
        """One RGB24 frame. vin/vout: writable memoryviews over the ring slots,
        valid for this call only."""
        self.frames += 1
        frame = VideoFrame._from_slot(vin, w, h, in_stride, self.uint8, pts,
                                      Fraction(tb_num, tb_den or 1))
        try:
            r = self._call(self.processor.process_video_async, frame)
        except Exception as e:
            frame._detach()
            self._frame_error("process_video_async", seq, e)
            return FP_PASS
        if isinstance(r, VideoOutput):
            r = r.frame
        if r is None:
            frame._detach()
            return FP_PASS
        if isinstance(r, VideoFrame):
            if r is frame and not frame._materialized():
                frame._detach()
                return FP_PASS  # untouched: output = input, no conversion
            t = r.tensor
        else:
            t = r  # a bare tensor or array: accepted
        if t is frame._view:
            frame._detach()
            return FP_PASS  # the uint8 input view itself
        try:
            rc = self._write(t, vout, w, h, out_stride, max_w, max_h)
        except Exception as e:
            rc = FP_PASS
            self._frame_error("writing the output of process_video_async", seq, e)
        frame._detach()
        return rc

    @staticmethod
    def _write(t, vout, w, h, out_stride, max_w, max_h):
        """Writes a [1,H,W,C] or [H,W,C] (C 1, 3 or 4) tensor or array into the
        output slot as RGB24: floats in [0,1] are scaled by 255 (PyTrickle's
        rule: a float tensor whose max is above 1 is taken as 0-255), rounded
        and clamped; uint8 is copied. Returns FP_OK or (FP_OK, W, H)."""
        if torch is not None and isinstance(t, torch.Tensor):
            if t.device.type != "cpu":
                t = t.detach().cpu()
            else:
                t = t.detach()
            lib = "torch"
        else:
            t = np.asarray(t)
            lib = "numpy"
        if t.ndim == 4:
            if t.shape[0] != 1:
                raise ValueError("expected batch size 1, got shape %s" % (tuple(t.shape),))
            t = t[0]
        if t.ndim == 2:
            t = t[:, :, None]
        if t.ndim != 3 or t.shape[2] not in (1, 3, 4):
            raise ValueError("expected [1,H,W,C] or [H,W,C] with C in 1, 3, 4; got %s"
                             % (tuple(t.shape),))
        oh, ow, c = int(t.shape[0]), int(t.shape[1]), int(t.shape[2])
        resized = (ow, oh) != (w, h)
        if resized:
            if ow > max_w or oh > max_h or ow == 0 or oh == 0:
                raise ValueError("output %dx%d exceeds the slot's %dx%d" % (ow, oh, max_w, max_h))
            out_stride = ow * 3
        out = np.ndarray((oh, ow, 3), np.uint8, vout, 0, (out_stride, 3, 1))
        if c == 4:
            t = t[:, :, :3]
        if lib == "torch":
            dst = torch.from_numpy(out)
            if c == 1:
                t = t.expand(oh, ow, 3)
            if t.dtype == torch.uint8:
                dst.copy_(t)
            elif t.is_floating_point():
                scale = 255.0 if float(t.max()) <= 1.0 else 1.0
                dst.copy_(torch.mul(t, scale).add_(0.5).clamp_(0, 255))
            else:
                dst.copy_(t.clamp(0, 255))
        else:
            if c == 1:
                t = np.broadcast_to(t, (oh, ow, 3))
            if t.dtype == np.uint8:
                out[...] = t
            elif np.issubdtype(t.dtype, np.floating):
                scale = 255.0 if float(t.max()) <= 1.0 else 1.0
                np.copyto(out, np.clip(t * scale + 0.5, 0, 255), casting="unsafe")
            else:
                np.copyto(out, np.clip(t, 0, 255), casting="unsafe")
        return (FP_OK, ow, oh) if resized else FP_OK

    # ---- audio -----------------------------------------------------------

    def audio(self, vin, vout, fmt, channels, rate, nb_samples, pts, tb_num, tb_den):
        """One audio frame (CT_PYTHON_AUDIO=1 only). vin holds the samples
        (planar formats: channel after channel), vout the output buffer."""
        if not self.has_audio:
            return FP_PASS
        dt = _SAMPLE_DTYPES[fmt]
        a = np.frombuffer(vin, dtype=dt)
        if fmt.endswith("p"):
            a = a.reshape(channels, nb_samples)
        else:
            a = a.reshape(1, nb_samples * channels)
        frame = AudioFrame._from_samples(a.copy(), fmt, _LAYOUTS.get(channels, "%dc" % channels),
                                         rate, nb_samples, pts, Fraction(tb_num, tb_den or 1))
        try:
            r = self._call(self.processor.process_audio_async, frame)
        except Exception as e:
            self._frame_error("process_audio_async", -1, e)
            return FP_PASS
        if r is None:
            return FP_PASS
        if isinstance(r, AudioFrame):
            r = [r]
        if not r:
            return FP_DROP
        if len(r) == 1 and r[0] is frame:
            return FP_PASS
        try:
            parts = []
            for f in r:
                s = np.asarray(f.samples)
                if fmt.endswith("p"):
                    s = s.reshape(channels, -1)
                else:
                    s = s.reshape(-1, channels).T
                if np.issubdtype(dt, np.integer) and np.issubdtype(s.dtype, np.floating):
                    s = np.clip(s * 32767.0, -32768, 32767)
                elif np.issubdtype(dt, np.floating) and np.issubdtype(s.dtype, np.integer):
                    s = s / 32768.0
                parts.append(s.astype(dt))
            allc = np.concatenate(parts, axis=1)  # (channels, n)
            n = allc.shape[1]
            data = allc if fmt.endswith("p") else allc.T
            buf = np.ascontiguousarray(data).tobytes()
            if len(buf) > len(vout):
                raise ValueError("audio output of %d bytes exceeds %d" % (len(buf), len(vout)))
            vout[:len(buf)] = buf
        except Exception as e:
            self._frame_error("writing the output of process_audio_async", -1, e)
            return FP_PASS
        return (FP_OK, n)
