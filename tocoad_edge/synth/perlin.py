"""Perlin-noise anomaly masks (DRAEM / ToCoAD style).

A 2-D Perlin noise field with a random grid scale of 2^k (k drawn independently per axis from
``[min_scale, max_scale]``) is rotated by a random angle and thresholded; the result is a set of
irregular blobs of very different sizes and aspect ratios.
"""
from __future__ import annotations

import math

import cv2
import numpy as np


def _fade(t: np.ndarray) -> np.ndarray:
    return 6 * t ** 5 - 15 * t ** 4 + 10 * t ** 3


def perlin_noise(shape: tuple[int, int], res: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Perlin noise of ``shape`` (H, W) with ``res`` (rows, cols) gradient cells; values about in [-1, 1].

    Any shape works: the noise is computed on the next multiple of ``res`` and cropped.
    """
    h, w = shape
    ry, rx = max(1, int(res[0])), max(1, int(res[1]))
    dy, dx = math.ceil(h / ry), math.ceil(w / rx)
    hh, ww = dy * ry, dx * rx
    angles = 2 * math.pi * rng.random((ry + 1, rx + 1))
    grads = np.stack([np.cos(angles), np.sin(angles)], axis=-1)
    ys = (np.arange(hh) / dy)
    xs = (np.arange(ww) / dx)
    yi, xi = ys.astype(np.int64), xs.astype(np.int64)
    yf, xf = (ys - yi)[:, None], (xs - xi)[None, :]

    def dot(oy: int, ox: int) -> np.ndarray:
        g = grads[yi[:, None] + oy, xi[None, :] + ox]
        return g[..., 0] * (yf - oy) + g[..., 1] * (xf - ox)

    n00, n10, n01, n11 = dot(0, 0), dot(1, 0), dot(0, 1), dot(1, 1)
    u, v = _fade(xf), _fade(yf)
    top = n00 + u * (n01 - n00)
    bottom = n10 + u * (n11 - n10)
    noise = math.sqrt(2) * (top + v * (bottom - top))
    return noise[:h, :w].astype(np.float32)


def rotate_image(img: np.ndarray, degrees: float, border: int = cv2.BORDER_REFLECT_101,
                 interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Rotate about the centre, same size."""
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), degrees, 1.0)
    return cv2.warpAffine(img, m, (w, h), flags=interpolation, borderMode=border)


def perlin_mask(shape: tuple[int, int], rng: np.random.Generator, min_scale: int = 0, max_scale: int = 6,
                threshold: float = 0.5, rotation: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """A thresholded, rotated Perlin mask. Returns ``(mask uint8 {0,1} [H,W], noise float32 [H,W])``."""
    sy = 2 ** int(rng.integers(min_scale, max_scale + 1))
    sx = 2 ** int(rng.integers(min_scale, max_scale + 1))
    noise = perlin_noise(shape, (sy, sx), rng)
    if rotation:
        noise = rotate_image(noise, float(rng.uniform(-90.0, 90.0)))
    mask = (noise > threshold).astype(np.uint8)
    return mask, noise
