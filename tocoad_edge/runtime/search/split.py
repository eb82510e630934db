"""One frame's queries split across threads: each thread searches a contiguous block of rows with a one-thread
BLAS. OpenBLAS's own threading of one GEMM made two threads *slower* than one on a loaded 2-core machine
(26k × 384 bank, 784 queries: 742 ms → 951 ms at load 10), its workers spin-waiting for the slowest; two
independent one-thread GEMMs over half the rows each do not wait on each other (742 → 631 ms, same run).
numpy and hnswlib release the GIL, so Python threads are enough.

The calling thread searches the first block itself and the pool (``threads − 1`` workers) the others: on a
2-core VM every hand-off to a sleeping worker costs its wake-up, and a frame split over two pool workers while
the caller waited was slower than one split between the caller and one worker (walk + re-rank of the
projected search, 784 queries: 13.0 vs 10.0 ms, interleaved)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, wait
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

    def set_threads(self, threads: int | None) -> None:
        """Resize for a search whose thread count changed (the pool is rebuilt on its next use)."""
        self.close()
        self.threads = int(threads) if threads else 1

    def splits(self, rows: int) -> bool:
        return self.threads > 1 and rows >= self.threads * MIN_ROWS_PER_THREAD

    def run(self, fn: Callable[[Float32Array], Float32Array], q: Float32Array) -> Float32Array:
        """``fn`` over row blocks of ``q`` on ``threads`` threads, BLAS at one thread; results concatenated."""
        return self.run_rows(lambda start, stop: fn(q[start:stop]), len(q))

    def run_rows(self, fn: Callable[[int, int], Float32Array], rows: int) -> Float32Array:
        """``fn(start, stop)`` over ``threads`` contiguous row ranges of ``rows`` (as ``np.array_split`` cuts them),
        the first on the calling thread, BLAS at one thread; results concatenated (for work whose inputs are
        several arrays sliced alike)."""
        base, extra = divmod(rows, self.threads)
        bounds = np.cumsum([0] + [base + 1] * extra + [base] * (self.threads - extra)).tolist()
        if self.threads == 1:
            with blas_threads(1):
                return fn(0, rows)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads - 1, thread_name_prefix="tocoad-search")
        with blas_threads(1):
            others = [self._pool.submit(fn, s, e) for s, e in zip(bounds[1:-1], bounds[2:])]
            try:
                first = fn(bounds[0], bounds[1])
            finally:
                wait(others)                    # never return while a worker still writes into the caller's arrays
        return np.concatenate([first, *(f.result() for f in others)])

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
