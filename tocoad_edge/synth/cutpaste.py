"""CutPaste (Li et al., CVPR 2021): a rectangle cut from the image itself, colour-jittered, pasted elsewhere."""
from __future__ import annotations

import numpy as np


def cutpaste(image: np.ndarray, rng: np.random.Generator, area: tuple[float, float] = (0.02, 0.15),
             aspect: tuple[float, float] = (0.3, 3.3), jitter: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``(image uint8 [H,W,3], mask uint8 {0,1} [H,W])``; pixels outside the mask are untouched."""
    h, w = image.shape[:2]
    a = rng.uniform(*area) * h * w
    r = np.exp(rng.uniform(np.log(aspect[0]), np.log(aspect[1])))
    ph = int(np.clip(round(np.sqrt(a * r)), 2, h - 1))
    pw = int(np.clip(round(np.sqrt(a / r)), 2, w - 1))
    sy, sx = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
    ty, tx = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
    patch = image[sy:sy + ph, sx:sx + pw].astype(np.float32)
    gray = bool(np.all(image[..., 0] == image[..., 1]) and np.all(image[..., 1] == image[..., 2]))
    gain = 1.0 + rng.uniform(-jitter, jitter, 1 if gray else 3)
    shift = 255.0 * rng.uniform(-jitter, jitter, 1 if gray else 3)
    patch = np.clip(patch * gain + shift, 0, 255)
    out = image.copy()
    out[ty:ty + ph, tx:tx + pw] = patch.astype(np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[ty:ty + ph, tx:tx + pw] = 1
    return out, mask
