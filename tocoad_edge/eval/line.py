"""What a line engineer reads off an evaluation: recall at the false-call rates a line can afford, the false-call
rate at the recall it must reach, and the counts the bundle's own thresholds give (with its review band).

Overall and per defect type; a defect type is judged against all good images (``good`` vs ``<defect>``), as the
per-defect AUROC is. Every number comes from ``metrics.py`` (the project's one copy of its metrics).
"""
from __future__ import annotations

import math

import numpy as np

from .metrics import confusion, fpr_at_recall, recall_at_fpr

FPR_LEVELS = (0.01, 0.02, 0.05, 0.10)        # "recall at FPR ≤ 1 %, 2 %, 5 %, 10 %"
RECALL_LEVELS = (0.90, 0.95, 0.99)           # "FPR at recall ≥ 90 %, 95 %, 99 %"


def _num(v: float) -> float | None:
    """JSON has no NaN: an undefined value (one class missing) is null."""
    return None if v is None or not math.isfinite(v) else float(v)


def operating_points(labels: np.ndarray, scores: np.ndarray) -> dict:
    """``recall_at_fpr`` and ``fpr_at_recall`` at the standard levels, each with the raw-score threshold that
    achieves it (keys are the levels as text: ``"0.01"``)."""
    at_fpr = {}
    for level in FPR_LEVELS:
        recall, threshold = recall_at_fpr(labels, scores, level)
        at_fpr[f"{level:g}"] = {"recall": _num(recall), "threshold": _num(threshold)}
    at_recall = {}
    for level in RECALL_LEVELS:
        fpr, threshold = fpr_at_recall(labels, scores, level)
        at_recall[f"{level:g}"] = {"fpr": _num(fpr), "threshold": _num(threshold)}
    return {"recall_at_fpr": at_fpr, "fpr_at_recall": at_recall}


def line_report(labels: np.ndarray, scores: np.ndarray, defects: list[str], image_threshold: float,
                review_threshold: float | None) -> dict:
    """``{"overall": block, "per_defect": {defect: block}}``; a block holds the image counts, the operating points
    and ``confusion`` at the bundle's thresholds (raw scores, as ``Detector`` decides)."""
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    kinds = np.asarray(defects)

    def block(sel: np.ndarray) -> dict:
        return {"good": int((~y[sel]).sum()), "defective": int(y[sel].sum()),
                **operating_points(y[sel], s[sel]),
                "at_bundle_threshold": confusion(y[sel], s[sel], image_threshold, review_threshold)}

    per_defect = {d: block((kinds == d) | ~y) for d in sorted(set(kinds[y].tolist()))}
    return {"image_threshold": float(image_threshold),
            "review_threshold": None if review_threshold is None else float(review_threshold),
            "overall": block(np.ones_like(y)), "per_defect": per_defect}
