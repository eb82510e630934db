"""Stage 1: the discriminative network D.

D is a small decoder on the frozen backbone's multi-scale feature maps (the configured layers, e.g.
EfficientNet-Lite0 blocks.4 @ stride 8 and blocks.10 @ stride 16). It segments the synthetic anomalies of G
at the finest feature stride and is trained with the binary focal loss (α = 0.5, γ = 2 by default). After
training, D is frozen and only used to mark anomalous regions for the negative guide of stage 2.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.5, gamma: float = 2.0) -> torch.Tensor:
    """Binary focal loss (Lin et al. 2017), mean over all elements. ``target`` may be soft (in [0, 1]).

    ``FL = -α_t (1 - p_t)^γ log p_t`` with ``p_t = p·t + (1-p)(1-t)`` and ``α_t = α·t + (1-α)(1-t)``.
    With γ = 0 and α = 0.5 it is half the binary cross-entropy.
    """
    target = target.to(logits.dtype)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p = torch.sigmoid(logits)
    p_t = p * target + (1 - p) * (1 - target)
    alpha_t = alpha * target + (1 - alpha) * (1 - target)
    return (alpha_t * (1 - p_t).pow(gamma) * ce).mean()


def _conv_bn_relu(cin: int, cout: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class Discriminator(nn.Module):
    """Feature maps ``[N, C_i, h_i, w_i]`` → anomaly logits ``[N, 1, h_0, w_0]`` at the finest map's grid."""

    def __init__(self, in_channels: list[int], width: int = 64):
        super().__init__()
        self.lateral = nn.ModuleList([_conv_bn_relu(c, width, 1) for c in in_channels])
        self.head = nn.Sequential(
            _conv_bn_relu(width * len(in_channels), width, 3),
            _conv_bn_relu(width, width, 3),
            nn.Conv2d(width, 1, 1),
        )

    def forward(self, maps: list[torch.Tensor]) -> torch.Tensor:  # noqa: D102
        size = maps[0].shape[-2:]
        feats = []
        for lat, m in zip(self.lateral, maps):
            f = lat(m)
            if f.shape[-2:] != size:
                f = F.interpolate(f, size=size, mode="bilinear", align_corners=False)
            feats.append(f)
        return self.head(torch.cat(feats, dim=1))

    def probability(self, maps: list[torch.Tensor]) -> torch.Tensor:
        """Sigmoid map ``[N, 1, h_0, w_0]``."""
        return torch.sigmoid(self.forward(maps))


def masks_to_grid(masks: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """uint8 {0,1} masks ``[N, H, W]`` → soft targets ``[N, 1, h, w]`` (share of defect pixels per cell)."""
    t = torch.from_numpy(np.ascontiguousarray(masks)).to(torch.float32).unsqueeze(1)
    return F.adaptive_avg_pool2d(t, size) if t.shape[-2:] != tuple(size) else t
