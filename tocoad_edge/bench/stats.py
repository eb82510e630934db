"""Small statistics for the benchmark: percentiles and peak RSS (AUROC: ``eval.metrics.auroc``)."""
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


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (MB)."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kb / (1024.0 * 1024.0) if sys.platform == "darwin" else kb / 1024.0, 1)
