"""The search protocol: ``query(embeddings [n, D] float32) -> distances [n] float32`` (L2, not squared)."""
from __future__ import annotations

import numpy as np


class NearestNeighbourSearch:
    name = "base"

    def __init__(self, bank: np.ndarray):
        self.entries, self.dim = int(bank.shape[0]), int(bank.shape[1])

    def query(self, embeddings: np.ndarray) -> np.ndarray:
        """L2 distance of each row of ``embeddings`` to its nearest memory-bank entry."""
        q = np.ascontiguousarray(embeddings, dtype=np.float32)
        if q.ndim != 2 or q.shape[1] != self.dim:
            from ...errors import InputError

            raise InputError("search queries have the wrong shape", expected=f"[n, {self.dim}]", got=str(q.shape))
        return self._query_impl(q)

    def _query_impl(self, q: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        pass
