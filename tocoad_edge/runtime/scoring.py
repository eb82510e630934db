"""Patch distances → raw image score and anomaly map (the same in every runtime; see docs/architecture.md)."""
from __future__ import annotations

import cv2
import numpy as np


def gaussian_ksize(sigma: float) -> int:
    return 2 * int(round(4.0 * sigma)) + 1


def anomaly_map(patch_distances: np.ndarray, grid: tuple[int, int], input_size: tuple[int, int],
                sigma: float, frame_size: tuple[int, int] | None = None) -> np.ndarray:
    """Grid of distances → bilinear to the model input size → Gaussian blur → bilinear to the frame size."""
    h, w = grid
    m = patch_distances.reshape(h, w).astype(np.float32, copy=False)
    ih, iw = input_size
    m = cv2.resize(m, (iw, ih), interpolation=cv2.INTER_LINEAR)
    if sigma > 0:
        k = gaussian_ksize(sigma)
        m = cv2.GaussianBlur(m, (k, k), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)
    if frame_size is not None and tuple(frame_size) != (ih, iw):
        m = cv2.resize(m, (frame_size[1], frame_size[0]), interpolation=cv2.INTER_LINEAR)
    return m


def image_score(patch_distances: np.ndarray) -> float:
    return float(patch_distances.max())
