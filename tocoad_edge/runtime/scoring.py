"""Patch distances → raw image score and anomaly map (the same in every runtime; see docs/architecture.md)."""
from __future__ import annotations

import functools

import cv2
import numpy as np

from ..bundle.manifest import IMAGE_SCORES


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


# How an image's score is drawn from its patch distances (the manifest's ``scoring.image_score``):
#   "max"           the largest patch distance (PatchCore's own score);
#   "smoothed-max"  the largest value of the patch grid smoothed by the anomaly map's own Gaussian at grid scale
#                   (``gaussian_sigma / stride``): about the peak of the map the operator sees, so one stray patch
#                   of a good part weighs less than a defect that spans neighbouring patches.


@functools.lru_cache(maxsize=16)
def score_kernel(mode: str, sigma: float, stride: int) -> np.ndarray | None:
    """1-D float32 weights of the ``smoothed-max`` score (the map's Gaussian of ``sigma`` model-input pixels at
    patch-grid scale, out to two sigmas and at least one patch each side, summing to 1); None for ``max`` or a
    zero sigma (no smoothing). Cached (the detector asks per frame, its scoring may be reloaded), so read-only."""
    if mode not in IMAGE_SCORES:
        from ..errors import InputError

        raise InputError("unknown image score", expected=" or ".join(IMAGE_SCORES), got=repr(mode))
    if mode == "max" or sigma <= 0:
        return None
    s = sigma / stride
    r = max(1, int(np.ceil(2.0 * s)))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / s) ** 2)
    weights: np.ndarray = (k / k.sum()).astype(np.float32)
    weights.flags.writeable = False
    return weights


def smooth_grid(grids: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``grids [..., h, w]`` smoothed by the separable ``kernel`` with mirrored borders (edge repeated: OpenCV's
    BORDER_REFLECT), float32."""
    g = np.ascontiguousarray(grids, dtype=np.float32)
    flat = g.reshape(-1, *g.shape[-2:])
    out = np.empty_like(flat)
    k = np.asarray(kernel, dtype=np.float32)
    for i in range(len(flat)):          # one OpenCV call per grid: the refined search smooths a frame per pass
        cv2.sepFilter2D(flat[i], cv2.CV_32F, k, k, dst=out[i], borderType=cv2.BORDER_REFLECT)
    return out.reshape(g.shape)


def image_score(patch_distances: np.ndarray, grid: tuple[int, ...] | None = None,
                kernel: np.ndarray | None = None) -> float:
    """The raw image score of one image's patch distances: their maximum, or with a ``kernel`` (``score_kernel``)
    the maximum of the ``grid``-shaped (``(h, w)``, or ``(tiles, h, w)``) distances smoothed by it."""
    if kernel is None:
        return float(patch_distances.max())
    if grid is None:
        from ..errors import InputError

        raise InputError("a smoothed image score needs the patch grid", expected="grid=(h, w) or (tiles, h, w)",
                         got="grid=None")
    return float(smooth_grid(np.asarray(patch_distances).reshape(grid), kernel).max())


def image_scores(patch_distances: np.ndarray, grid: tuple[int, int], kernel: np.ndarray | None = None) -> np.ndarray:
    """``image_score`` of each row of ``patch_distances [n, h·w]`` (one image or tile per row), float64 ``[n]``."""
    d = np.asarray(patch_distances)
    peaks = d if kernel is None else smooth_grid(d.reshape(len(d), *grid), kernel).reshape(len(d), -1)
    out: np.ndarray = np.asarray(peaks.max(1), dtype=np.float64)
    return out
