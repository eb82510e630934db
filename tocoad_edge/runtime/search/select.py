"""``search: auto``: measure exact and HNSW on this bank on this machine at load time; keep the faster.

The choice, both timings and the thread count are logged and kept in ``search.selection`` (reported by
``Detector.describe()`` and ``tocoad-bench``).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from ...bundle.manifest import Manifest
from .base import NearestNeighbourSearch
from .exact import ExactSearch

log = logging.getLogger("tocoad_edge.runtime")


def _time_query(search: NearestNeighbourSearch, queries: np.ndarray, repeats: int = 5) -> float:
    """Median of ``repeats`` timed queries after one warm-up (the median resists a busy neighbour)."""
    search.query(queries)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        search.query(queries)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def probe_queries(bank: np.ndarray, n_query: int, seed: int = 0) -> np.ndarray:
    """Queries near the bank (bank rows + small noise), which behave like real patch embeddings."""
    rng = np.random.default_rng(seed)
    rows = bank[rng.integers(0, len(bank), n_query)].astype(np.float32)
    return rows + rng.standard_normal(rows.shape).astype(np.float32) * float(rows.std()) * 0.05


def choose_search(bank: np.ndarray, manifest: Manifest, paths: dict[str, Path],
                  threads: int | None, ef: int | None = None) -> NearestNeighbourSearch:
    """``ef``: the query ef to time HNSW at (default: the index's stored ef)."""
    exact = ExactSearch(bank, threads=threads)
    index = manifest.memory_bank.index
    if index is None:
        exact.selection = {"chosen": "exact", "reason": "bundle has no HNSW index"}
        log.info("search auto: exact (bundle has no HNSW index)")
        return exact
    from .hnsw import HnswSearch

    ef = int(ef or index.ef)
    hnsw = HnswSearch(bank, paths[index.file], ef=ef, threads=threads)
    queries = probe_queries(bank, int(np.prod(manifest.features.grid)))
    t_exact = _time_query(exact, queries)
    t_hnsw = _time_query(hnsw, queries)
    chosen = hnsw if t_hnsw < t_exact else exact
    chosen.selection = {"chosen": chosen.name, "exact_ms": round(t_exact * 1e3, 3), "hnsw_ms": round(t_hnsw * 1e3, 3),
                        "ef": ef, "threads": threads, "entries": int(len(bank))}
    log.info("search auto: %s (exact %.2f ms, hnsw %.2f ms per frame at ef=%d, %d entries, threads=%s)",
             chosen.name, t_exact * 1e3, t_hnsw * 1e3, ef, len(bank), threads)
    (exact if chosen is hnsw else hnsw).close()
    return chosen
