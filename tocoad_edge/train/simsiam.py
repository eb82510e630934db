"""SimSiam (Chen & He, CVPR 2021), dense: projector + predictor on patch embeddings, stop-gradient,
symmetric negative cosine. The two views share their geometry (only photometric changes differ), so the
loss is taken at every patch location; projector and predictor are training-only and never exported.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class DenseProjector(nn.Module):
    """1×1-conv MLP ``[N, D, h, w] → [N, P, h, w]`` (3 layers, BN, like SimSiam's projector)."""

    def __init__(self, in_dim: int, dim: int = 256):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_dim, dim, 1, bias=False), nn.BatchNorm2d(dim), nn.ReLU(inplace=True),
            nn.Conv2d(dim, dim, 1, bias=False), nn.BatchNorm2d(dim), nn.ReLU(inplace=True),
            nn.Conv2d(dim, dim, 1, bias=False), nn.BatchNorm2d(dim, affine=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.net(x)


class DensePredictor(nn.Module):
    """Bottleneck 1×1-conv MLP ``[N, P, h, w] → [N, P, h, w]``."""

    def __init__(self, dim: int = 256, hidden: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(dim, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
                                 nn.Conv2d(hidden, dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.net(x)


def negative_cosine(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``-cos(p, stopgrad(z))`` along the channel axis, averaged over batch and locations."""
    return -F.cosine_similarity(p, z.detach(), dim=1).mean()


def simsiam_loss(p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Symmetric SimSiam loss ``½ D(p1, z2) + ½ D(p2, z1)``; −1 is perfect agreement."""
    return 0.5 * negative_cosine(p1, z2) + 0.5 * negative_cosine(p2, z1)
