"""A PyTorch model with no weights to download: a fixed 3x3 convolution
(Sobel edge magnitude, or a box blur) built in code, run on the CPU, or on
CUDA when the worker has a GPU. Written as a PyTrickle FrameProcessor.

Params (start request or /stream/params): {"mode": "edges"|"blur"|"off",
"strength": 0..4 (edge gain, default 2)}.

    build/gateway --processor python:torch_filter:TorchFilter \
        --processor-config '{"path":"examples/python"}'
"""

import logging
from typing import Any, Dict, List, Optional

import torch
import torch.nn.functional as F

from pytrickle import FrameProcessor
from pytrickle.frames import AudioFrame, VideoFrame

logger = logging.getLogger(__name__)


class TorchFilter(FrameProcessor):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.mode = "edges"
        self.strength = 2.0
        self.device = torch.device("cpu")

    async def load_model(self, **kwargs):
        """The "model": two Sobel kernels and a blur kernel, as conv weights."""
        if kwargs.get("device") == "cuda" and torch.cuda.is_available():
            self.device = torch.device("cuda")
        sx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
        self.sobel = torch.stack([sx, sx.t()]).unsqueeze(1).to(self.device)  # [2,1,3,3]
        self.blur = torch.full((3, 1, 5, 5), 1.0 / 25.0, device=self.device)  # depthwise
        self.luma = torch.tensor([0.299, 0.587, 0.114], device=self.device).view(1, 3, 1, 1)
        torch.set_grad_enabled(False)
        logger.info("torch filter ready on %s", self.device)

    async def on_stream_start(self, params: Optional[Dict[str, Any]] = None):
        await self.update_params(params or {})

    async def update_params(self, params: Dict[str, Any]):
        if "mode" in params:
            self.mode = str(params["mode"])
        if "strength" in params:
            self.strength = max(0.0, min(4.0, float(params["strength"])))

    async def process_video_async(self, frame: VideoFrame) -> Optional[VideoFrame]:
        if self.mode == "off":
            return frame
        x = frame.tensor.to(self.device).permute(0, 3, 1, 2)  # [1,3,H,W]
        if self.mode == "blur":
            y = F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), self.blur, groups=3)
        else:
            g = (x * self.luma).sum(dim=1, keepdim=True)  # [1,1,H,W]
            e = F.conv2d(F.pad(g, (1, 1, 1, 1), mode="replicate"), self.sobel)
            mag = (e.pow(2).sum(dim=1, keepdim=True).sqrt() * (self.strength / 4.0))
            y = mag.clamp(0, 1).expand(-1, 3, -1, -1)
        return frame.replace_tensor(y.permute(0, 2, 3, 1).cpu())

    async def process_audio_async(self, frame: AudioFrame) -> Optional[List[AudioFrame]]:
        return [frame]
