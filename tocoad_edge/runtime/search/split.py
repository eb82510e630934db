"""One frame's queries split across threads: each thread searches a contiguous block of rows with a one-thread
BLAS. OpenBLAS's own threading of one GEMM made two threads *slower* than one on a loaded 2-core machine
(26k × 384 bank, 784 queries: 742 ms → 951 ms at load 10), its workers spin-waiting for the slowest; two
independent one-thread GEMMs over half the rows each do not wait on each other (742 → 631 ms, same run).
numpy and hnswlib release the GIL, so Python threads are enough.

The calling thread searches the first block itself and the pool (``threads − 1`` workers) the others: every
hand-off to a sleeping worker costs its wake-up, so a caller that waits while the pool works adds one wake-up to
the frame and leaves a core idle."""
from __future__ import annotations

import itertools
import threading
from concurrent.futures import wait
from typing import Callable, Iterator, Sequence, TypeVar

import numpy as np

from ..arrays import Float32Array
from ..threads import blas_threads
from .kernels import split_frame_timeout
from .pool import IDLE_SPIN_S, WorkerPool

# Below this many rows per thread a block is not worth a thread hand-off (a frame's first stage splits its queries;
# the re-checks split the bank instead, ``bounded.py``).
MIN_ROWS_PER_THREAD = 64

T = TypeVar("T")
R = TypeVar("R")


class QuerySplitter:
    """A small pool owned by one search (``pool.py``: its idle workers wait on their CPU for a while, then block)."""

    def __init__(self, threads: int | None, idle_spin_s: float = IDLE_SPIN_S):
        self.threads = int(threads) if threads else 1
        self.idle_spin_s = float(idle_spin_s)
        self._pool: WorkerPool | None = None

    def set_idle_spin(self, seconds: float) -> None:
        """How long the workers wait on their CPU between jobs before they block (``pool.py``; 0: at once)."""
        self.idle_spin_s = float(seconds)
        if self._pool is not None:
            self._pool.set_spin(self.idle_spin_s)

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
        with blas_threads(1):
            others = [self._workers().submit(fn, part) for part in parts[1:]]
            try:
                first = fn(parts[0])
            finally:
                wait(others)                    # never return while a worker still writes into the caller's arrays
        return [first, *(f.result() for f in others)]

    def lead_and_help(self, lead: Callable[[], R], helper: Callable[[int], object],
                      settled: Callable[[int], bool] | None = None, *, blas_one: bool = True,
                      lead_wakes: bool = False) -> R:
        """``lead()`` on the calling thread and ``helper(i)`` on each worker ``i`` (1 .. threads − 1), BLAS at one
        thread. The helpers only take work the lead would otherwise do itself (``Chunks``, the compiled first stage's
        blocks, or the compiled re-check's shared passes), so a helper that has not started when ``lead`` returns is
        cancelled: a frame never waits for a wake-up it no longer needs. ``settled(n)``: True where the ``n`` helpers
        that did start have each reached a last step that touches nothing of the caller's and raises nothing (the
        re-check's help, once the map is drawn); after a ``lead`` that returned, those are not waited for either, so
        the frame does not pay for waking the caller once they return. ``blas_one``: False where neither calls BLAS
        (the compiled first stage), which saves setting and restoring its pool on every frame. ``lead_wakes``: the
        lead's first compiled call changes the pool's ``wake`` word (``pool.py``). Returns lead's result; a
        helper's error is raised after lead's."""
        with blas_threads(1 if blas_one else None):
            others = [self._workers().submit(helper, i, wake=not lead_wakes) for i in range(1, self.threads)]
            try:
                first = lead()
            except BaseException:
                wait([f for f in others if not f.cancel()])     # never leave a worker in the caller's arrays
                raise
            # a helper that has not started never will; concurrent.futures.wait would still wait for a worker to
            # take it off the queue, so only the others are waited for
            ran = [f for f in others if not f.cancel()]
            if ran and settled is not None and settled(len(ran)):
                return first
            wait(ran)                           # never return while a worker still writes into the caller's arrays
        for f in ran:
            f.result()
        return first

    @property
    def wake(self) -> np.ndarray:
        """The word this splitter's spinning workers watch (``pool.py``), for a lead that changes it itself."""
        return self._workers().wake

    def _workers(self) -> WorkerPool:
        if self._pool is None:
            self._pool = WorkerPool(max(1, self.threads - 1), "tocoad-search", self.idle_spin_s)
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


class Chunks:
    """A frame's work cut into ``count`` chunks that the threads of a split claim one at a time, in order, so a
    thread that is slow to start or is slowed by the system leaves more of them to the others instead of holding
    up the frame; ``wait`` returns once every chunk is finished, by whichever thread."""

    def __init__(self, count: int):
        self.count = int(count)
        self._next = itertools.count()      # next() on it is atomic under the GIL
        self._finished = 0
        self._lock = threading.Lock()
        self._all = threading.Event()
        self.failed = False

    def claims(self) -> Iterator[int]:
        """The chunks this thread takes, until none are left (or a thread failed)."""
        while not self.failed:
            i = next(self._next)
            if i >= self.count:
                return
            yield i

    def finish(self) -> None:
        with self._lock:
            self._finished += 1
            if self._finished == self.count:
                self._all.set()

    def fail(self) -> None:
        """A thread failed: the others stop claiming and waiting (the failing thread raises why)."""
        self.failed = True
        self._all.set()

    def wait(self, timeout: float) -> bool:
        """Wait until every chunk is finished; False where a thread failed meanwhile. A ``ResourceError`` after
        ``timeout`` seconds (a thread stopped by the system in the middle of a chunk)."""
        if not self._all.wait(timeout):
            raise split_frame_timeout(timeout)
        return not self.failed


class FirstHelperCall:
    """A call one thread of a split makes (the detector's anomaly map): the first helper that asks, or the caller
    afterwards where no helper did (none had started, or the frame did not split). Either way once."""

    def __init__(self, call: Callable[..., object] | None):
        self.call = call
        self._turns = itertools.count()     # next() on it is atomic under the GIL
        self._made = False

    def by_helper(self, *args: object) -> None:
        if self.call is not None and next(self._turns) == 0:
            self.call(*args)
            self._made = True

    def by_caller(self, *args: object) -> None:
        """After the split: make the call where no helper made it (a helper that failed in it has raised)."""
        if self.call is not None and not self._made:
            self.call(*args)
