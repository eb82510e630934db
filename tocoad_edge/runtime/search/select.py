"""``search: auto``: measure exact and HNSW on this bank on this machine at load time; keep the faster."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from ...bundle.manifest import Manifest
from .base import NearestNeighbourSearch
from .exact import ExactSearch

log = logging.getLogger("tocoad_edge.runtime")


def _time_query(search: NearestNeighbourSearch, queries: np.ndarray, repeats: int = 3) -> float:
    search.query(queries)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        search.query(queries)
        best = min(best, time.perf_counter() - t0)
    return best


def choose_search(bank: np.ndarray, manifest: Manifest, paths: dict[str, Path],
                  threads: int | None) -> NearestNeighbourSearch:
    exact = ExactSearch(bank)
    index = manifest.memory_bank.index
    if index is None:
        log.info("search auto: exact (bundle has no HNSW index)")
        return exact
    from .hnsw import HnswSearch

    hnsw = HnswSearch(bank, paths[index.file], ef=index.ef, threads=threads)
    rng = np.random.default_rng(0)
    n_query = int(np.prod(manifest.features.grid))
    # Queries near the bank (bank rows + small noise) behave like real patch embeddings.
    rows = bank[rng.integers(0, len(bank), n_query)]
    queries = rows + rng.standard_normal(rows.shape).astype(np.float32) * float(bank.std()) * 0.05
    t_exact = _time_query(exact, queries)
    t_hnsw = _time_query(hnsw, queries)
    chosen = hnsw if t_hnsw < t_exact else exact
    log.info("search auto: %s (exact %.2f ms, hnsw %.2f ms per frame, %d entries)", chosen.name, t_exact * 1e3,
             t_hnsw * 1e3, len(bank))
    (exact if chosen is hnsw else hnsw).close()
    return chosen
