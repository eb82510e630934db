"""The worker threads of a search's ``QuerySplitter``: between jobs each waits on its CPU for a while before it
blocks.

A frame's search hands the worker its part a few milliseconds after the last frame's, the backbone having run in
between. A worker blocked on a queue takes a wake-up each time: a tenth of a millisecond and more on the virtual
machines measured (whose host may also park an idle virtual CPU), and the caller meanwhile does the worker's part
alone. So a worker first waits in the compiled library (``tk_idle_wait``): spinning on a word without the GIL, giving
its CPU to any other thread that wants it every few microseconds (ONNX Runtime's workers during the next backbone,
another camera's search), and only after ``IDLE_SPIN_S`` without a job does it block on the queue. ONNX Runtime's
own workers and OpenMP's do the same between runs; this one gives way sooner and stops sooner.

The word changes with each job. A caller that goes straight into a compiled call after ``submit(..., wake=False)``
changes it there instead (``tk_first_stage``'s ``wake``), with the GIL released: a worker that wakes in the
middle of the caller's Python would only block again waiting for the GIL. Without the compiled library the workers
block on the queue at once.
"""
from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from typing import Any, Callable, TypeVar

import numpy as np

R = TypeVar("R")

# How long a worker waits on its CPU after its last job before it blocks: longer than the gap between two frames'
# searches (a backbone and the preprocessing: a few milliseconds), short enough that an idle line frees the core.
IDLE_SPIN_S = 0.05


class WorkerPool:
    """``workers`` threads named ``name_i`` running submitted calls in order, each a ``Future`` (cancellable until
    a worker takes it). ``wake``: the word that spinning workers watch."""

    def __init__(self, workers: int, name: str, spin_s: float = IDLE_SPIN_S):
        from .kernels import compiled_kernels

        self.kernels = compiled_kernels()
        self.spin_s = 0.0
        self.set_spin(spin_s)
        self.wake = np.zeros(1, dtype=np.int64)
        self._shutdown = False          # as concurrent.futures' executors say it
        self._jobs: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]] | None] = (
            queue.SimpleQueue())
        self._threads = [threading.Thread(target=self._work, name=f"{name}_{i}", daemon=True) for i in range(workers)]
        for t in self._threads:
            t.start()

    def set_spin(self, seconds: float) -> None:
        """How long a worker waits on its CPU after a job before it blocks (0: at once; always 0 without the
        compiled library). Takes effect from the worker's next wait."""
        self.spin_s = float(seconds) if self.kernels is not None else 0.0

    def submit(self, fn: Callable[..., R], *args: Any, wake: bool = True) -> Future[R]:
        """Run ``fn(*args)`` on a worker. ``wake=False``: the caller changes ``wake`` itself, in a compiled call it
        makes next (a spinning worker starts then; a blocked one starts now, woken by the queue)."""
        future: Future[R] = Future()
        self._jobs.put((future, fn, args))
        if wake:
            self.wake[0] += 1           # one submitting thread per pool (the search's caller)
        return future

    def _work(self) -> None:
        while True:
            seen = int(self.wake[0])
            if self.spin_s and self._jobs.empty():
                assert self.kernels is not None
                self.kernels.idle_wait(self.wake, seen, self.spin_s)
            job = self._jobs.get()
            if job is None:
                return
            future, fn, args = job
            if not future.set_running_or_notify_cancel():
                continue                # cancelled before it started
            try:
                result = fn(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
                future.set_exception(exc)
            else:
                future.set_result(result)

    def shutdown(self) -> None:
        """Stop the workers once the jobs already submitted are done, and wait for them."""
        self._shutdown = True
        for _ in self._threads:
            self._jobs.put(None)
        self.wake[0] += 1
        for t in self._threads:
            t.join()
