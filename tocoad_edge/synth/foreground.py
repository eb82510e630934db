"""Optional foreground masks, so synthetic defects land on the object and not on the background."""
from __future__ import annotations

import cv2
import numpy as np


def foreground_mask(image: np.ndarray, method: str = "otsu") -> np.ndarray:
    """uint8 {0,1} mask of the object in a uint8 BGR (or gray) image.

    ``otsu``: Otsu threshold of the blurred gray image; the class that touches the border less is the object.
    ``none``: everything is foreground.
    """
    h, w = image.shape[:2]
    if method == "none":
        return np.ones((h, w), np.uint8)
    if method != "otsu":
        raise ValueError(f"unknown foreground method {method!r}; expected 'none' or 'otsu'")
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    gray = cv2.GaussianBlur(gray, (5, 5), 0)
    _, th = cv2.threshold(gray, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    border = np.concatenate([th[0], th[-1], th[:, 0], th[:, -1]])
    if border.mean() > 0.5:  # the bright class is the background
        th = 1 - th
    th = cv2.morphologyEx(th.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8))
    if th.sum() < 0.02 * h * w:  # nothing sensible found: do not restrict
        return np.ones((h, w), np.uint8)
    return th.astype(np.uint8)
