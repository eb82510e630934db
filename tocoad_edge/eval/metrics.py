"""The project's one copy of its metrics, in numpy: AUROC (rank based, ties averaged), Spearman, ROC curve, F1-max,
AUPRO. Every function takes ``(labels, scores)`` in that order.

AUPRO follows Bergmann et al. (MVTec AD): per connected ground-truth region overlap, averaged over regions,
integrated over the false-positive rate on normal pixels from 0 to ``max_fpr`` (0.3) and divided by it.
"""
from __future__ import annotations

import cv2
import numpy as np


def _check(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels).ravel().astype(bool)
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in size: {y.shape} vs {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError("scores hold NaN or inf")
    return y, s


def rankdata(x: np.ndarray) -> np.ndarray:
    """Average ranks (1-based); tied values share their mean rank."""
    x = np.asarray(x, dtype=np.float64).ravel()
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.arange(1, len(x) + 1)
    uniq, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
    if len(uniq) < len(x):
        ranks = np.bincount(inv, weights=ranks)[inv] / counts[inv]
    return ranks


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann–Whitney U with average ranks for ties). NaN if one class is missing."""
    y, s = _check(labels, scores)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    u = rankdata(s)[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two score vectors (1.0 when either is constant: nothing to disorder)."""
    ra, rb = rankdata(a), rankdata(b)
    if ra.shape != rb.shape:
        raise ValueError(f"score vectors differ in size: {ra.shape} vs {rb.shape}")
    ra -= ra.mean()
    rb -= rb.mean()
    den = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / den) if den > 0 else 1.0


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds), thresholds descending; starts at (0, 0)."""
    y, s = _check(labels, scores)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    distinct = np.flatnonzero(np.diff(s)) if len(s) > 1 else np.array([], dtype=int)
    idx = np.concatenate((distinct, [len(s) - 1]))
    tps = np.cumsum(y)[idx]
    fps = (idx + 1) - tps
    p, n = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    return (np.concatenate(([0.0], fps / n)), np.concatenate(([0.0], tps / p)),
            np.concatenate(([np.inf], s[idx])))


def f1_max(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """Best F1 over thresholds, and that threshold (predict anomalous when score >= threshold)."""
    y, s = _check(labels, scores)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    tp = np.cumsum(y)
    k = np.arange(1, len(s) + 1)
    precision = tp / k
    recall = tp / max(int(y.sum()), 1)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    last_of_tie = np.concatenate((np.diff(s) != 0, [True]))
    f1 = np.where(last_of_tie, f1, -1)
    i = int(np.argmax(f1))
    return float(f1[i]), float(s[i])


def aupro(masks: list[np.ndarray], maps: list[np.ndarray], max_fpr: float = 0.3, steps: int = 300) -> float:
    """Normalised area under the per-region-overlap curve up to ``max_fpr``."""
    normal_scores, regions = [], []
    for m, a in zip(masks, maps):
        m = np.asarray(m, dtype=bool)
        a = np.asarray(a, dtype=np.float32)
        if m.shape != a.shape:
            raise ValueError(f"mask and map differ in shape: {m.shape} vs {a.shape}")
        normal_scores.append(a[~m])
        if m.any():
            n, lab = cv2.connectedComponents(m.astype(np.uint8), connectivity=8)
            for r in range(1, n):
                regions.append(np.sort(a[lab == r]))
    if not regions:
        return float("nan")
    normal = np.sort(np.concatenate(normal_scores))
    if normal.size == 0:
        return float("nan")
    fprs = np.linspace(0.0, max_fpr, steps)
    # threshold for each FPR: the score above which a fraction fpr of normal pixels lies
    q = np.clip(1.0 - fprs, 0.0, 1.0)
    thresholds = np.quantile(normal, q)
    actual_fpr = 1.0 - np.searchsorted(normal, thresholds, side="right") / normal.size
    pro = np.zeros(steps)
    for reg in regions:
        pro += 1.0 - np.searchsorted(reg, thresholds, side="right") / reg.size
    pro /= len(regions)
    order = np.argsort(actual_fpr)
    x, yv = actual_fpr[order], pro[order]
    x = np.clip(x, 0, max_fpr)
    return float(np.trapezoid(yv, x) / max_fpr) if hasattr(np, "trapezoid") else float(np.trapz(yv, x) / max_fpr)


def pixel_auroc(masks: list[np.ndarray], maps: list[np.ndarray]) -> float:
    y = np.concatenate([np.asarray(m, dtype=bool).ravel() for m in masks])
    s = np.concatenate([np.asarray(a, dtype=np.float32).ravel() for a in maps])
    return auroc(y, s)


# --- metrics a line runs on: escapes and false calls at a threshold -------------------------------------------
# A part is called NG when its score is strictly above the threshold (as ``Detector`` decides).

def _split(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y, s = _check(labels, scores)
    return np.sort(s[~y])[::-1], np.sort(s[y])[::-1]        # good, defective; each descending


def recall_at_fpr(labels: np.ndarray, scores: np.ndarray, max_fpr: float) -> tuple[float, float]:
    """The highest recall whose false-call rate on the good parts is ≤ ``max_fpr``, and its threshold.

    The threshold is a good part's score: at most ``floor(max_fpr · n_good)`` good parts score above it.
    NaN without both classes."""
    good, bad = _split(labels, scores)
    if not good.size or not bad.size:
        return float("nan"), float("nan")
    k = int(np.floor(max_fpr * good.size + 1e-9))          # good parts allowed above the threshold
    threshold = float(good[k]) if k < good.size else float(np.nextafter(good[-1], -np.inf))
    return float((bad > threshold).mean()), threshold


def fpr_at_recall(labels: np.ndarray, scores: np.ndarray, min_recall: float) -> tuple[float, float]:
    """The lowest false-call rate whose recall is ≥ ``min_recall``, and its threshold (just below the score of the
    defective part that must still be caught). NaN without both classes."""
    good, bad = _split(labels, scores)
    if not good.size or not bad.size:
        return float("nan"), float("nan")
    m = max(1, int(np.ceil(min_recall * bad.size - 1e-9)))  # defective parts that must score above it
    threshold = float(np.nextafter(bad[m - 1], -np.inf))
    return float((good > threshold).mean()), threshold


def confusion(labels: np.ndarray, scores: np.ndarray, ng_threshold: float,
              review_threshold: float | None = None) -> dict[str, int]:
    """Counts at a threshold (and a review band below it): NG above ``ng_threshold``, REVIEW above
    ``review_threshold`` up to it, OK at or below. Escapes are defective parts called OK; false calls are good
    parts called NG (good parts sent to REVIEW are counted apart)."""
    y, s = _check(labels, scores)
    ng = s > ng_threshold
    review = (s > review_threshold) & ~ng if review_threshold is not None else np.zeros_like(ng)
    ok = ~ng & ~review
    return {"defective_ng": int((y & ng).sum()), "defective_review": int((y & review).sum()),
            "escapes": int((y & ok).sum()), "false_calls": int((~y & ng).sum()),
            "good_review": int((~y & review).sum()), "good_ok": int((~y & ok).sum())}
