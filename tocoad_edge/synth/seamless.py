"""Seamless patch: a texture patch Poisson-blended into the image (``cv2.seamlessClone``)."""
from __future__ import annotations

import cv2
import numpy as np


def seamless_patch(image: np.ndarray, texture: np.ndarray, rng: np.random.Generator,
                   area: tuple[float, float] = (0.01, 0.1)) -> tuple[np.ndarray, np.ndarray]:
    """Blend an elliptic patch of ``texture`` (same size as ``image``) into ``image`` at a random place.

    Returns ``(image uint8 [H,W,3], mask uint8 {0,1} [H,W])``; pixels outside the mask are untouched.
    """
    h, w = image.shape[:2]
    a = rng.uniform(*area) * h * w
    r = np.exp(rng.uniform(np.log(0.4), np.log(2.5)))
    ph = int(np.clip(round(np.sqrt(a * r)), 8, h - 4))
    pw = int(np.clip(round(np.sqrt(a / r)), 8, w - 4))
    src = np.ascontiguousarray(texture[:ph + 4, :pw + 4])
    local = np.zeros(src.shape[:2], np.uint8)
    cv2.ellipse(local, ((pw + 4) // 2, (ph + 4) // 2), (pw // 2 - 1, ph // 2 - 1),
                float(rng.uniform(0, 180)), 0, 360, 255, -1)
    x, y, bw, bh = cv2.boundingRect(local)
    # place the mask's bounding box fully inside the image, at least 1 px from the border
    ty = int(rng.integers(1, max(2, h - bh)))
    tx = int(rng.integers(1, max(2, w - bw)))
    center = (tx + bw // 2, ty + bh // 2)
    # seamlessClone writes into the mask it is given: pass a copy
    cloned = cv2.seamlessClone(src, np.ascontiguousarray(image), local.copy(), center, cv2.NORMAL_CLONE)
    mask = np.zeros((h, w), np.uint8)
    mask[ty:ty + bh, tx:tx + bw] = local[y:y + bh, x:x + bw] > 0
    out = np.where(mask[..., None] > 0, cloned, image)
    return out.astype(np.uint8), mask
