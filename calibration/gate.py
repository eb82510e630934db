"""The INT8 accuracy gate: INT8 against FP32 on a labelled set built from held-out normal images (never the test
labels).

Passes when

* the Spearman rank correlation of the image scores is ≥ ``min_spearman`` (0.99),
* the image AUROC on the labelled (synthetic-anomaly) set drops by at most ``max_auroc_drop`` (0.005 = 0.5 pt),
* and the patch embeddings' relative error ‖INT8 − FP32‖ / ‖FP32‖ over the set is ≤ ``max_embedding_error``.

Why the third: the synthetic anomalies are far easier than real defects (AUROC ~0.998 on magnetic tile, where
real defects give 0.92), so the first two barely move when INT8 perturbs every score a little, and a model
that lost 0.51 pt real image AUROC passed them (Spearman 0.996, drop 0). The embedding error is measured
before the nearest-neighbour search folds it away, on every patch of every gate image, and does not
saturate on easy anomalies. docs/int8_and_tensorrt.md gives the figures the bound was set from.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from tocoad_edge.errors import ExportError

from tocoad_edge.eval.metrics import auroc, spearman


MAX_EMBEDDING_ERROR = 0.08


@dataclass(frozen=True)
class GateCriteria:
    min_spearman: float = 0.99
    max_auroc_drop: float = 0.005
    max_embedding_error: float = MAX_EMBEDDING_ERROR


@dataclass(frozen=True)
class GateResult:
    spearman: float
    auroc_fp32: float
    auroc_int8: float
    auroc_drop: float
    images: int
    anomalies: int
    passed: bool
    embedding_error: float = float("nan")    # ‖INT8 − FP32‖ / ‖FP32‖ of the set's patch embeddings

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        return (f"Spearman {self.spearman:.4f}, synthetic AUROC {self.auroc_fp32:.4f} → {self.auroc_int8:.4f} "
                f"(drop {100 * self.auroc_drop:.2f} pt), embedding error {100 * self.embedding_error:.1f} % "
                f"on {self.images} images")


def evaluate_gate(fp32_scores: np.ndarray, int8_scores: np.ndarray, labels: np.ndarray, embedding_error: float,
                  criteria: GateCriteria = GateCriteria()) -> GateResult:
    """``embedding_error``: the relative error of the same images' patch embeddings (``relative_error``)."""
    fp32_scores, int8_scores, labels = (np.asarray(a).ravel() for a in (fp32_scores, int8_scores, labels))
    if not (len(fp32_scores) == len(int8_scores) == len(labels)) or len(labels) < 4:
        raise ExportError("the accuracy gate needs matching score and label arrays of at least 4 images",
                          got=f"{len(fp32_scores)} / {len(int8_scores)} / {len(labels)}")
    rho = spearman(fp32_scores, int8_scores)
    a32, a8 = auroc(labels, fp32_scores), auroc(labels, int8_scores)
    drop = float(a32 - a8) if np.isfinite(a32) and np.isfinite(a8) else 0.0
    if not np.isfinite(embedding_error) or embedding_error < 0:
        raise ExportError("the accuracy gate needs the embeddings' relative error", expected="a finite value ≥ 0",
                          got=str(embedding_error))
    passed = bool(rho >= criteria.min_spearman and drop <= criteria.max_auroc_drop + 1e-12
                  and embedding_error <= criteria.max_embedding_error)
    return GateResult(spearman=rho, auroc_fp32=a32, auroc_int8=a8, auroc_drop=drop, images=int(len(labels)),
                      anomalies=int(labels.sum()), passed=passed, embedding_error=float(embedding_error))


def relative_error(ref: np.ndarray, got: np.ndarray) -> float:
    """‖got − ref‖ / ‖ref‖ over all elements (Frobenius)."""
    return float(np.linalg.norm(got - ref) / max(np.linalg.norm(ref), 1e-12))


def gate_failure(result: GateResult, criteria: GateCriteria, tried: list[dict]) -> ExportError:
    """The error export raises when no INT8 configuration meets the gate (unless --allow-degraded)."""
    lines = [f"  {t['description']}: {t['gate']['spearman']:.4f} Spearman, AUROC drop "
             f"{100 * t['gate']['auroc_drop']:.2f} pt, embedding error {100 * t['embedding_rel_error']:.1f} %"
             for t in tried]
    return ExportError(
        "the INT8 model does not meet the accuracy gate\n" + "\n".join(lines),
        expected=f"image-score Spearman ≥ {criteria.min_spearman}, synthetic AUROC drop ≤ "
                 f"{100 * criteria.max_auroc_drop:.1f} pt and embedding error ≤ "
                 f"{100 * criteria.max_embedding_error:.0f} % against FP32",
        got=result.summary(),
        fix="export without --int8 (FP32 is always written), try --calibration-method entropy|percentile|max, "
            "use more --calibration-images, keep the boundary layers in float (--int8-float stem+embedding), "
            "or pass --allow-degraded to keep this INT8 model anyway")
