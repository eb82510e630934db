"""Image and mask files → numpy arrays (and resized to the model input). Errors name the path."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import cv2
import numpy as np

from ..errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")


def _decode(path: Path, flags: int) -> np.ndarray:
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise DataError(f"cannot read image file {path}", got=str(exc), fix="check the path and permissions") from None
    img = cv2.imdecode(data, flags) if data.size else None
    if img is None:
        raise DataError(f"cannot decode image file {path}", expected="a PNG, JPEG or BMP image",
                        got=f"{data.size} bytes that OpenCV cannot decode",
                        fix="remove or replace the damaged file")
    return img


def read_image(path: str | Path) -> np.ndarray:
    """Read an image as uint8 BGR ``[H, W, 3]``; grayscale and 16-bit files are converted."""
    img = _decode(Path(path), cv2.IMREAD_COLOR)
    return np.ascontiguousarray(img)


def read_mask(path: str | Path | None, shape: tuple[int, int]) -> np.ndarray:
    """Read a ground-truth mask as bool ``[H, W]`` (non-zero = defect); ``None`` gives an empty mask.

    A mask of another size than the image is resized (nearest) to ``shape``.
    """
    if path is None:
        return np.zeros(shape, dtype=bool)
    m = _decode(Path(path), cv2.IMREAD_GRAYSCALE)
    if m.shape != tuple(shape):
        m = cv2.resize(m, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    return m > 0


def resize_to_input(image: np.ndarray, size: int) -> np.ndarray:
    """uint8 BGR frame → ``size × size`` with cv2 INTER_LINEAR (what the runtime does)."""
    if image.shape[:2] == (size, size):
        return np.ascontiguousarray(image)
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)


def load_resized(paths: Iterable[Path], size: int, progress: Callable[[int], object] | None = None) -> np.ndarray:
    """Read and resize images into one uint8 array ``[N, size, size, 3]``."""
    paths = list(paths)
    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    for i, p in enumerate(paths):
        out[i] = resize_to_input(read_image(p), size)
        if progress is not None:
            progress(1)
    return out
