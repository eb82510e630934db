"""One frame's queries split across threads: each thread searches a contiguous block of rows with a one-thread
BLAS. OpenBLAS's own threading of one GEMM made two threads *slower* than one on a loaded 2-core machine
(26k × 384 bank, 784 queries: 742 ms → 951 ms at load 10), its workers spin-waiting for the slowest; two
independent one-thread GEMMs over half the rows each do not wait on each other (742 → 631 ms, same run).
numpy and hnswlib release the GIL, so Python threads are enough.

The calling thread searches the first block itself and the pool (``threads − 1`` workers) the others: every
hand-off to a sleeping worker costs its wake-up, so a caller that waits while the pool works adds one wake-up to
the frame and leaves a core idle."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, wait
from typing import Callable, Sequence, TypeVar

import numpy as np

from ..arrays import Float32Array
from ..threads import blas_threads

# Below this many rows per thread a block is not worth a thread hand-off (a frame's first stage splits its queries;
# the re-checks split the bank instead, ``bounded.py``).
MIN_ROWS_PER_THREAD = 64

T = TypeVar("T")
R = TypeVar("R")


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
        """``fn`` over ``threads`` contiguous row blocks of ``q`` (``np.array_split``'s cuts), the first on the
        calling thread and the others on the pool, BLAS at one thread; results concatenated in row order."""
        if self.threads == 1:
            with blas_threads(1):
                return fn(q)
        return np.concatenate(self.map(fn, np.array_split(q, self.threads)))

    def map(self, fn: Callable[[T], R], parts: Sequence[T]) -> list[R]:
        """``fn`` over each of ``parts`` (at most ``threads`` of them), the first on the calling thread and the
        others on the pool, BLAS at one thread; results in the order of ``parts``."""
        if not 1 <= len(parts) <= self.threads:
            from ...errors import InputError

            raise InputError("a split needs one part per thread at most", expected=f"1 .. {self.threads} parts",
                             got=f"{len(parts)} parts")
        if len(parts) > 1 and self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads - 1, thread_name_prefix="tocoad-search")
        with blas_threads(1):
            others = [self._pool.submit(fn, part) for part in parts[1:]] if self._pool is not None else []
            try:
                first = fn(parts[0])
            finally:
                wait(others)                    # never return while a worker still writes into the caller's arrays
        return [first, *(f.result() for f in others)]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
