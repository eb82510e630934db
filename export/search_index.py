"""The bundle's search index: hnswlib over the bank itself (``full``) or over a PCA projection of it
(``projected``, the default: ``runtime/search/projected.py``) with the projection file beside it.

Default dims and candidates (the defaults of ``ExportOptions``; ``benchmarks/projected_sweep.py``, table in
docs/performance.md), measured on magnetic tile (26k × 384 bank, 24 test frames, against exact search): the rule is
the bundle budget first, then the map error at the cheapest ef. hnswlib stores per entry 4·(2M + 1) link bytes,
4·d vector bytes and an 8-byte label; at M 16 the index is 7.2 / 8.9 / 10.6 MB for d = 32 / 48 / 64, and only
d = 32 keeps the default INT8 bundle (3.8 + 1.1 MB models, 20.1 MB float16 bank) under 33 MB. At d = 32, 16
candidates at ef 16 give a mean map error of 0.29 % (recall@1 0.91) against 0.54 % (0.84) for 8 candidates,
and cost less than 8 candidates at ef 32 (0.43 %). Lending (``lend``: each patch's best rows re-ranked for its
grid neighbours too) keeps the map error of 8 candidates walked at ef 8 near that of 16, for about two thirds of
the walk (``benchmarks/screen_lending.py``, all four sets): 8 candidates and 2 lent are the defaults. The query
ef is then tuned per precision like the full index's, from ef = candidates up (``search_tuning.py``;
``search="refined"`` takes the smallest ef within 0.5 % mean map error)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tocoad_edge.bundle.manifest import INDEX_NAME, PROJECTION_NAME, IndexSpec
from tocoad_edge.runtime.search.hnsw import build_hnsw_index
from tocoad_edge.runtime.search.projected import build_projected_index
from tocoad_edge.train.projection import fit_projection



def pca_search_projection(bank: np.ndarray, dims: int, seed: int = 0) -> np.ndarray:
    """float32 ``[D + 1, dims]``: the bank's first ``dims`` principal axes, then the bias ``−mean·P`` (the
    projected bank is centred, which keeps hnswlib's float32 distances well conditioned)."""
    matrix = fit_projection("pca", bank, int(dims), seed)
    if matrix is None:                  # dims >= D: a projection would not save anything
        raise ValueError(f"search dims {dims} must be below the bank's dimension {bank.shape[1]}")
    bias = -(bank.mean(0, dtype=np.float64) @ matrix.astype(np.float64))
    return np.ascontiguousarray(np.vstack([matrix, bias[None, :]]), dtype=np.float32)


def write_search_index(staging: Path, bank: np.ndarray, *, kind: str, dims: int, candidates: int, M: int,
                       ef_construction: int, seed: int, lend: int = 0) -> IndexSpec:
    """Write ``index.hnsw`` (and for ``projected`` ``search_projection.npy``) over ``bank`` exactly as the runtime
    loads it (float32); returns the manifest's index spec with a placeholder ef (tuned afterwards)."""
    if kind == "full" or dims >= bank.shape[1]:
        build_hnsw_index(bank, staging / INDEX_NAME, M=M, ef_construction=ef_construction, seed=seed)
        return IndexSpec(file=INDEX_NAME, kind="hnsw", M=M, ef_construction=ef_construction, seed=seed)
    projection = pca_search_projection(bank, dims, seed)
    with open(staging / PROJECTION_NAME, "wb") as f:
        np.save(f, projection, allow_pickle=False)
    build_projected_index(bank, projection, staging / INDEX_NAME, M=M, ef_construction=ef_construction, seed=seed)
    return IndexSpec(file=INDEX_NAME, kind="projected_hnsw", M=M, ef_construction=ef_construction, seed=seed,
                     projection=PROJECTION_NAME, dims=int(dims), candidates=int(candidates), lend=int(lend))
