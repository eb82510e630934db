"""Photometric view augmentation for stage 2 (torch, on float images in 0..255, NCHW).

Both SimSiam views come from the same (rotated) normal image and differ only photometrically, so their patch
embeddings correspond location by location. The synthetic-anomaly image gets exactly the photometric
parameters of view 1, so the negative guide compares patches that differ only by the synthetic defect.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F


@dataclass(frozen=True)
class PhotometricParams:
    brightness: torch.Tensor   # [N] additive shift, in 0..255 units
    contrast: torch.Tensor     # [N] gain around the image mean
    noise_seed: int
    blur: torch.Tensor         # [N] bool


def draw_params(n: int, generator: torch.Generator, brightness: float, contrast: float,
                blur_probability: float) -> PhotometricParams:
    b = (torch.rand(n, generator=generator) * 2 - 1) * brightness * 255.0
    c = 1.0 + (torch.rand(n, generator=generator) * 2 - 1) * contrast
    blur = torch.rand(n, generator=generator) < blur_probability
    seed = int(torch.randint(0, 2 ** 31 - 1, (1,), generator=generator))
    return PhotometricParams(b, c, seed, blur)


_BLUR = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16.0


def apply_photometric(x: torch.Tensor, params: PhotometricParams, noise_std: float) -> torch.Tensor:
    """``x``: float ``[N, 3, H, W]`` in 0..255 → augmented, clipped to 0..255."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    y = (x - mean) * params.contrast.view(-1, 1, 1, 1) + mean + params.brightness.view(-1, 1, 1, 1)
    if bool(params.blur.any()):
        k = _BLUR.to(x.dtype).view(1, 1, 3, 3).repeat(3, 1, 1, 1)
        blurred = F.conv2d(F.pad(y, (1, 1, 1, 1), mode="replicate"), k, groups=3)
        y = torch.where(params.blur.view(-1, 1, 1, 1), blurred, y)
    if noise_std > 0:
        g = torch.Generator().manual_seed(params.noise_seed)
        y = y + torch.randn(y.shape, generator=g, dtype=y.dtype) * noise_std * 255.0
    return y.clamp(0.0, 255.0)
