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


def unfold_pool_slots(channels: int, k: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``unfold_pool_kernel``'s convolution as ``S`` channel slots: ``index [S, dim]`` int64 and ``weight
    [S, dim, 1, k, k]``, with ``conv = Σ_s depthwise(x[:, index[s]], weight[s])``.

    Each output averages one contiguous run of the unfolded ``channels·k·k`` vector, so it reads only a few
    consecutive input channels (two for the default layers at 192 dims): slot ``s`` holds each output's ``s``-th
    channel (zero weights where an output reads fewer). A gather plus a depthwise convolution per slot does the few
    multiply-adds the pooling needs; the dense kernel multiplies every channel, almost all of them by zero
    (``[192, 40, 3, 3]`` at 28×28: 54 M multiply-adds for 1.4 M that count).
    """
    dense = unfold_pool_kernel(channels, k, dim)                        # [dim, C, k, k]
    used = dense.abs().sum((2, 3)) > 0                                  # [dim, C]: contiguous runs of channels
    first = used.to(torch.int64).argmax(1)
    last = channels - 1 - used.flip(1).to(torch.int64).argmax(1)
    slots = int((last - first).max()) + 1
    rows = torch.arange(dim)
    index = torch.stack([torch.clamp(first + s, max=channels - 1) for s in range(slots)])     # [S, dim]
    weight = torch.stack([dense[rows, index[s]] * (first + s <= last).to(torch.float32)[:, None, None]
                          for s in range(slots)])                                              # [S, dim, k, k]
    return index.contiguous(), weight.unsqueeze(2).contiguous()


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
        self._pool_slots: list[int] = []
        if aggregation_mode == "patchcore":
            if not aggregation_dim or aggregation_dim < 1:
                raise ValueError("aggregation_mode 'patchcore' needs aggregation_dim >= 1")
            for i, name in enumerate(self.layers):
                index, weight = unfold_pool_slots(backbone.layer_channels(name), aggregation, aggregation_dim)
                self.register_buffer(f"unfold_pool_index_{i}", index, persistent=False)
                self.register_buffer(f"unfold_pool_weight_{i}", weight, persistent=False)
                self._pool_slots.append(len(index))
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
                m = self._unfold_pool(m, i)
            elif k > 1:
                m = F.avg_pool2d(m, k, stride=1, padding=k // 2, count_include_pad=False)
            if m.shape[-2:] != size:
                m = F.interpolate(m, size=size, mode="bilinear", align_corners=False)
            out.append(m)
        f = torch.cat(out, dim=1)
        if self.projection is not None:
            f = torch.einsum("ndhw,de->nehw", f, self.projection)
        return f

    def _unfold_pool(self, m: torch.Tensor, i: int) -> torch.Tensor:
        """PatchCore's aggregation of layer ``i`` (``unfold_pool_slots``): in ONNX a Gather and a grouped Conv
        per slot, and an Add."""
        index, weight = getattr(self, f"unfold_pool_index_{i}"), getattr(self, f"unfold_pool_weight_{i}")
        out = None
        for s in range(self._pool_slots[i]):
            y = F.conv2d(m.index_select(1, index[s]), weight[s], padding=self.aggregation // 2,
                         groups=self.aggregation_dim)
            out = y if out is None else out + y
        assert out is not None
        return out

    def forward(self, frames: torch.Tensor) -> torch.Tensor:  # noqa: D102
        f = self.features(self.preprocess(frames))
        n, d, h, w = f.shape
        return f.permute(0, 2, 3, 1).reshape(n, h * w, d)
