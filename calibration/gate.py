"""The INT8 accuracy gate: INT8 image scores against FP32 image scores on a labelled set.

Passes when the Spearman rank correlation of the image scores is ≥ ``min_spearman`` (0.99) and the image AUROC
on the labelled (synthetic-anomaly) set drops by at most ``max_auroc_drop`` (0.005 = 0.5 pt).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from tocoad_edge.errors import ExportError

from tocoad_edge.eval.metrics import auroc, spearman


@dataclass(frozen=True)
class GateCriteria:
    min_spearman: float = 0.99
    max_auroc_drop: float = 0.005


@dataclass(frozen=True)
class GateResult:
    spearman: float
    auroc_fp32: float
    auroc_int8: float
    auroc_drop: float
    images: int
    anomalies: int
    passed: bool

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        return (f"Spearman {self.spearman:.4f}, synthetic AUROC {self.auroc_fp32:.4f} → {self.auroc_int8:.4f} "
                f"(drop {100 * self.auroc_drop:.2f} pt) on {self.images} images")


def evaluate_gate(fp32_scores: np.ndarray, int8_scores: np.ndarray, labels: np.ndarray,
                  criteria: GateCriteria = GateCriteria()) -> GateResult:
    fp32_scores, int8_scores, labels = (np.asarray(a).ravel() for a in (fp32_scores, int8_scores, labels))
    if not (len(fp32_scores) == len(int8_scores) == len(labels)) or len(labels) < 4:
        raise ExportError("the accuracy gate needs matching score and label arrays of at least 4 images",
                          got=f"{len(fp32_scores)} / {len(int8_scores)} / {len(labels)}")
    rho = spearman(fp32_scores, int8_scores)
    a32, a8 = auroc(labels, fp32_scores), auroc(labels, int8_scores)
    drop = float(a32 - a8) if np.isfinite(a32) and np.isfinite(a8) else 0.0
    passed = bool(rho >= criteria.min_spearman and drop <= criteria.max_auroc_drop + 1e-12)
    return GateResult(spearman=rho, auroc_fp32=a32, auroc_int8=a8, auroc_drop=drop, images=int(len(labels)),
                      anomalies=int(labels.sum()), passed=passed)


def gate_failure(result: GateResult, criteria: GateCriteria, tried: list[dict]) -> ExportError:
    """The error export raises when no INT8 configuration meets the gate (unless --allow-degraded)."""
    lines = [f"  {t['description']}: {t['gate']['spearman']:.4f} Spearman, AUROC drop "
             f"{100 * t['gate']['auroc_drop']:.2f} pt" for t in tried]
    return ExportError(
        "the INT8 model does not meet the accuracy gate\n" + "\n".join(lines),
        expected=f"image-score Spearman ≥ {criteria.min_spearman} and synthetic AUROC drop ≤ "
                 f"{100 * criteria.max_auroc_drop:.1f} pt against FP32",
        got=result.summary(),
        fix="export without --int8 (FP32 is always written), try --calibration-method entropy|percentile|max, "
            "use more --calibration-images, or pass --allow-degraded to keep this INT8 model anyway")
