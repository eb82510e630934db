"""The deployable feature model: uint8 BGR frames in, locally aggregated patch embeddings out.

This exact module is what ``export/`` turns into ONNX, so preprocessing, local aggregation and the
optional projection all live in the graph and the runtime does no per-pixel work in Python.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .backbones import Backbone


class PatchEmbedder(nn.Module):
    """``forward(uint8 [N,H,W,3] BGR) -> float32 [N, h*w, D]`` patch embeddings.

    ``features(x)`` takes an already normalised float NCHW batch and returns ``[N, D, h, w]``; training
    uses it with gradients.
    """

    def __init__(self, backbone: Backbone, layers: list[str], aggregation: int = 3,
                 projection: torch.Tensor | None = None):
        super().__init__()
        backbone.check_layers(layers)
        if aggregation < 1 or aggregation % 2 == 0:
            raise ValueError(f"aggregation must be an odd kernel size >= 1, got {aggregation}")
        self.backbone = backbone
        self.layers = list(layers)
        self.aggregation = aggregation
        self.register_buffer("bgr_to_rgb", torch.tensor([2, 1, 0], dtype=torch.int64), persistent=False)
        self.register_buffer("mean", torch.tensor(backbone.mean, dtype=torch.float32).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(backbone.std, dtype=torch.float32).view(1, 3, 1, 1) * 255.0)
        if projection is not None:
            self.register_buffer("projection", projection.to(torch.float32))
        else:
            self.projection = None

    @property
    def stride(self) -> int:
        return min(self.backbone.layer_stride(n) for n in self.layers)

    @property
    def raw_dim(self) -> int:
        return sum(self.backbone.layer_channels(n) for n in self.layers)

    @property
    def dim(self) -> int:
        return int(self.projection.shape[1]) if self.projection is not None else self.raw_dim

    def grid_size(self, height: int, width: int) -> tuple[int, int]:
        import math

        s = self.stride
        return math.ceil(height / s), math.ceil(width / s)

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC BGR → normalised float NCHW RGB."""
        x = frames.to(torch.float32).permute(0, 3, 1, 2)
        x = x.index_select(1, self.bgr_to_rgb)  # BGR → RGB as a Gather (portable to every ONNX runtime)
        return (x - self.mean) / self.std

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised NCHW → aggregated, concatenated (and projected) features ``[N, D, h, w]``."""
        maps = self.backbone.forward_layers(x, self.layers)
        size = maps[0].shape[-2:]
        out = []
        k = self.aggregation
        for m in maps:
            if k > 1:
                m = F.avg_pool2d(m, k, stride=1, padding=k // 2, count_include_pad=False)
            if m.shape[-2:] != size:
                m = F.interpolate(m, size=size, mode="bilinear", align_corners=False)
            out.append(m)
        f = torch.cat(out, dim=1)
        if self.projection is not None:
            f = torch.einsum("ndhw,de->nehw", f, self.projection)
        return f

    def forward(self, frames: torch.Tensor) -> torch.Tensor:  # noqa: D102
        f = self.features(self.preprocess(frames))
        n, d, h, w = f.shape
        return f.permute(0, 2, 3, 1).reshape(n, h * w, d)
