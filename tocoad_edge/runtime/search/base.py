"""The search protocol: ``query(embeddings [n, D] float32) -> distances [n] float32`` (L2, not squared)."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..arrays import Float32Array


class NearestNeighbourSearch:
    name = "base"
    # True where ``max_distance`` does real work (exact re-checks), so a caller with a spare core can draw the
    # anomaly map meanwhile; the base class's maximum is too cheap to hand to another thread.
    rechecks_image_score = False
    # True where ``max_smoothed`` makes its ``beside`` call on another thread while its own work runs.
    runs_beside = False

    def __init__(self, bank: np.ndarray, threads: int | None = None):
        self.entries, self.dim = int(bank.shape[0]), int(bank.shape[1])
        self.threads = int(threads) if threads else None
        self.selection: dict[str, Any] | None = None     # set by ``search: auto``: what was measured and chosen

    def query(self, embeddings: np.ndarray) -> Float32Array:
        """L2 distance of each row of ``embeddings`` to its nearest memory-bank entry."""
        return self._query_impl(self._queries(embeddings))

    def _queries(self, embeddings: np.ndarray) -> Float32Array:
        """``embeddings`` as C-contiguous float32 ``[n, D]``; an ``InputError`` for another shape."""
        q = np.ascontiguousarray(embeddings, dtype=np.float32)
        if q.ndim != 2 or q.shape[1] != self.dim:
            from ...errors import InputError

            raise InputError("search queries have the wrong shape", expected=f"[n, {self.dim}]", got=str(q.shape))
        return q

    def max_distance(self, embeddings: np.ndarray, distances: Float32Array) -> float:
        """The image score from one image's patch ``embeddings`` [P, D] and this search's ``distances`` [P] of
        them: their maximum (``RefinedSearch`` re-checks the candidates exactly)."""
        return float(distances.max())

    def max_smoothed(self, embeddings: np.ndarray, distances: Float32Array, grid: tuple[int, int, int],
                     kernel: np.ndarray, beside: Callable[[], object] | None = None) -> float:
        """The ``smoothed-max`` image score (``runtime/scoring.py``) of one image's patch ``embeddings`` [P, D]
        from this search's ``distances`` [P], laid out as ``grid`` (tiles, h, w): their smoothed maximum
        (``RefinedSearch`` re-checks the patches under the candidate cells exactly). ``beside``: a call made once
        before this returns: on another thread meanwhile where ``runs_beside``, else afterwards."""
        from ..scoring import image_score

        score = image_score(distances, grid, kernel)
        if beside is not None:
            beside()
        return score

    def query_and_max_smoothed(self, embeddings: np.ndarray, grid: tuple[int, int, int], kernel: np.ndarray,
                               beside: Callable[[Float32Array], object] | None = None) -> tuple[Float32Array, float]:
        """``query`` and then ``max_smoothed`` of one image's (or frame's tiles') patches: their distances and image
        score, with ``beside(distances)`` made once before this returns (``RefinedSearch`` hands its worker from
        one to the other)."""
        dist = self.query(embeddings)
        return dist, self.max_smoothed(embeddings, dist, grid, kernel, None if beside is None else lambda: beside(dist))

    def image_scores(self, embeddings: np.ndarray, grid: tuple[int, int] | None = None,
                     kernel: np.ndarray | None = None) -> Float32Array:
        """Image score of each image, embeddings [images, patches, D]: the largest patch nearest-neighbour
        distance, or with a ``kernel`` (``runtime/scoring.score_kernel``: a ``smoothed-max`` bundle) the largest
        value of the ``grid``-shaped (h, w) distances smoothed by it, as the runtime scores a frame."""
        from ...errors import InputError

        e = np.ascontiguousarray(embeddings, dtype=np.float32)
        if e.ndim != 3 or e.shape[2] != self.dim:
            raise InputError("image embeddings have the wrong shape", expected=f"[images, patches, {self.dim}]",
                             got=str(e.shape))
        if kernel is None:
            return self._image_scores_impl(e)
        if grid is None or len(grid) != 2 or int(grid[0]) * int(grid[1]) != e.shape[1]:
            raise InputError("a smoothed image score needs the patch grid of the embeddings",
                             expected=f"grid=(h, w) with h·w = {e.shape[1]} patches", got=f"grid={grid}")
        n, p, d = e.shape
        dist = self.query(e.reshape(-1, d)).reshape(n, p)
        return np.array([self.max_smoothed(e[i], dist[i], (1, int(grid[0]), int(grid[1])), kernel) for i in range(n)],
                        dtype=np.float32)

    def _image_scores_impl(self, embeddings: Float32Array) -> Float32Array:
        n, p, d = embeddings.shape
        scores: Float32Array = self.query(embeddings.reshape(-1, d)).reshape(n, p).max(1)   # numpy types it Any
        return scores

    def set_threads(self, threads: int | None) -> None:
        """Threads one query may use (None: the library default)."""
        self.threads = int(threads) if threads else None

    def set_idle_spin(self, seconds: float) -> None:
        """How long this search's worker threads wait on their CPU between frames before they block
        (``search/pool.py``; 0: at once). A search without worker threads of its own has nothing to set."""
        splitter = getattr(self, "splitter", None)
        if splitter is not None:
            splitter.set_idle_spin(seconds)

    def idle_spin(self) -> float | None:
        """``set_idle_spin``'s seconds, None for a search without worker threads of its own (for reports)."""
        splitter = getattr(self, "splitter", None)
        return None if splitter is None else float(splitter.idle_spin_s)

    def _query_impl(self, q: Float32Array) -> Float32Array:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"kind": self.name, "entries": self.entries, "dim": self.dim, "threads": self.threads,
                **({"selection": self.selection} if self.selection else {})}

    def close(self) -> None:
        pass
