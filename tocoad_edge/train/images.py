"""Loading training images at the model input size (same resize as the runtime)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

from ..data import read_image


def resize_to_input(image: np.ndarray, size: int) -> np.ndarray:
    """uint8 BGR frame → ``size × size`` with cv2 INTER_LINEAR (what the runtime does)."""
    if image.shape[:2] == (size, size):
        return np.ascontiguousarray(image)
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)


def load_resized(paths: Iterable[Path], size: int, progress=None) -> np.ndarray:
    """Read and resize images into one uint8 array ``[N, size, size, 3]``."""
    paths = list(paths)
    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    for i, p in enumerate(paths):
        out[i] = resize_to_input(read_image(p), size)
        if progress is not None:
            progress(1)
    return out
