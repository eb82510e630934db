"""Small statistics for the benchmark: percentiles, AUROC, peak RSS."""
from __future__ import annotations

import resource
import sys

import numpy as np


def summary(values_ms) -> dict:
    v = np.asarray(list(values_ms), dtype=np.float64)
    if v.size == 0:
        return {"p50_ms": None, "p99_ms": None, "mean_ms": None, "n": 0}
    return {"p50_ms": round(float(np.percentile(v, 50)), 3), "p99_ms": round(float(np.percentile(v, 99)), 3),
            "mean_ms": round(float(v.mean()), 3), "n": int(v.size)}


def auroc(labels, scores) -> float | None:
    """Image AUROC (Mann-Whitney U with average ranks for ties); None without both classes."""
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (MB)."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kb / (1024.0 * 1024.0) if sys.platform == "darwin" else kb / 1024.0, 1)
