"""FrameSkipConfig of PyTrickle. ctrickle's gateway does rate control
(params max_framerate, --frame-deadline), so this is accepted and unused."""

from dataclasses import dataclass
from typing import Optional


@dataclass
class FrameSkipConfig:
    target_fps: Optional[float] = None
    adaptation_cooldown: float = 0.5
    max_queue_size: int = 15
    max_cleanup_frames: int = 50
