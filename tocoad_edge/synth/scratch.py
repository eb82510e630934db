"""Thin-line defects: cracks, scratches and finger interruptions are lines one or two pixels wide that change the
surface's brightness a little. Perlin blobs, CutPaste and seamless patches are all areas, so without this G never
shows stage 1 and stage 2 a defect of that shape."""
from __future__ import annotations

import math

import cv2
import numpy as np

SUBPIXEL_BITS = 4       # cv2.polylines' fixed-point shift: vertices at 1/16 px, so the anti-aliasing is real


def scratch_mask(shape: tuple[int, int], rng: np.random.Generator, lines: tuple[int, int] = (1, 3),
                 length: tuple[float, float] = (0.15, 0.7), width: tuple[float, float] = (1.0, 2.5),
                 bend_degrees: float = 25.0) -> np.ndarray:
    """float32 [H, W] in [0, 1]: 1-3 anti-aliased, gently bending polylines (length a share of the shorter side,
    width in pixels)."""
    h, w = shape
    soft = np.zeros((h, w), np.float32)
    side = min(h, w)
    for _ in range(int(rng.integers(lines[0], lines[1] + 1))):
        total = rng.uniform(*length) * side
        steps = max(2, int(total // 6))
        angle = rng.uniform(0, 2 * math.pi)
        y, x = rng.uniform(0, h), rng.uniform(0, w)
        points = [(x, y)]
        for _ in range(steps):
            angle += math.radians(rng.normal(0.0, bend_degrees))
            x, y = x + math.cos(angle) * total / steps, y + math.sin(angle) * total / steps
            points.append((x, y))
        line = np.zeros((h, w), np.uint8)
        pts = np.round(np.array(points) * (1 << SUBPIXEL_BITS)).astype(np.int32)
        thickness = max(1, int(round(rng.uniform(*width))))
        cv2.polylines(line, [pts], False, 255, thickness, cv2.LINE_AA, SUBPIXEL_BITS)
        soft = np.maximum(soft, line.astype(np.float32) / 255.0)
    return soft


def scratch(image: np.ndarray, rng: np.random.Generator, contrast: tuple[float, float] = (0.1, 0.6),
            min_pixels: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``(image uint8 [H,W,3], mask uint8 {0,1} [H,W])``: lines darker (two thirds of the draws) or brighter
    than the surface by ``contrast`` × the way to black or white; faint at the low end, as real cracks often are.
    Pixels outside the mask are untouched."""
    h, w = image.shape[:2]
    soft = scratch_mask((h, w), rng)
    for _ in range(10):                     # a line drawn mostly outside the image: draw again
        if int((soft > 0.5).sum()) >= min_pixels:
            break
        soft = scratch_mask((h, w), rng)
    beta = float(rng.uniform(*contrast))
    target = 0.0 if rng.random() < 2 / 3 else 255.0
    a = (beta * soft)[..., None]
    out = image.astype(np.float32) * (1 - a) + a * target
    mask = (soft > 0.25).astype(np.uint8)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), mask
