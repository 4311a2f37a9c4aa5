"""pytrickle, as ctrickle provides it: the surface a PyTrickle processor
imports (FrameProcessor, VideoFrame, AudioFrame, StreamProcessor, the handler
decorators), so that a processor file written for livepeer/pytrickle runs
unchanged inside a ctrickle worker (build/plugins/python.so). The transport
parts of PyTrickle (trickle client, HTTP server) are ctrickle's gateway here;
see docs/python.md for what is and is not provided.
"""

from typing import Any, Callable, Coroutine, Optional, Union

ErrorCallback = Union[
    Callable[[str, Optional[Exception]], None],
    Callable[[str, Optional[Exception]], Coroutine[Any, Any, None]],
]

from .frames import (  # noqa: E402
    AudioFrame, AudioOutput, FrameBuffer, InputFrame, OutputFrame, SideData,
    VideoFrame, VideoOutput,
)
from .frame_processor import FrameProcessor  # noqa: E402
from .state import PipelineState, StreamState  # noqa: E402
from .stream_processor import StreamProcessor  # noqa: E402
from .server import StreamServer  # noqa: E402
from .frame_skipper import FrameSkipConfig  # noqa: E402
from . import decorators  # noqa: E402

__version__ = "0.1.1+ctrickle"

__all__ = [
    "AudioFrame", "AudioOutput", "ErrorCallback", "FrameBuffer", "FrameProcessor",
    "FrameSkipConfig", "InputFrame", "OutputFrame", "PipelineState", "SideData",
    "StreamProcessor", "StreamServer", "StreamState", "VideoFrame", "VideoOutput",
    "decorators",
]
