"""Frame validation and conversion: anything a camera hands over → uint8 BGR ``[H, W, 3]``.

Documented conversions: gray ``[H, W]`` or ``[H, W, 1]`` → BGR; BGRA ``[H, W, 4]`` → BGR (alpha dropped);
non-contiguous views are copied. Everything else (float, 16-bit, empty, wrong rank) is an ``InputError``.
"""
from __future__ import annotations

import cv2
import numpy as np

from .arrays import UInt8Array
from ..errors import InputError

_EXPECTED = "uint8 array [H, W, 3] (BGR), [H, W] or [H, W, 1] (gray) or [H, W, 4] (BGRA)"


def to_bgr_frame(frame: object) -> UInt8Array:
    if not isinstance(frame, np.ndarray):
        raise InputError("frame must be a numpy array", expected=_EXPECTED, got=type(frame).__name__)
    if frame.size == 0:
        raise InputError("frame is empty", expected=_EXPECTED, got=f"shape {frame.shape}")
    if frame.dtype != np.uint8:
        raise InputError("frame has an unsupported dtype", expected=_EXPECTED, got=f"dtype {frame.dtype}",
                         fix="convert to 8-bit first, e.g. cv2.convertScaleAbs or (img / 257).astype(np.uint8) "
                             "for 16-bit")
    converted: UInt8Array        # cv2 is untyped: cvtColor of a uint8 image is a uint8 image
    if frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 1):
        converted = cv2.cvtColor(np.ascontiguousarray(frame.reshape(frame.shape[0], frame.shape[1])),
                                 cv2.COLOR_GRAY2BGR)
        return converted
    if frame.ndim == 3 and frame.shape[2] == 4:
        converted = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_BGRA2BGR)
        return converted
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise InputError("frame has an unsupported shape", expected=_EXPECTED, got=f"shape {frame.shape}")
    if frame.shape[0] < 8 or frame.shape[1] < 8:
        raise InputError("frame is too small", expected="at least 8 × 8 pixels", got=f"shape {frame.shape}")
    return np.ascontiguousarray(frame)


def to_model_input(frame_bgr: UInt8Array, height: int, width: int) -> UInt8Array:
    """Resize (cv2 INTER_LINEAR) to the model input and add the batch axis: uint8 ``[1, H, W, 3]``."""
    if frame_bgr.shape[:2] != (height, width):
        frame_bgr = cv2.resize(frame_bgr, (width, height), interpolation=cv2.INTER_LINEAR)
    return frame_bgr[None]
