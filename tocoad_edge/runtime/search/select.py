"""``search: auto``: measure the searches whose image score is exact on this bank on this machine at load time, and
keep the fastest: exact, graph (exact search as an ONNX model, where onnxruntime is installed) and refined (the
bundle's index draws the map, ``bundle_index.py``; the patches that may carry the image score are re-checked
exactly).

The index alone (``search: hnsw``) is not a candidate: its image scores are upper bounds of the exact ones, by
several per cent where the index misses a patch's nearest row, while the thresholds are set on exact scores
(``tocoad-threshold`` and the trainer score exactly). Chosen for its speed, it would move the line's decisions;
with INT8 embeddings, whose tuned ef is the map's, it is always the fastest. ``search: hnsw`` still gives it to
whoever asks, with a threshold set on its scores (``tocoad-threshold --search hnsw``).

The choice, the timings and the thread count are logged and kept in ``search.selection`` (reported by
``Detector.describe()`` and ``tocoad-bench``).
"""
from __future__ import annotations

import functools
import logging
import time
from pathlib import Path
from typing import Callable

import numpy as np

from ...bundle.manifest import Manifest
from .base import NearestNeighbourSearch
from .exact import ExactSearch

log = logging.getLogger("tocoad_edge.runtime")


def _time_interleaved(frames: dict[str, Callable[[], object]], repeats: int = 5) -> dict[str, float]:
    """Median time of each callable over ``repeats`` rounds after one warm-up each. The candidates take turns
    within every round, so a burst of load from a neighbour hits them alike instead of one of them."""
    for fn in frames.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in frames}
    for _ in range(repeats):
        for k, fn in frames.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) for k, v in times.items()}


def probe_queries(bank: np.ndarray, n_query: int, seed: int = 0) -> np.ndarray:
    """Queries near the bank (bank rows + small noise), which behave like real patch embeddings."""
    rng = np.random.default_rng(seed)
    rows = bank[rng.integers(0, len(bank), n_query)].astype(np.float32)
    return rows + rng.standard_normal(rows.shape).astype(np.float32) * float(rows.std()) * 0.05


def choose_search(bank: np.ndarray, manifest: Manifest, paths: dict[str, Path],
                  threads: int | None, refined_ef: int | None = None) -> NearestNeighbourSearch:
    """``refined_ef``: the ef of the refined search's map (the bundle's index is not timed without it)."""
    exact = ExactSearch(bank, threads=threads)
    map_ef = int(refined_ef or 0)
    index = manifest.memory_bank.index if map_ef > 0 else None
    n_query = int(np.prod(manifest.features.grid))
    candidates: dict[str, NearestNeighbourSearch] = {"exact": exact}
    graph = _graph_search(bank, threads, n_query)
    if graph is not None:
        candidates["graph"] = graph
    if index is None and graph is None:
        exact.selection = {"chosen": "exact", "reason": "no other search with an exact image score to time"}
        log.info("search auto: exact (no other search with an exact image score to time)")
        return exact
    queries = probe_queries(bank, n_query)
    frames: dict[str, Callable[[], object]] = {k: functools.partial(s.query, queries) for k, s in candidates.items()}
    if index is not None:
        from .bundle_index import open_index_search
        from .refined import bounded_refined_search

        refined = bounded_refined_search(open_index_search(bank, index, paths, ef=map_ef, threads=threads,
                                                           grid=manifest.features.grid), bank, threads)
        candidates["refined"] = refined
        # one frame through the refined path: HNSW distances, then the exact re-check of the image score
        frames["refined"] = lambda: refined.max_distance(queries, refined.query(queries))
    seconds = _time_interleaved(frames)
    timed = {k: (candidates[k], seconds[k]) for k in candidates}
    name = min(timed, key=lambda k: timed[k][1])
    chosen = timed[name][0]
    chosen.selection = {"chosen": name, **{f"{k}_ms": round(t * 1e3, 3) for k, (_, t) in timed.items()},
                        **({"refined_ef": map_ef} if index is not None else {}),
                        "threads": threads, "entries": int(len(bank))}
    log.info("search auto: %s (%s per frame%s, %d entries, threads=%s)", name,
             ", ".join(f"{k} {t * 1e3:.2f} ms" for k, (_, t) in timed.items()),
             f"; refined map ef={map_ef}" if index is not None else "", len(bank), threads)
    for srch, _ in timed.values():
        if srch is not chosen:
            srch.close()
    return chosen


def _graph_search(bank: np.ndarray, threads: int | None, n_query: int) -> NearestNeighbourSearch | None:
    """The graph candidate, or None where onnxruntime is missing (auto then times the others)."""
    from ...errors import BackendUnavailableError
    from .graph import GraphSearch

    try:
        return GraphSearch(bank, threads=threads, expected_queries=n_query)
    except BackendUnavailableError as exc:
        log.info("search auto: graph not timed (%s)", exc)
        return None
