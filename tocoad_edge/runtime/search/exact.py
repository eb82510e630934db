"""Exact search: BLAS GEMM + row minimum, chunked over the bank.

Work per frame is 2·n·D·M FLOP. Only float32 is used: the largest temporary is ``[n, chunk]`` float32
(784 × 2048 × 4 B = 6.4 MB), never ``[n, M]`` and never float64. The bank is stored augmented,
``[b, |b|², 0…]`` (padded to a multiple of 16 columns), and the queries as ``[−2q, 1, 0…]``: one GEMM then gives
``|b|² − 2 q·b`` directly and the only pass over its output is the row minimum (the plain form made three
passes over a 25 MB temporary: 84 → 71 ms per 784-patch frame on a 26k × 384 bank, one thread).
A float16 bank is widened once at load (``keep_float16=True`` keeps it float16 in memory and widens one chunk
at a time with the plain form instead: half the memory, slower).
With ``threads`` > 1 a frame's queries are split across threads, one-thread BLAS each (``split.py``).
"""
from __future__ import annotations

import numpy as np

from ..arrays import Float32Array
from ..threads import blas_threads
from .base import NearestNeighbourSearch
from .split import QuerySplitter


class ExactSearch(NearestNeighbourSearch):
    name = "exact"

    def __init__(self, bank: np.ndarray, *, threads: int | None = None, chunk_entries: int = 2048,
                 keep_float16: bool = False):
        super().__init__(bank, threads)
        self.splitter = QuerySplitter(self.threads)
        self.chunk = int(chunk_entries)
        self.augmented: Float32Array | None = None
        if keep_float16 and bank.dtype == np.float16:
            self.bank = np.ascontiguousarray(bank)
            self.bank_sq = np.concatenate([np.einsum("ij,ij->i", c, c) for c in (
                self.bank[s:s + 65536].astype(np.float32) for s in range(0, self.entries, 65536))])
            return
        width = -(-(self.dim + 1) // 16) * 16
        self.augmented = np.zeros((self.entries, width), dtype=np.float32)
        self.augmented[:, :self.dim] = bank
        self.bank = self.augmented[:, :self.dim]            # a view: the bank is stored once
        self.bank_sq = np.einsum("ij,ij->i", self.bank, self.bank)
        self.augmented[:, self.dim] = self.bank_sq

    def set_threads(self, threads: int | None) -> None:
        super().set_threads(threads)
        self.splitter.set_threads(self.threads)

    def _query_impl(self, q: Float32Array) -> Float32Array:
        if self.splitter.splits(len(q)):
            return self.splitter.run(lambda block: self._query_block(block, None), q)   # BLAS already 1
        # Too few rows to split (a refined search's re-checks with an ExactSearch): one BLAS thread. The GEMM is
        # memory-bound at that size, and OpenBLAS's workers busy-wait after a multi-threaded call, holding the
        # second core that the next frame's backbone (ONNX Runtime) and search threads need.
        return self._query_block(q, 1)

    def _query_block(self, q: Float32Array, threads: int | None) -> Float32Array:
        if self.augmented is None:
            return self._query_plain(q, threads)
        qa = np.zeros((len(q), self.augmented.shape[1]), dtype=np.float32)
        np.multiply(q, np.float32(-2.0), out=qa[:, :self.dim])
        qa[:, self.dim] = 1.0
        best = np.full(len(q), np.inf, dtype=np.float32)
        with blas_threads(threads):
            for s in range(0, self.entries, self.chunk):
                d = qa @ self.augmented[s:s + self.chunk].T      # |b|² − 2 q·b, float32 [n, chunk]
                np.minimum(best, d.min(1), out=best)
        best += np.einsum("ij,ij->i", q, q)
        np.maximum(best, 0.0, out=best)
        return np.sqrt(best)

    def _query_plain(self, q: Float32Array, threads: int | None) -> Float32Array:
        best = np.full(len(q), np.inf, dtype=np.float32)
        with blas_threads(threads):
            for s in range(0, self.entries, self.chunk):
                b = self.bank[s:s + self.chunk]
                if b.dtype != np.float32:
                    b = b.astype(np.float32)
                d = q @ b.T                                   # float32 [n, chunk]
                d *= -2.0
                d += self.bank_sq[None, s:s + self.chunk]
                np.minimum(best, d.min(1), out=best)
        best += np.einsum("ij,ij->i", q, q)
        np.maximum(best, 0.0, out=best)
        return np.sqrt(best)

    def close(self) -> None:
        self.splitter.close()
