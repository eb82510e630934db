"""Exact search: BLAS GEMM + row minimum, chunked over the bank.

Work per frame is 2·n·D·M FLOP. Only float32 is used: the largest temporary is ``[n, chunk]`` float32
(784 × 8192 × 4 B = 25 MB), never ``[n, M]`` and never float64. A float16 bank is widened once at load
(``keep_float16=True`` keeps it float16 in memory and widens one chunk at a time instead: half the
memory, a little slower).
"""
from __future__ import annotations

import numpy as np

from ..threads import blas_threads
from .base import NearestNeighbourSearch


class ExactSearch(NearestNeighbourSearch):
    name = "exact"

    def __init__(self, bank: np.ndarray, *, threads: int | None = None, chunk_entries: int = 8192,
                 keep_float16: bool = False):
        super().__init__(bank, threads)
        if keep_float16 and bank.dtype == np.float16:
            self.bank = np.ascontiguousarray(bank)
        else:
            self.bank = np.ascontiguousarray(bank, dtype=np.float32)
        b32 = self.bank.astype(np.float32, copy=False)
        self.bank_sq = np.einsum("ij,ij->i", b32, b32) if self.bank.dtype == np.float32 else \
            np.concatenate([np.einsum("ij,ij->i", c, c) for c in
                            (self.bank[s:s + 65536].astype(np.float32) for s in range(0, self.entries, 65536))])
        self.chunk = int(chunk_entries)

    def _query_impl(self, q: np.ndarray) -> np.ndarray:
        best = np.full(len(q), np.inf, dtype=np.float32)
        with blas_threads(self.threads):
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
