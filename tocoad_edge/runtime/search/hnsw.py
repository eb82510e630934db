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
from .split import QuerySplitter


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


def load_hnsw_index(index_path: str | Path, dim: int, entries: int) -> Any:
    """The hnswlib index at ``index_path`` (``dim`` floats per entry, ``entries`` entries); a ``BundleError`` when
    it cannot be read or does not match."""
    import hnswlib

    from ...errors import BundleError

    stored = _stored_dim(index_path)
    if stored is not None and stored != dim:
        raise BundleError(f"the HNSW index {Path(index_path).name} was built for another dimension",
                          expected=f"{dim} floats per entry", got=f"{stored} floats per entry",
                          fix="re-export the bundle")
    index = hnswlib.Index(space="l2", dim=int(dim))
    try:
        index.load_index(str(index_path), max_elements=int(entries))
    except Exception as exc:  # noqa: BLE001 - hnswlib raises RuntimeError for a damaged file
        raise BundleError(f"hnswlib cannot load the index {index_path}", got=f"{type(exc).__name__}: {exc}",
                          fix="re-export the bundle, or use search='exact'") from None
    if index.get_current_count() != entries:
        raise BundleError("the HNSW index does not match the memory bank", expected=f"{entries} entries",
                          got=f"{index.get_current_count()} entries", fix="re-export the bundle")
    return index


def _stored_dim(index_path: str | Path) -> int | None:
    """The vector dimension an hnswlib file was written for (its header: offsetLevel0, max_elements,
    cur_element_count, size_data_per_element, label_offset, offsetData as size_t; vectors sit between offsetData
    and label_offset). hnswlib itself does not check it and would read another dimension's file as garbage.
    None when the header is too short (hnswlib then refuses the file itself)."""
    with open(index_path, "rb") as f:
        header = f.read(48)
    if len(header) < 48:
        return None
    label_offset, offset_data = np.frombuffer(header, dtype="<u8")[4:6]
    return int(label_offset - offset_data) // 4


class HnswSearch(NearestNeighbourSearch):
    name = "hnsw"

    def __init__(self, bank: np.ndarray, index_path: str | Path, *, ef: int = 64, threads: int | None = None):
        super().__init__(bank, threads)
        self.index = load_hnsw_index(index_path, self.dim, self.entries)
        self.splitter = QuerySplitter(self.threads)
        self.set_ef(ef)
        self.set_threads(threads)

    def set_ef(self, ef: int) -> None:
        self.ef = int(ef)
        self.index.set_ef(self.ef)

    def set_threads(self, threads: int | None) -> None:
        super().set_threads(threads)
        if self.threads:
            self.index.set_num_threads(self.threads)
        self.splitter.set_threads(self.threads)

    def _query_impl(self, q: Float32Array) -> Float32Array:
        if self.splitter.splits(len(q)):
            # the caller walks one block, pool workers the others (hnswlib releases the GIL): no thread start-up
            # per call, and the caller is not left waiting
            return self.splitter.run(lambda block: self._walk(block, 1), q)
        return self._walk(q, -1)

    def _walk(self, q: Float32Array, threads: int) -> Float32Array:
        d2: Float32Array = self.index.knn_query(q, k=1, num_threads=threads)[1]   # squared L2 [n, 1] (untyped)
        return np.sqrt(np.maximum(d2[:, 0], 0.0)).astype(np.float32)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "ef": self.ef}

    def close(self) -> None:
        self.splitter.close()
