"""FrameProcessor: the base class of a PyTrickle processor.

Same hooks as livepeer/pytrickle's FrameProcessor. Each may be a plain or an
async method; ctrickle runs them on one asyncio loop in the worker, one call
at a time. Unlike PyTrickle's, no hook is abstract: a processor that leaves
one out gets the default below (a superset: PyTrickle processors, which
define them all, behave the same).
"""

import asyncio
import logging
from typing import Any, Dict, List, Optional

from .frames import AudioFrame, VideoFrame

logger = logging.getLogger(__name__)


class FrameProcessor:
    """Subclass and override the hooks you need."""

    def __init__(self, error_callback=None, **init_kwargs):
        self.error_callback = error_callback
        self.state = None
        self._model_loaded = False
        self._model_load_lock = asyncio.Lock()

    def attach_state(self, state) -> None:
        """Attaches a pipeline state object (kept for compatibility)."""
        self.state = state

    async def ensure_model_loaded(self, **kwargs):
        """Runs load_model once (ctrickle's worker calls load_model itself)."""
        async with self._model_load_lock:
            if not self._model_loaded:
                r = self.load_model(**kwargs)
                if asyncio.iscoroutine(r):
                    await r
                self._model_loaded = True

    async def load_model(self, **kwargs):
        """Once per worker, before any stream: load weights here. kwargs are
        the "kwargs" object of --processor-config."""

    async def on_stream_start(self, params: Optional[Dict[str, Any]] = None):
        """A stream begins on this worker (params: the start request's)."""

    async def process_video_async(self, frame: VideoFrame) -> Optional[VideoFrame]:
        """One video frame; return a VideoFrame, or None to pass the input."""
        return frame

    async def process_audio_async(self, frame: AudioFrame) -> Optional[List[AudioFrame]]:
        """One audio frame (only with CT_PYTHON_AUDIO=1); return a list."""
        return [frame]

    async def update_params(self, params: Dict[str, Any]):
        """New params from /stream/params or the control channel."""

    async def on_stream_stop(self):
        """The stream ended or moved to another worker."""
