"""Collapse guard for contrastive fine-tuning.

SimSiam can collapse to a constant output. The guard measures the spread of the l2-normalised patch embeddings
(per-channel std over all patches of an epoch, averaged over channels, times √D: about 1 for well spread
features, 0 for a collapsed model), logs it per epoch and raises ``TrainingError`` when it falls below
``ratio`` × its value before training.
"""
from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from ..errors import TrainingError


def normalised_feature_std(features: torch.Tensor) -> float:
    """``features`` ``[N, D, h, w]`` → √D · mean per-channel std of the l2-normalised patch vectors."""
    d = features.shape[1]
    v = F.normalize(features.detach().permute(0, 2, 3, 1).reshape(-1, d).to(torch.float64), dim=1)
    return float(v.std(dim=0, unbiased=False).mean() * math.sqrt(d))


class CollapseGuard:
    def __init__(self, ratio: float = 0.2):
        self.ratio = ratio
        self.reference: float | None = None
        self.history: list[float] = []
        self._sum = 0.0
        self._n = 0

    def set_reference(self, value: float) -> None:
        self.reference = value

    def observe(self, features: torch.Tensor) -> None:
        self._sum += normalised_feature_std(features)
        self._n += 1

    def end_epoch(self, epoch: int) -> float:
        """Close the epoch: return its std and raise ``TrainingError`` if the features collapsed."""
        value = self._sum / max(1, self._n)
        self._sum, self._n = 0.0, 0
        self.history.append(value)
        if self.reference is None:
            self.reference = value
        if not math.isfinite(value) or value < self.ratio * self.reference:
            raise TrainingError(
                f"stage 2 collapsed at epoch {epoch}: the feature spread fell to {value:.4f}",
                expected=f">= {self.ratio} x {self.reference:.4f} (spread before fine-tuning)",
                got=f"{value:.4f} (per epoch: {', '.join(f'{h:.3f}' for h in self.history)})",
                fix="lower stage2.learning_rate or stage2.epochs, or keep stage2.batchnorm: frozen; "
                    "the stage restarts from its last good checkpoint")
        return value
