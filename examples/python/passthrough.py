"""A PyTrickle passthrough processor, written as PyTrickle's docs write one.

Run it in ctrickle (no change to the file):
    build/gateway --processor python:passthrough:PassthroughProcessor \
        --processor-config '{"path":"examples/python"}'
"""

import logging
from typing import Any, Dict, List, Optional

from pytrickle import FrameProcessor
from pytrickle.frames import AudioFrame, VideoFrame

logger = logging.getLogger(__name__)


class PassthroughProcessor(FrameProcessor):
    """Returns every frame unchanged."""

    async def load_model(self, **kwargs):
        logger.info("passthrough ready")

    async def process_video_async(self, frame: VideoFrame) -> Optional[VideoFrame]:
        return frame

    async def process_audio_async(self, frame: AudioFrame) -> Optional[List[AudioFrame]]:
        return [frame]

    async def update_params(self, params: Dict[str, Any]):
        logger.info("params: %s", params)
