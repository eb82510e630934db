"""Exact search: BLAS GEMM + row minimum, chunked so no [M × queries] float64 temporary is made."""
from __future__ import annotations

import numpy as np

from .base import NearestNeighbourSearch


class ExactSearch(NearestNeighbourSearch):
    name = "exact"

    def __init__(self, bank: np.ndarray, chunk_entries: int = 16384):
        super().__init__(bank)
        self.bank = np.ascontiguousarray(bank, dtype=np.float32)
        self.bank_sq = np.einsum("ij,ij->i", self.bank, self.bank)
        self.chunk = int(chunk_entries)

    def _query_impl(self, q: np.ndarray) -> np.ndarray:
        best = np.full(len(q), np.inf, dtype=np.float32)
        for s in range(0, self.entries, self.chunk):
            b = self.bank[s:s + self.chunk]
            d = q @ b.T                                   # float32 [n, chunk]
            d *= -2.0
            d += self.bank_sq[None, s:s + self.chunk]
            np.minimum(best, d.min(1), out=best)
        best += np.einsum("ij,ij->i", q, q)
        np.maximum(best, 0.0, out=best)
        return np.sqrt(best)
