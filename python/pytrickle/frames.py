"""VideoFrame and AudioFrame as PyTrickle defines them, filled by ctrickle.

VideoFrame.tensor: torch float32 [1, H, W, 3], RGB, values in [0, 1], on the
CPU (a numpy array when torch is not installed). ctrickle makes it lazily,
the first time the processor reads it, in one pass from the uint8 ring slot
(no other copy): a processor that returns the frame untouched costs no
conversion. A processor class with `ctrickle_uint8 = True` gets instead a
uint8 [1, H, W, 3] tensor that is a view of the ring slot itself: valid
during the call only, and not to be written (docs/python.md).
"""

import logging
import os
import time
from fractions import Fraction
from typing import Any, Deque, Dict, List, Optional, Union
from collections import deque

import numpy as np

if os.environ.get("CT_PYTHON_NO_TORCH") == "1":
    torch = None
else:
    try:
        import torch
    except ImportError:
        torch = None

logger = logging.getLogger(__name__)

DEFAULT_WIDTH = 704
DEFAULT_HEIGHT = 384


class SideData:
    """Side data placeholder, as in PyTrickle."""
    skipped: bool = True
    input: Any = None


class InputFrame:
    """Base class of input frames."""
    timestamp: int
    time_base: Fraction
    log_timestamps: Dict[str, float]
    side_data: SideData


def _released(*_a):
    raise RuntimeError("this frame's pixels were not read during process_video_async; "
                       "read frame.tensor inside the call (the ring slot is reused after it)")


class VideoFrame(InputFrame):
    """A video frame: tensor and timing (timestamp in time_base units)."""

    def __init__(self, tensor, timestamp: int = 0, time_base: Fraction = Fraction(1, 90000),
                 log_timestamps: Optional[Dict[str, float]] = None):
        self._tensor = tensor
        self._loader = None
        self._view = None
        self.timestamp = timestamp
        self.time_base = time_base
        self.log_timestamps = log_timestamps or {}
        self.side_data = SideData()

    @property
    def tensor(self):
        if self._tensor is None and self._loader is not None:
            self._tensor = self._loader()
            self._loader = None
        return self._tensor

    @tensor.setter
    def tensor(self, value):
        self._tensor = value
        self._loader = None

    @classmethod
    def _from_slot(cls, mv, width, height, stride, uint8, timestamp, time_base):
        """A frame over a ring slot (memoryview mv of RGB24 rows of `stride`
        bytes): the tensor is made on first use. Used by ctrickle_py.bridge."""
        f = cls.__new__(cls)
        f._tensor = None
        f._view = None
        f.timestamp = timestamp
        f.time_base = time_base
        f.log_timestamps = {"frame_init": time.time()}
        f.side_data = SideData()

        def load():
            a = np.ndarray((1, height, width, 3), np.uint8, mv, 0,
                           (stride * height, stride, 3, 1))
            if uint8:
                f._view = torch.from_numpy(a) if torch is not None else a
                return f._view
            if torch is not None:
                return torch.from_numpy(a).div(255.0)
            return a.astype(np.float32) * np.float32(1.0 / 255.0)
        f._loader = load
        return f

    def _materialized(self):
        return self._tensor is not None

    def _detach(self):
        """After the call: a tensor never read can no longer be."""
        if self._loader is not None:
            self._loader = _released

    @property
    def width(self):
        return int(self.tensor.shape[-2])

    @property
    def height(self):
        return int(self.tensor.shape[-3])

    @classmethod
    def from_av_video(cls, tensor, timestamp: int, time_base: Fraction) -> "VideoFrame":
        return cls(tensor, timestamp, time_base)

    @classmethod
    def from_tensor(cls, tensor, timestamp: int = 0) -> "VideoFrame":
        return cls(tensor, timestamp, Fraction(1, 1))

    def replace_tensor(self, new_tensor) -> "VideoFrame":
        """A new VideoFrame with new_tensor and this frame's timing."""
        nf = VideoFrame(new_tensor, self.timestamp, self.time_base, dict(self.log_timestamps))
        nf.side_data = self.side_data
        return nf


class AudioFrame(InputFrame):
    """An audio frame: samples (numpy; planar formats (channels, n), packed
    formats (1, n * channels)), format name (s16, flt, fltp, s16p), layout
    name, rate, nb_samples, timestamp, time_base."""

    def __init__(self, frame=None):
        """From an object with PyAV's AudioFrame attributes (to_ndarray,
        samples, format.name, sample_rate, layout.name, pts, time_base)."""
        if frame is None:
            raise ValueError("AudioFrame needs a source frame")
        if frame.pts is None:
            raise ValueError("Audio frame has no timestamp")
        self.samples = frame.to_ndarray()
        self.nb_samples = frame.samples
        self.format = frame.format.name
        self.rate = frame.sample_rate
        self.layout = frame.layout.name
        self.timestamp = frame.pts
        self.time_base = frame.time_base
        self.log_timestamps = {}
        self.side_data = SideData()

    @classmethod
    def _from_samples(cls, samples, fmt, layout, rate, nb_samples, timestamp, time_base):
        f = cls.__new__(cls)
        f.samples = samples
        f.format = fmt
        f.layout = layout
        f.rate = rate
        f.nb_samples = nb_samples
        f.timestamp = timestamp
        f.time_base = time_base
        f.log_timestamps = {}
        f.side_data = SideData()
        return f

    @classmethod
    def _from_existing_with_timestamp(cls, existing, new_timestamp):
        f = cls._from_samples(existing.samples, existing.format, existing.layout,
                              existing.rate, existing.nb_samples, new_timestamp,
                              existing.time_base)
        f.log_timestamps = dict(existing.log_timestamps)
        f.side_data = existing.side_data
        return f

    def replace_samples(self, samples) -> "AudioFrame":
        """A new AudioFrame with these samples and this frame's timing."""
        s = np.asarray(samples)
        n = s.shape[-1] if self.format.endswith("p") else s.size // max(1, s.shape[0])
        return AudioFrame._from_samples(s, self.format, self.layout, self.rate, n,
                                        self.timestamp, self.time_base)


class OutputFrame:
    """Base class of output frames."""

    @property
    def timestamp(self):
        raise NotImplementedError


class VideoOutput(OutputFrame):
    def __init__(self, frame: VideoFrame, request_id: str = ""):
        self.frame = frame
        self.request_id = request_id

    def replace_tensor(self, tensor):
        return VideoOutput(self.frame.replace_tensor(tensor), self.request_id)

    @property
    def tensor(self):
        return self.frame.tensor

    @property
    def timestamp(self):
        return self.frame.timestamp

    @property
    def time_base(self):
        return self.frame.time_base

    @property
    def log_timestamps(self):
        return self.frame.log_timestamps


class AudioOutput(OutputFrame):
    def __init__(self, frames: List[AudioFrame], request_id: str = ""):
        self.frames = frames
        self.request_id = request_id

    @property
    def timestamp(self):
        return self.frames[0].timestamp if self.frames else 0


class FrameBuffer:
    """Rolling buffer of the last max_frames frames."""

    def __init__(self, max_frames: int = 300):
        self.max_frames = max_frames
        self.frames: Deque[Union[VideoFrame, AudioFrame]] = deque(maxlen=max_frames)
        self.total_frames_received = 0
        self.total_frames_discarded = 0

    def add_frame(self, frame):
        if len(self.frames) >= self.max_frames:
            self.total_frames_discarded += 1
        self.frames.append(frame)
        self.total_frames_received += 1

    def get_frame(self):
        return self.frames.popleft() if self.frames else None

    def get_all_frames(self):
        out = list(self.frames)
        self.frames.clear()
        return out

    def clear(self):
        self.frames.clear()

    def size(self) -> int:
        return len(self.frames)

    def get_stats(self) -> Dict[str, int]:
        return {"current_frames": len(self.frames), "max_frames": self.max_frames,
                "total_received": self.total_frames_received,
                "total_discarded": self.total_frames_discarded}
