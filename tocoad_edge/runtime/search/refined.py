"""Exact image scores at approximate-search cost.

An image's score is the largest nearest-neighbour distance over its patches. HNSW returns the distance to a real
bank entry, so its distance is an upper bound of the true nearest-neighbour distance. ``RefinedSearch`` takes
the HNSW distances of all patches of an image, computes exact distances in decreasing order of those bounds,
and stops as soon as the next bound is below the largest exact distance found: no remaining patch can raise the
maximum. The image score then equals exact search's, while per-patch distances (the anomaly map) stay HNSW's.
The re-checks are done by ``exact``: the runtime passes a ``BoundedExactSearch`` (``bounded.py``), which takes the
first stage's distances as upper bounds, splits the bank's rows over its threads, and whose cost per
re-checked patch is a small bound GEMM plus the few bank rows that can still be nearest, so blocks are small:
``first_block`` patches first (default 1: the patch with the largest bound, which settles most images), then
blocks of ``block`` (default 4), stopping at the first block whose largest bound cannot raise the maximum. An
``ExactSearch`` works too (each patch then costs a full pass over the bank, and larger blocks share that pass).

The ``smoothed-max`` image score (``max_smoothed``) is exact the same way: smoothing with non-negative weights keeps
upper bounds upper bounds, so the cell with the largest smoothed bound has every patch under its kernel re-checked,
and this repeats until no cell that still holds an approximate distance can beat the best exact cell. Over a
``BoundedExactSearch`` with the compiled loops the whole of this loop is one compiled call (``smoothed_max`` there;
with two or more search threads the others take chunks of its passes over the bank, the first after drawing the
caller's ``beside``, the anomaly map); the numpy loop below is the reference.
"""
from __future__ import annotations

from typing import Any, Callable

import cv2
import numpy as np

from ..arrays import Float32Array
from .base import NearestNeighbourSearch
from .split import FirstHelperCall

# hnswlib and the GEMM form of the exact search round differently; a bound within this relative margin of the
# running maximum is still refined, so rounding can never skip the true maximum.
BOUND_RTOL = 1e-3


class RefinedSearch(NearestNeighbourSearch):
    name = "refined"
    rechecks_image_score = True

    def __init__(self, approx: NearestNeighbourSearch, exact: NearestNeighbourSearch, *, block: int = 4,
                 first_block: int = 1):
        if (approx.entries, approx.dim) != (exact.entries, exact.dim):
            from ...errors import InputError

            raise InputError("the approximate and exact searches must cover the same bank",
                             expected=f"{exact.entries} × {exact.dim}", got=f"{approx.entries} × {approx.dim}")
        super().__init__(np.broadcast_to(np.float32(0), (exact.entries, exact.dim)), exact.threads)   # shape only
        if block < 1 or first_block < 1:
            from ...errors import InputError

            raise InputError("refinement blocks must hold at least one patch",
                             expected="block >= 1 and first_block >= 1",
                             got=f"block={block}, first_block={first_block}")
        self.approx, self.exact, self.block, self.first_block = approx, exact, int(block), int(first_block)
        self.exact_queries = 0          # how many patches needed an exact query so far (for reports)

    def _query_impl(self, q: Float32Array) -> Float32Array:
        return self.approx.query(q)

    def _image_scores_impl(self, embeddings: Float32Array) -> Float32Array:
        n, p, d = embeddings.shape
        bounds = self.approx.query(embeddings.reshape(-1, d)).reshape(n, p)
        return np.array([self.max_distance(embeddings[i], bounds[i]) for i in range(n)], dtype=np.float32)

    def max_distance(self, embeddings: np.ndarray, distances: Float32Array) -> float:
        """Exact largest nearest-neighbour distance of one image's patches, given their HNSW ``distances``."""
        order = np.argsort(-distances, kind="stable")
        best = -np.inf
        s, size = 0, self.first_block
        while s < len(order):
            idx = order[s:s + size]
            if distances[idx[0]] * (1.0 + BOUND_RTOL) < best:
                break
            best = max(best, float(self._recheck(embeddings, distances, idx).max()))
            self.exact_queries += len(idx)
            s, size = s + len(idx), self.block
        return best

    @property
    def runs_beside(self) -> bool:   # type: ignore[override]
        """True where the compiled loop shares its passes with the search's other threads, the first of which
        makes ``max_smoothed``'s ``beside`` call meanwhile."""
        return bool(self._compiled_smoothed_max() is not None and getattr(self.exact, "splits_smoothed_max", False))

    def _compiled_smoothed_max(self) -> Any:
        return getattr(self.exact, "smoothed_max", None) if getattr(self.exact, "kernels", None) else None

    def max_smoothed(self, embeddings: np.ndarray, distances: Float32Array, grid: tuple[int, int, int],
                     kernel: np.ndarray, beside: Callable[[], object] | None = None) -> float:
        compiled = self._compiled_smoothed_max()
        if compiled is not None:
            # the same loop, compiled, in one call (bounded.py): no numpy call per pass to hand the GIL around
            score, rechecked = compiled(embeddings, distances, grid, kernel, BOUND_RTOL, beside=beside)
            self.exact_queries += int(rechecked)
            return float(score)
        best = self._max_smoothed_numpy(embeddings, distances, grid, kernel)
        if beside is not None:
            beside()
        return best

    def query_and_max_smoothed(self, embeddings: np.ndarray, grid: tuple[int, int, int], kernel: np.ndarray,
                               beside: Callable[[Float32Array], object] | None = None) -> tuple[Float32Array, float]:
        """``query`` and then ``max_smoothed`` of one image's (or frame's tiles') patches, with ``beside(distances)``
        made once before this returns. Where the first stage splits its frame and the re-check shares its loop
        (``runs_beside``, a lending index), the search's worker goes on from its part of the first stage to
        ``beside`` and then to the re-check's passes without going back to its pool: one wake-up a frame, not two."""
        hands_over = getattr(self.approx, "hands_over", None)
        shared_loop = getattr(self.exact, "shared_loop", None)
        if hands_over is None or shared_loop is None or not self.runs_beside or not hands_over(len(embeddings)):
            # a frame the first stage does not split: the re-check hands its loop to the workers itself
            return super().query_and_max_smoothed(embeddings, grid, kernel, beside)
        loop = shared_loop(embeddings, grid, kernel, BOUND_RTOL)
        call = FirstHelperCall(beside)

        def helper(dist: Float32Array) -> None:
            try:
                call.by_helper(dist)
            except BaseException:
                loop.help()                 # returns when the loop does
                raise
            loop.help(last=True)            # the map is drawn: the caller need not wait for this thread to return

        try:
            dist, (score, rechecked) = self.approx.query_then(  # type: ignore[attr-defined]
                embeddings, loop.run, helper, settled=loop.settled)
        finally:
            loop.finish()                   # a helper never waits for a loop that did not run
        self.exact_queries += int(rechecked)
        call.by_caller(dist)                # where no worker had started by the time the loop was done
        return dist, float(score)

    def _max_smoothed_numpy(self, embeddings: np.ndarray, distances: Float32Array, grid: tuple[int, int, int],
                            kernel: np.ndarray) -> float:
        """``max_smoothed``'s loop in numpy: the reference."""
        from ..scoring import smooth_grid

        r = len(kernel) // 2
        d = np.array(distances, dtype=np.float32).reshape(grid)        # upper bounds, made exact patch by patch
        flat = d.reshape(-1)
        exact = np.zeros(grid, dtype=bool)
        best = -np.inf
        bound = smooth_grid(d, kernel)
        cell = np.unravel_index(int(np.argmax(bound)), grid)          # nothing is exact yet: every cell pending
        while bound[cell] * (1.0 + BOUND_RTOL) >= best:
            todo = self._patches_under(cell, r, exact)
            flat[todo] = self._recheck(embeddings, flat, todo)
            exact.reshape(-1)[todo] = True
            self.exact_queries += len(todo)
            bound = smooth_grid(d, kernel)
            # a cell is settled when every patch under its kernel is exact (its smoothed value is then exact)
            settled = ~_near(~exact, r)
            best = max(best, float(bound[settled].max()))
            if settled.all():
                break
            bound[settled] = -np.inf
            cell = np.unravel_index(int(np.argmax(bound)), grid)
        return best

    def _recheck(self, embeddings: np.ndarray, upper: Float32Array, rows: np.ndarray) -> Float32Array:
        """Exact distances of the patches ``rows``: a bounded search takes their approximate distances (true
        distances to real rows) as upper bounds, and with two or more threads splits the bank over them."""
        query_below = getattr(self.exact, "query_below", None)
        out: Float32Array = (query_below(embeddings[rows], upper[rows]) if query_below is not None
                             else self.exact.query(embeddings[rows]))
        return out

    @staticmethod
    def _patches_under(cell: tuple[Any, ...], r: int, exact: np.ndarray) -> np.ndarray:
        """Flat indices of the not yet exact patches under the kernel (radius ``r``) of ``cell`` (tile, row, col)."""
        ti, i, j = (int(v) for v in cell)
        _, h, w = exact.shape
        rows = np.arange(max(0, i - r), min(h, i + r + 1))
        cols = np.arange(max(0, j - r), min(w, j + r + 1))
        under = ((ti * h + rows[:, None]) * w + cols[None, :]).reshape(-1)
        out: np.ndarray = under[~exact.reshape(-1)[under]]
        return out

    def set_threads(self, threads: int | None) -> None:
        super().set_threads(threads)
        self.approx.set_threads(threads)
        self.exact.set_threads(threads)

    def set_idle_spin(self, seconds: float) -> None:
        self.approx.set_idle_spin(seconds)
        self.exact.set_idle_spin(seconds)

    def idle_spin(self) -> float | None:
        return self.approx.idle_spin()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "ef": getattr(self.approx, "ef", None), "approx": self.approx.describe(),
                "exact": self.exact.describe(), "image_score": "exact"}

    def close(self) -> None:
        self.approx.close()
        self.exact.close()


def bounded_refined_search(approx: NearestNeighbourSearch, bank: np.ndarray,
                           threads: int | None) -> RefinedSearch:
    """The runtime's refined search: ``approx`` for the map, a ``BoundedExactSearch`` over ``bank`` for the
    re-checks, splitting the bank over ``approx``'s worker threads where it has them (one pool per frame: each
    extra pool is one more thread for the scheduler to wake and place)."""
    from .bounded import BoundedExactSearch

    return RefinedSearch(approx, BoundedExactSearch(bank, threads=threads, splitter=getattr(approx, "splitter", None)))


def _near(mask: np.ndarray, r: int) -> np.ndarray:
    """Cells of ``mask [tiles, h, w]`` with a set cell within ``r`` rows and columns (the kernel's window)."""
    box = np.ones((2 * r + 1, 2 * r + 1), dtype=np.uint8)
    m = mask.astype(np.uint8)
    return np.stack([cv2.dilate(t, box, borderType=cv2.BORDER_REFLECT) for t in m]) > 0
