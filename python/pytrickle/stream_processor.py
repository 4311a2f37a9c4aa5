"""StreamProcessor of PyTrickle: a processor made of plain async functions or
of a class's decorated handler methods (from_handlers). In ctrickle the
worker drives its internal FrameProcessor; run()/run_forever() belong to
PyTrickle's own server and explain how to run under ctrickle instead."""

import logging
from typing import Any, Dict, List, Optional

from ctrickle_py import runtime

from .frame_processor import FrameProcessor
from .frames import AudioFrame, VideoFrame
from .server import StreamServer

logger = logging.getLogger(__name__)

_KINDS = ("video", "audio", "model_loader", "param_updater", "stream_start", "stream_stop")


def _handlers_of(obj):
    """{kind: bound method} of obj's methods marked by pytrickle.decorators."""
    found = {}
    for name in dir(type(obj)):
        fn = getattr(type(obj), name, None)
        kind = getattr(fn, "_trickle_handler_type", None)
        if kind in _KINDS and kind not in found:
            found[kind] = getattr(obj, name)
    return found


async def _maybe_await(r):
    if hasattr(r, "__await__"):
        return await r
    return r


class StreamProcessor:
    def __init__(self, video_processor=None, audio_processor=None, model_loader=None,
                 param_updater=None, on_stream_start=None, on_stream_stop=None,
                 send_data_interval: Optional[float] = 0.333, name: str = "stream-processor",
                 port: int = 8000, **server_kwargs):
        self.video_processor = video_processor
        self.audio_processor = audio_processor
        self.model_loader = model_loader
        self.param_updater = param_updater
        self.on_stream_start = on_stream_start
        self.on_stream_stop = on_stream_stop
        self.send_data_interval = send_data_interval
        self.name = name
        self.port = port
        self.server_kwargs = server_kwargs
        self._frame_processor = _InternalFrameProcessor(
            video_processor=video_processor, audio_processor=audio_processor,
            model_loader=model_loader, param_updater=param_updater,
            on_stream_start=on_stream_start, on_stream_stop=on_stream_stop, name=name)
        self.server = StreamServer(frame_processor=self._frame_processor, port=port,
                                   **server_kwargs)

    @classmethod
    def from_handlers(cls, handlers, **kwargs) -> "StreamProcessor":
        """A StreamProcessor from an object whose methods carry the decorators
        of pytrickle.decorators (@video_handler, @model_loader, ...)."""
        h = _handlers_of(handlers)
        sp = cls(video_processor=h.get("video"), audio_processor=h.get("audio"),
                 model_loader=h.get("model_loader"), param_updater=h.get("param_updater"),
                 on_stream_start=h.get("stream_start"), on_stream_stop=h.get("stream_stop"),
                 **kwargs)
        if hasattr(handlers, "processor") and getattr(handlers, "processor") is None:
            handlers.processor = sp  # what PyTrickle's examples do in main()
        return sp

    async def send_data(self, data) -> bool:
        """Sends a line to the stream's data channel (ctrickle: host emit_data)."""
        return runtime.emit_data(data) == 0

    async def send_frame(self, frame: VideoFrame) -> bool:
        """Not supported in ctrickle (output frames come from the video handler)."""
        logger.warning("send_frame is not supported under ctrickle; return the frame instead")
        return False

    async def run_forever(self):
        await self.server.run_forever()

    def run(self):
        self.server.run()


class _InternalFrameProcessor(FrameProcessor):
    """The FrameProcessor made of StreamProcessor's functions. As in
    PyTrickle: a video handler's exception or non-frame result passes the
    input through; audio likewise."""

    def __init__(self, video_processor=None, audio_processor=None, model_loader=None,
                 param_updater=None, on_stream_start=None, on_stream_stop=None,
                 name="internal-processor"):
        self.video_processor = video_processor
        self.audio_processor = audio_processor
        self.model_loader = model_loader
        self.param_updater = param_updater
        self._start = on_stream_start
        self._stop = on_stream_stop
        self.name = name
        super().__init__(error_callback=None)

    async def load_model(self, **kwargs):
        if self.model_loader:
            await _maybe_await(self.model_loader(**kwargs))

    async def on_stream_start(self, params: Optional[Dict[str, Any]] = None):
        if self._start:
            import inspect
            try:
                takes = bool(inspect.signature(self._start).parameters)
            except (TypeError, ValueError):
                takes = False
            await _maybe_await(self._start(params or {}) if takes else self._start())

    async def on_stream_stop(self):
        if self._stop:
            await _maybe_await(self._stop())

    async def process_video_async(self, frame: VideoFrame) -> Optional[VideoFrame]:
        if not self.video_processor:
            return frame
        result = await _maybe_await(self.video_processor(frame))
        return result if isinstance(result, VideoFrame) else frame

    async def process_audio_async(self, frame: AudioFrame) -> Optional[List[AudioFrame]]:
        if not self.audio_processor:
            return [frame]
        result = await _maybe_await(self.audio_processor(frame))
        if isinstance(result, AudioFrame):
            return [result]
        if isinstance(result, list):
            return result
        return [frame]

    async def update_params(self, params: Dict[str, Any]):
        if self.param_updater:
            await _maybe_await(self.param_updater(params))
