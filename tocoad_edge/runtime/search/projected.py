"""Projected HNSW: a cheap first stage in a few dimensions, then an exact re-rank in the bank's own dimension.

The bundle stores a linear projection ``[D + 1, d]`` (rows ``0..D-1`` the matrix ``P``, the last row the bias
``b = −mean·P``; ``q_proj = q·P + b``) and an hnswlib L2 index over the projected bank. A query is projected, the
index returns ``candidates`` bank rows, and their full-dimension L2 distances to the query are computed from the
float32 bank; the smallest is the answer. Every answer is the true distance to a real bank row, so it is an
upper bound of the exact nearest-neighbour distance: ``RefinedSearch`` can still make the image score exact.

Per frame (784 queries) the cost is hnswlib's walk in ``d`` dimensions plus a gather of ``784 × k`` bank rows
and one mat-vec over them; the gather and the ranking run on row blocks of ``ROWS_PER_BLOCK`` queries so
the gathered rows (``block × k × D`` float32) stay in cache. With ``threads`` > 1 the frame's rows are split over
``QuerySplitter`` threads (the caller and ``threads − 1`` workers), each walking and re-ranking its own rows
(numpy and hnswlib's ``knn_query`` release the GIL).
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from ..arrays import Float32Array
from ..threads import blas_threads
from .base import NearestNeighbourSearch
from .hnsw import build_hnsw_index, load_hnsw_index
from .split import QuerySplitter

# 64 queries × 16 candidates × 384 dims × 4 B = 1.5 MB: the mat-vec reads the gathered block while it is still in
# cache. Smaller blocks mean more numpy calls per frame, and each call is a GIL hand-off when two threads re-rank
# at once. np.take into a reused buffer beats fancy indexing, but only with mode="clip": with the default
# mode="raise" numpy gathers into a temporary and copies it into ``out`` (its documented buffering), which made
# the gather about 2.5 times slower.
ROWS_PER_BLOCK = 64


def check_projection(projection: np.ndarray, dim: int, where: str = "the search projection") -> Float32Array:
    """``projection`` as float32 ``[dim + 1, d]`` with 1 <= d <= dim and finite values; a ``BundleError`` else."""
    from ...errors import BundleError

    p = np.asarray(projection)
    if p.ndim != 2 or p.shape[0] != dim + 1 or not 1 <= p.shape[1] <= dim or p.dtype != np.float32:
        raise BundleError(f"{where} has the wrong shape or dtype",
                          expected=f"float32 [{dim + 1}, d] with 1 <= d <= {dim} (matrix rows, then the bias)",
                          got=f"{p.dtype} {list(p.shape)}", fix="re-export the bundle")
    if not np.isfinite(p).all():
        raise BundleError(f"{where} holds NaN or inf", expected="finite values", got="non-finite values",
                          fix="re-export the bundle")
    return np.ascontiguousarray(p)


def project(x: np.ndarray, projection: Float32Array) -> Float32Array:
    """``x [n, D]`` → ``x·P + b`` float32 ``[n, d]``: the one formula the index is built with and queried with."""
    out: Float32Array = np.ascontiguousarray(x, dtype=np.float32) @ projection[:-1]
    out += projection[-1]
    return out


def build_projected_index(bank: np.ndarray, projection: np.ndarray, path: str | Path, *, M: int = 16,
                          ef_construction: int = 200, seed: int = 0) -> None:
    """An hnswlib L2 index over the projected ``bank`` (labels = bank row numbers), saved to ``path``."""
    p = check_projection(projection, int(bank.shape[1]))
    build_hnsw_index(project(bank, p), path, M=M, ef_construction=ef_construction, seed=seed)


class ProjectedSearch(NearestNeighbourSearch):
    name = "projected"

    def __init__(self, bank: np.ndarray, index_path: str | Path, projection: np.ndarray, *, ef: int = 32,
                 candidates: int = 8, threads: int | None = None):
        super().__init__(bank, threads)
        from ...errors import InputError

        self.bank = np.ascontiguousarray(bank, dtype=np.float32)
        self.norms = np.einsum("ij,ij->i", self.bank, self.bank)     # |b|², ranks the candidates
        self._buffers = threading.local()                               # per-thread gather buffers
        self.projection = check_projection(projection, self.dim)
        self.dims = int(self.projection.shape[1])
        if not 1 <= int(candidates) <= self.entries:
            raise InputError("projected search candidates out of range", expected=f"1 .. {self.entries}",
                             got=str(candidates), fix="re-export the bundle (search candidates in the manifest)")
        self.candidates = int(candidates)
        self.index = load_hnsw_index(index_path, self.dims, self.entries)
        self.splitter = QuerySplitter(self.threads)
        self.set_ef(ef)
        self.set_threads(threads)

    def set_ef(self, ef: int) -> None:
        # hnswlib needs ef >= k to return k neighbours
        self.ef = max(int(ef), self.candidates)
        self.index.set_ef(self.ef)

    def set_threads(self, threads: int | None) -> None:
        super().set_threads(threads)
        if self.threads:
            self.index.set_num_threads(self.threads)
        self.splitter.set_threads(self.threads)

    def candidate_rows(self, q: Float32Array, threads: int = -1) -> np.ndarray:
        """Bank row numbers of each query's ``candidates`` nearest neighbours in the projected space, ``[n, k]``
        (``threads`` -1: the index's own pool)."""
        labels: np.ndarray = self.index.knn_query(project(q, self.projection), k=self.candidates,
                                                  num_threads=threads)[0]
        return labels

    def _query_impl(self, q: Float32Array) -> Float32Array:
        if self.splitter.splits(len(q)):
            # each thread walks its own rows (hnswlib releases the GIL) and re-ranks them at once, while they are
            # still in its cache: no thread waits for the whole frame's walk before re-ranking
            return self.splitter.run(lambda block: self._rerank(block, self.candidate_rows(block, 1)), q)
        with blas_threads(1):       # the projection GEMM is small; a multi-threaded OpenBLAS call leaves workers
            return self._rerank(q, self.candidate_rows(q))   # busy-waiting on the core the next stage needs

    def _rerank(self, q: Float32Array, labels: np.ndarray) -> Float32Array:
        """Smallest full-dimension L2 distance from each query to its candidate rows. The candidates are ranked by
        ``|b|² − 2q·b`` (one batched mat-vec over the gathered rows, no difference array), and the answer is the
        winner's distance by differences: the distance to a real bank row to float32 rounding, so it can only be
        above the exact nearest-neighbour distance, never below it by cancellation. Where two candidates tie
        within rounding the ranking may pick either; the answer is still a true distance to that row.

        The loop over row blocks does only the gather, the mat-vec and the sum; the ranking, the winners and their
        distances are whole-array calls after it. Each numpy call retakes the GIL, and with two threads re-ranking
        at once every extra small call in the loop is a hand-off between them."""
        n_rows, k = labels.shape
        rank = np.take(self.norms, labels)                                       # |b|², [n, k]
        minus_2q = q * np.float32(-2.0)                                          # exact: a power of two
        gathered, products = self._buffers_for_thread()
        for s in range(0, n_rows, ROWS_PER_BLOCK):
            e = min(s + ROWS_PER_BLOCK, n_rows)
            block = gathered[:e - s]
            # "clip" changes no value: the labels are bank row numbers, and the take of the norms above has
            # already checked them; it only skips numpy's buffered copy
            np.take(self.bank, labels[s:e], axis=0, out=block, mode="clip")     # [n, k, D]
            np.matmul(block, minus_2q[s:e, :, None], out=products[:e - s])      # −2 q·b, [n, k, 1]
            rank[s:e] += products[:e - s, :, 0]
        winners = labels[np.arange(n_rows), rank.argmin(1)]
        diff = np.take(self.bank, winners, axis=0)
        diff -= q
        out: Float32Array = np.einsum("ij,ij->i", diff, diff)
        return np.sqrt(out, out=out)

    def _buffers_for_thread(self) -> tuple[Float32Array, Float32Array]:
        """This thread's gather buffer ``[ROWS_PER_BLOCK, candidates, D]`` and product buffer, kept between frames:
        a fresh 1.5 MB array per call is a fresh mmap, and its page faults cost as much as the gather itself."""
        buffers: tuple[Float32Array, Float32Array] | None = getattr(self._buffers, "rerank", None)
        if buffers is None:
            buffers = self._buffers.rerank = (
                np.empty((ROWS_PER_BLOCK, self.candidates, self.dim), dtype=np.float32),
                np.empty((ROWS_PER_BLOCK, self.candidates, 1), dtype=np.float32))
        return buffers

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "ef": self.ef, "projected_dims": self.dims, "candidates": self.candidates}

    def close(self) -> None:
        self.splitter.close()
