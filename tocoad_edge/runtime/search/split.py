"""One frame's queries split across threads: each thread searches a contiguous block of rows with a one-thread
BLAS. OpenBLAS's own threading of one GEMM made two threads *slower* than one on a loaded 2-core machine
(26k × 384 bank, 784 queries: 742 ms → 951 ms at load 10), its workers spin-waiting for the slowest; two
independent one-thread GEMMs over half the rows each do not wait on each other (742 → 631 ms, same run).
numpy releases the GIL inside the GEMM, so Python threads are enough."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

from ..arrays import Float32Array
from ..threads import blas_threads

# Below this many rows per thread a block is not worth a thread hand-off (the refined search's re-check blocks).
MIN_ROWS_PER_THREAD = 64


class QuerySplitter:
    """A small pool owned by one search; idle workers block on a queue (no spinning)."""

    def __init__(self, threads: int | None):
        self.threads = int(threads) if threads else 1
        self._pool: ThreadPoolExecutor | None = None

    def splits(self, rows: int) -> bool:
        return self.threads > 1 and rows >= self.threads * MIN_ROWS_PER_THREAD

    def run(self, fn: Callable[[Float32Array], Float32Array], q: Float32Array) -> Float32Array:
        """``fn`` over row blocks of ``q`` on ``threads`` threads, BLAS at one thread; results concatenated."""
        return self.run_rows(lambda start, stop: fn(q[start:stop]), len(q))

    def run_rows(self, fn: Callable[[int, int], Float32Array], rows: int) -> Float32Array:
        """``fn(start, stop)`` over ``threads`` contiguous row ranges of ``rows`` (as ``np.array_split`` cuts them),
        BLAS at one thread; results concatenated (for work whose inputs are several arrays sliced alike)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="tocoad-search")
        base, extra = divmod(rows, self.threads)
        bounds = np.cumsum([0] + [base + 1] * extra + [base] * (self.threads - extra)).tolist()
        with blas_threads(1):
            parts = list(self._pool.map(fn, bounds[:-1], bounds[1:]))
        return np.concatenate(parts)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
