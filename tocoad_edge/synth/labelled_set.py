"""Held-out normal images plus G's synthetic anomalies drawn on them: a labelled set made without real defects.

Two users: the export's INT8 accuracy gate (``calibration/gate_data.py``) and ``tocoad-train --select``, which
scores each candidate model on it. Anomaly ``k`` of normal image ``i`` is G's sample number
``i · per_image + k`` (forced anomalous), so the set is the same for the same seed, config and images.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .generator import AnomalyGenerator


@dataclass(frozen=True)
class SyntheticSet:
    images: np.ndarray   # uint8 [N, H, W, 3] BGR: the normals first, then their anomalies
    masks: np.ndarray    # uint8 {0, 1} [N, H, W]: empty for the normals
    labels: np.ndarray   # int [N], 1 = synthetic anomaly

    def __len__(self) -> int:
        return int(len(self.labels))


def draw_anomalies(generator: AnomalyGenerator, normals: Sequence[np.ndarray],
                   per_image: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``per_image`` anomalous samples of G per normal image: (images, masks), in image-then-sample order."""
    images, masks = [], []
    for i, img in enumerate(normals):
        for k in range(per_image):
            s = generator.sample(img, i * per_image + k, anomaly=True)
            images.append(np.ascontiguousarray(s.image))
            masks.append(s.mask)
    return images, masks


def build_synthetic_set(generator: AnomalyGenerator, normals: np.ndarray, per_image: int) -> SyntheticSet:
    """``normals`` (label 0, empty masks) followed by ``per_image`` anomalies of G on each (label 1)."""
    images, masks = draw_anomalies(generator, list(normals), per_image)
    h, w = normals.shape[1:3]
    all_images = np.concatenate([normals, np.stack(images)]) if images else np.asarray(normals)
    all_masks = np.concatenate([np.zeros((len(normals), h, w), np.uint8),
                                np.stack(masks).astype(np.uint8)]) if masks else np.zeros((len(normals), h, w),
                                                                                              np.uint8)
    labels = np.concatenate([np.zeros(len(normals), int), np.ones(len(images), int)])
    return SyntheticSet(images=all_images, masks=all_masks, labels=labels)
