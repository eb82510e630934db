"""Image threshold and score normalisation from held-out normal images."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import ScoringConfig


@dataclass(frozen=True)
class Thresholds:
    image_threshold: float
    pixel_threshold: float
    normalization_offset: float
    normalization_scale: float
    holdout_scores: tuple[float, ...]


def calibrate(holdout_scores: np.ndarray, holdout_patch_scores: np.ndarray, cfg: ScoringConfig) -> Thresholds:
    """threshold = quantile(normal image scores) × margin; normalised = (raw − mean_normal)/(threshold − mean_normal).

    With no held-out images the threshold falls back to the training patches' own distances.
    """
    scores = np.asarray(holdout_scores, dtype=np.float64)
    patches = np.asarray(holdout_patch_scores, dtype=np.float64).ravel()
    if scores.size == 0:
        scores = np.array([patches.max() if patches.size else 1.0])
    threshold = float(np.quantile(scores, cfg.threshold_quantile) * cfg.threshold_margin)
    offset = float(np.median(patches)) if patches.size else 0.0
    if not threshold > offset:
        offset = 0.0
    scale = threshold - offset if threshold > offset else max(threshold, 1e-6)
    return Thresholds(image_threshold=threshold, pixel_threshold=threshold, normalization_offset=offset,
                      normalization_scale=float(scale), holdout_scores=tuple(float(s) for s in scores))
