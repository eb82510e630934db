"""HNSW search with hnswlib: the index is built at export and stored in the bundle.

Build parameters (documented in docs/performance.md): ``M`` (graph degree, default 16) and
``ef_construction`` (default 200). The query-time ``ef`` is chosen at export (export/search_tuning.py)
and stored in the manifest. Queries of one frame run on ``threads`` threads (hnswlib's own pool).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..arrays import Float32Array
from .base import NearestNeighbourSearch


def build_hnsw_index(bank: np.ndarray, path: str | Path, *, M: int = 16, ef_construction: int = 200,
                     seed: int = 0, threads: int = 1) -> None:
    """Build and save an L2 index over ``bank`` (labels = row numbers). One thread gives a reproducible file."""
    import hnswlib

    bank = np.ascontiguousarray(bank, dtype=np.float32)
    index = hnswlib.Index(space="l2", dim=int(bank.shape[1]))
    index.init_index(max_elements=int(bank.shape[0]), ef_construction=ef_construction, M=M, random_seed=seed)
    index.set_num_threads(threads)
    index.add_items(bank, np.arange(len(bank)))
    index.save_index(str(path))


class HnswSearch(NearestNeighbourSearch):
    name = "hnsw"

    def __init__(self, bank: np.ndarray, index_path: str | Path, *, ef: int = 64, threads: int | None = None):
        import hnswlib

        super().__init__(bank, threads)
        self.index = hnswlib.Index(space="l2", dim=self.dim)
        try:
            self.index.load_index(str(index_path), max_elements=self.entries)
        except Exception as exc:  # noqa: BLE001 - hnswlib raises RuntimeError for a damaged file
            from ...errors import BundleError

            raise BundleError(f"hnswlib cannot load the index {index_path}", got=f"{type(exc).__name__}: {exc}",
                              fix="re-export the bundle, or use search='exact'") from None
        if self.index.get_current_count() != self.entries:
            from ...errors import BundleError

            raise BundleError("the HNSW index does not match the memory bank", expected=f"{self.entries} entries",
                              got=f"{self.index.get_current_count()} entries", fix="re-export the bundle")
        self.set_ef(ef)
        self.set_threads(threads)

    def set_ef(self, ef: int) -> None:
        self.ef = int(ef)
        self.index.set_ef(self.ef)

    def set_threads(self, threads: int | None) -> None:
        super().set_threads(threads)
        if self.threads:
            self.index.set_num_threads(self.threads)

    def _query_impl(self, q: Float32Array) -> Float32Array:
        d2: Float32Array = self.index.knn_query(q, k=1)[1]      # squared L2 [n, 1] (hnswlib is untyped)
        return np.sqrt(np.maximum(d2[:, 0], 0.0)).astype(np.float32)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "ef": self.ef}
