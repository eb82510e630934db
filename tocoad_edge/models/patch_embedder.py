"""The deployable feature model: uint8 BGR frames in, locally aggregated patch embeddings out.

This exact module is what ``export/`` turns into ONNX, so preprocessing, local aggregation and the
optional projection all live in the graph and the runtime does no per-pixel work in Python.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .backbones import Backbone
from .tone import standardise_tone


def unfold_pool_kernel(channels: int, k: int, dim: int) -> torch.Tensor:
    """PatchCore's locally aware patch feature as one fixed convolution ``[dim, channels, k, k]``.

    PatchCore unfolds each k×k neighbourhood into a ``channels·k·k`` vector (channel-major, zero padding) and
    resamples it to ``dim`` values with adaptive average pooling. Both steps are linear, so they fold into a
    single k×k convolution whose weights are the pooling matrix — which exports to ONNX/TensorRT as a plain Conv.
    """
    n_in = channels * k * k
    eye = torch.eye(n_in, dtype=torch.float64).reshape(n_in, 1, n_in)
    pool = F.adaptive_avg_pool1d(eye, dim).reshape(n_in, dim)          # [n_in, dim]
    return pool.t().reshape(dim, channels, k, k).to(torch.float32).contiguous()


class PatchEmbedder(nn.Module):
    """``forward(uint8 [N,H,W,3] BGR) -> float32 [N, h*w, D]`` patch embeddings.

    ``features(x)`` takes an already normalised float NCHW batch and returns ``[N, D, h, w]``; training
    uses it with gradients.
    """

    def __init__(self, backbone: Backbone, layers: list[str], aggregation: int = 3,
                 projection: torch.Tensor | None = None, aggregation_mode: str = "mean",
                 aggregation_dim: int | None = None):
        super().__init__()
        backbone.check_layers(layers)
        if aggregation < 1 or aggregation % 2 == 0:
            raise ValueError(f"aggregation must be an odd kernel size >= 1, got {aggregation}")
        if aggregation_mode not in ("mean", "patchcore"):
            raise ValueError(f"aggregation_mode must be 'mean' or 'patchcore', got {aggregation_mode!r}")
        self.backbone = backbone
        self.layers = list(layers)
        self.aggregation = aggregation
        self.aggregation_mode = aggregation_mode
        self.aggregation_dim = aggregation_dim
        self._unfold_pool: list[torch.Tensor] = []
        if aggregation_mode == "patchcore":
            if not aggregation_dim or aggregation_dim < 1:
                raise ValueError("aggregation_mode 'patchcore' needs aggregation_dim >= 1")
            for i, name in enumerate(self.layers):
                w = unfold_pool_kernel(backbone.layer_channels(name), aggregation, aggregation_dim)
                self.register_buffer(f"unfold_pool_{i}", w, persistent=False)
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
        if self.aggregation_mode == "patchcore":
            return self.aggregation_dim * len(self.layers)
        return sum(self.backbone.layer_channels(n) for n in self.layers)

    @property
    def dim(self) -> int:
        return int(self.projection.shape[1]) if self.projection is not None else self.raw_dim

    def grid_size(self, height: int, width: int) -> tuple[int, int]:
        import math

        s = self.stride
        return math.ceil(height / s), math.ceil(width / s)

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC BGR → normalised float NCHW RGB (tone-standardised first where the backbone says so)."""
        x = frames.to(torch.float32).permute(0, 3, 1, 2)
        x = x.index_select(1, self.bgr_to_rgb)  # BGR → RGB as a Gather (portable to every ONNX runtime)
        if self.backbone.tone_reference is not None:
            x = standardise_tone(x, self.backbone.tone_reference)
        return (x - self.mean) / self.std

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised NCHW → aggregated, concatenated (and projected) features ``[N, D, h, w]``."""
        maps = self.backbone.forward_layers(x, self.layers)
        size = maps[0].shape[-2:]
        out = []
        k = self.aggregation
        for i, m in enumerate(maps):
            if self.aggregation_mode == "patchcore":
                m = F.conv2d(m, getattr(self, f"unfold_pool_{i}"), padding=k // 2)
            elif k > 1:
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
