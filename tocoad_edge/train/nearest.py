"""Exact nearest-neighbour distances used at training time (threshold calibration, parity)."""
from __future__ import annotations

import numpy as np


def nearest_distances(queries: np.ndarray, bank: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """L2 distance of each query row to its nearest bank row (float32 GEMM, chunked)."""
    q = np.ascontiguousarray(queries, dtype=np.float32)
    b = np.ascontiguousarray(bank, dtype=np.float32)
    b_sq = (b * b).sum(1)
    out = np.empty(len(q), dtype=np.float32)
    for s in range(0, len(q), chunk):
        qs = q[s:s + chunk]
        d = b_sq[None, :] - 2.0 * (qs @ b.T)
        m = d.min(1) + (qs * qs).sum(1)
        out[s:s + chunk] = np.sqrt(np.maximum(m, 0.0))
    return out
