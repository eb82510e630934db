"""Exact nearest-neighbour distances of a few queries, pruned by a lower bound: the refined search's re-checks.

The refined search re-checks the patches that may carry an image's score: a handful of rows per frame. A plain
GEMM over the whole bank costs ``n × M × D`` for them, and with a 1-32 row block it is compute-bound, so every
extra re-check is paid in full. Here each re-check costs ``M × (p + 2)`` plus the full distance to the few rows
that can still be nearest.

The bound. With ``V_p`` the bank's first ``p`` principal directions (orthonormal) and ``c`` its mean, write
``x' = (x − c)·V_p`` and ``r(x) = |(x − c) − x'·V_pᵀ|`` (the part ``V_p`` does not hold). Then
``|q − b|² = |q' − b'|² + |r-part of q − r-part of b|² ≥ |q' − b'|² + (r(q) − r(b))²``, i.e. the squared distance
between ``[q', r(q)]`` and ``[b', r(b)]``, a ``p + 1``-dimensional distance: one small GEMM gives it for every
bank row. For each query, the row with the smallest bound gives a true distance ``u``; only rows whose bound is
at most ``u²`` (plus a rounding margin) can be nearer, and their full distances are computed by differences
(each a true distance to that row, so the minimum is the exact nearest-neighbour distance, not an expansion
that cancellation could push below it).

The compiled loop (``kernels.py``) computes the bound of a block of rows and the full distances of its survivors in
one pass over the share; the reference path takes the bound of the whole share from ``BoundProduct`` first.

The principal directions are computed from the bank when the search is opened (a ``D × D`` covariance, one
``eigh``); the bound holds for any orthonormal ``V_p``, so their quality only changes how many rows survive.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..arrays import Float32Array
from ..threads import blas_threads
from .base import NearestNeighbourSearch
from .bound_product import BoundProduct
from .split import FirstHelperCall, QuerySplitter

# Leading principal directions in the bound. Fewer let more rows through (each survivor is a gathered full
# row); more make the bound GEMM over all M rows wider.
PREFIX_DIMS = 96
# Rows used for the covariance: enough for the leading directions of any bank, bounded load time for big ones.
COVARIANCE_ROWS = 32768
# The bound is a float32 GEMM expansion; a row is kept while its bound is within this margin of the running best,
# relative to the squared norms involved, so rounding can never drop the true nearest row.
BOUND_RTOL = 1e-5
# Queries per bound GEMM, so that its [M, n] float32 output stays within 16 MB however many rows one call brings
# and however large the bank (at least one query per GEMM).
QUERY_BLOCK = 64
BOUND_ELEMENTS = 4 << 20
# With two or more threads, a re-check of this many queries splits the bank's rows over them (each thread reads its
# share of the bound matrix once for all the queries). A single query is a memory-bound GEMV, and two halves on one
# memory bus were no faster than one thread reading it all; from two queries on the split paid in the frame.
BANK_SPLIT_MIN_QUERIES = 2


class BoundedExactSearch(NearestNeighbourSearch):
    name = "bounded-exact"

    def __init__(self, bank: np.ndarray, *, threads: int | None = None, prefix_dims: int = PREFIX_DIMS,
                 splitter: QuerySplitter | None = None, compiled: bool = True):
        """``splitter``: another search's pool to split the bank over (the refined search passes its first
        stage's, so a frame wakes one worker thread, not two); it stays that search's to resize and close.
        ``compiled``: the bound and its survivors in the compiled loop where it was built (``kernels.py``; False:
        ONNX Runtime's product and numpy's survivors, the reference)."""
        super().__init__(bank, threads)
        from .kernels import compiled_kernels

        self.kernels = compiled_kernels() if compiled else None
        if self.entries < 1:
            from ...errors import InputError

            raise InputError("the memory bank is empty", expected="at least one entry", got="0 entries")
        self.bank = np.ascontiguousarray(bank, dtype=np.float32)
        self.prefix_dims = max(1, min(int(prefix_dims), self.dim - 1)) if self.dim > 1 else 1
        self.center, self.directions = _principal_directions(self.bank, self.prefix_dims)
        lifted = self._lift(self.bank)                                      # [M, p + 1]
        # no padding columns: every re-check streams this whole matrix from memory, so each column is paid for
        self.augmented = np.zeros((self.entries, self.prefix_dims + 2), dtype=np.float32)  # [b', r(b), |·|²]
        self.augmented[:, :self.prefix_dims + 1] = lifted
        self.augmented[:, self.prefix_dims + 1] = np.einsum("ij,ij->i", lifted, lifted)
        self.largest_sq = float(self.augmented[:, self.prefix_dims + 1].max())
        self.rows_checked = 0           # full-distance rows computed so far (for reports)
        self._products: dict[tuple[int, int], BoundProduct] = {}
        # the compiled loop's blocked bound rows of the whole bank; each share is a view of it (shares are cut at
        # whole blocks)
        self._blocked_rows = None if self.kernels is None else self.kernels.block_rows(self.augmented)
        self._owns_splitter = splitter is None
        self.splitter = QuerySplitter(self.threads) if splitter is None else splitter
        self._prepare_products()

    def _lift(self, x: Float32Array) -> Float32Array:
        """``[x', r(x)]``: the coordinates on ``V_p`` and the length of what they leave out."""
        centred = x - self.center
        prefix = centred @ self.directions
        rest = np.einsum("ij,ij->i", centred, centred) - np.einsum("ij,ij->i", prefix, prefix)
        out: Float32Array = np.concatenate([prefix, np.sqrt(np.maximum(rest, 0.0))[:, None]], axis=1)
        return out

    def _query_impl(self, q: Float32Array, upper: Float32Array | None = None) -> Float32Array:
        out = np.empty(len(q), dtype=np.float32)
        step = max(1, min(QUERY_BLOCK, BOUND_ELEMENTS // self.entries))
        for s in range(0, len(q), step):
            out[s:s + step] = self._query_block(q[s:s + step], None if upper is None else upper[s:s + step])
        return out

    def query_below(self, embeddings: np.ndarray, upper: np.ndarray) -> Float32Array:
        """``query`` given an upper bound of each answer that is a true distance to some bank row (an approximate
        search's answer). It replaces the bound's own first guess (an argmin over the whole bank): the answer is
        the same, and with a good approximate search no more rows survive the bound."""
        q = np.ascontiguousarray(embeddings, dtype=np.float32)
        u = np.ascontiguousarray(upper, dtype=np.float32).reshape(-1)
        if q.ndim != 2 or q.shape[1] != self.dim or len(u) != len(q):
            from ...errors import InputError

            raise InputError("search queries and their upper bounds do not match",
                             expected=f"[n, {self.dim}] queries and n bounds", got=f"{q.shape} and {u.shape}")
        return self._query_impl(q, u)

    def _query_block(self, q: Float32Array, upper: Float32Array | None = None) -> Float32Array:
        with blas_threads(1):           # a few rows: one BLAS thread, no workers left spinning on the other core
            lifted = self._lift(q)
        qa = np.zeros((len(q), self.augmented.shape[1]), dtype=np.float32)
        np.multiply(lifted, np.float32(-2.0), out=qa[:, :self.prefix_dims + 1])
        qa[:, self.prefix_dims + 1] = 1.0
        q_sq = np.einsum("ij,ij->i", lifted, lifted)
        # the row behind each given distance has a bound below it, so it survives in its share of the bank
        best = None if upper is None else np.square(upper, dtype=np.float32)
        spans = self._shares()
        if len(spans) > 1 and len(q) >= BANK_SPLIT_MIN_QUERIES:
            shares = self.splitter.map(lambda span: self._nearest_in_rows(q, qa, q_sq, best, span), spans)
        else:
            shares = [self._nearest_in_rows(q, qa, q_sq, best, (0, self.entries))]
        self.rows_checked += sum(checked for _, checked in shares)
        out: Float32Array = np.sqrt(np.minimum.reduce([sq for sq, _ in shares]))
        return out

    def _nearest_in_rows(self, q: Float32Array, qa: Float32Array, q_sq: Float32Array, best: Float32Array | None,
                         span: tuple[int, int]) -> tuple[Float32Array, int]:
        """Squared exact distance from each query to its nearest bank row within ``span`` (start, stop), or
        ``best`` where no row there is nearer (``best``: squared true distances to some rows, or None); and how
        many full-distance rows that took."""
        lo, hi = span
        if self.kernels is not None and best is not None:
            # the bound and the survivors in one pass over the share, its threshold tightening as nearer rows
            # turn up (without a first guess, numpy's argmin over the bound below gives one)
            best = best.copy()
            checked = self.kernels.bounded_nearest(self._blocked(span), hi - lo, qa, q, self.bank[lo:hi],
                                                   q_sq.astype(np.float32, copy=False), self.largest_sq,
                                                   BOUND_RTOL, best)
            return best, checked
        bound = self._product(span)(qa)                                    # [n, rows]: |b~|² − 2 q~·b~
        if best is None:
            diff = self.bank[lo + bound.argmin(1)] - q
            best = np.einsum("ij,ij->i", diff, diff)                       # a true distance: an upper bound
        else:
            best = best.copy()
        # |q~|² moves to the threshold side (no pass over the [n, rows] bound to add it), and the survivors come
        # from one flat index: a 2-D nonzero over the bound cost several times the comparison itself
        margin = BOUND_RTOL * (q_sq + self.largest_sq + best)
        rows, cols = np.divmod(np.flatnonzero(bound <= (best + margin - q_sq)[:, None]), hi - lo)
        diff = self.bank[lo + cols] - q[rows]
        np.minimum.at(best, rows, np.einsum("ij,ij->i", diff, diff))
        return best, len(rows)

    def _shares(self) -> list[tuple[int, int]]:
        """The bank's row spans a pass of several queries is split into: one per search thread, never an empty
        one (a tiny bank has fewer shares); with the compiled loop cut at whole blocks of rows."""
        wanted = min(self.splitter.threads, self.entries)
        cuts = np.linspace(0, self.entries, wanted + 1).astype(int).tolist()
        if self.kernels is not None:
            step = self.kernels.block
            cuts = sorted({0, self.entries, *(min(self.entries, round(c / step) * step) for c in cuts[1:-1])})
        return list(zip(cuts[:-1], cuts[1:]))

    def _prepare_products(self) -> None:
        """Make each share's ONNX Runtime session now, not in the middle of a running line: it takes tens of
        milliseconds to make and prepack a share, a spike a PLC's watchdog could see. (The compiled loop's blocked
        rows are made when the search opens; with it a session is made only for a query without upper bounds.)"""
        if self.kernels is None:
            for span in self._shares():
                self._product(span).prepare()

    def _blocked(self, span: tuple[int, int]) -> Float32Array:
        """The share ``span``'s blocked bound rows: a view of the whole bank's (a share starts at a whole block)."""
        assert self._blocked_rows is not None and self.kernels is not None and span[0] % self.kernels.block == 0
        step = self.kernels.block
        return self._blocked_rows[span[0] // step:-(-span[1] // step)]

    @property
    def splits_smoothed_max(self) -> bool:
        """True where ``smoothed_max`` shares its passes over the bank with the search's other threads."""
        return self.kernels is not None and self.splitter.threads > 1

    def smoothed_max(self, embeddings: np.ndarray, upper: Float32Array, grid: tuple[int, int, int],
                     kernel: np.ndarray, refine_rtol: float,
                     beside: Callable[[], object] | None = None) -> tuple[float, int]:
        """``RefinedSearch.max_smoothed`` over this bank in one compiled call (the refined search asks where the
        compiled loops were built): the score and how many patches were re-checked. The loop runs on the calling
        thread; with two or more search threads (``splits_smoothed_max``) the others take chunks of each of its
        passes over the bank, the first of them after making ``beside`` (the detector's anomaly map), which
        otherwise (or where that thread had not started when the loop was done) is made on the calling thread
        after the loop. Either way ``beside`` is made once, and its error, if any, is raised after the loop's."""
        loop = self.shared_loop(embeddings, grid, kernel, refine_rtol, shared=self.splits_smoothed_max)
        call = FirstHelperCall(beside)
        if not self.splits_smoothed_max:
            result = loop.run(upper)
        else:
            def helper(_: int) -> None:
                try:
                    call.by_helper()
                finally:
                    loop.help()         # returns when the loop does

            result = self.splitter.lead_and_help(lambda: loop.run(upper), helper)
        call.by_caller()
        return result

    def shared_loop(self, embeddings: np.ndarray, grid: tuple[int, int, int], kernel: np.ndarray,
                    refine_rtol: float, *, shared: bool = True) -> "SharedLoop":
        """The compiled ``smoothed-max`` loop of one image's (or frame's tiles') patches, ready to run once the first
        stage's distances are known, with any number of threads helping where ``shared`` (``SharedLoop``)."""
        return SharedLoop(self, embeddings, grid, kernel, refine_rtol, shared=shared)

    def _product(self, span: tuple[int, int]) -> BoundProduct:
        """The bound's product over the bank rows ``span`` (one per share, kept: ONNX Runtime prepacked it)."""
        product = self._products.get(span)
        if product is None:
            product = self._products[span] = BoundProduct(self.augmented[span[0]:span[1]])
        return product

    def set_threads(self, threads: int | None) -> None:
        super().set_threads(threads)
        if self._owns_splitter:
            self.splitter.set_threads(self.threads)
        self._close_products()          # shares are cut by thread count
        self._prepare_products()

    def _close_products(self) -> None:
        for product in self._products.values():
            product.close()
        self._products = {}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "prefix_dims": self.prefix_dims,
                "kernels": "numpy" if self.kernels is None else "compiled"}

    def close(self) -> None:
        self._close_products()
        if self._owns_splitter:
            self.splitter.close()


class SharedLoop:
    """One compiled ``smoothed-max`` loop over a ``BoundedExactSearch``'s bank: ``run(upper)`` on one thread runs it
    (``upper``: the first stage's distances), ``help()`` on any others takes chunks of each of its passes until it
    returns. ``run`` ends the helpers' wait however it ends; ``finish`` ends it where ``run`` will not be called.
    Not ``shared``: no state for helpers is made, and the loop's passes are the plain ones of one thread."""

    def __init__(self, search: BoundedExactSearch, embeddings: np.ndarray, grid: tuple[int, int, int],
                 kernel: np.ndarray, refine_rtol: float, *, shared: bool = True):
        assert search.kernels is not None and search._blocked_rows is not None
        self.search, self.kernels, self.blocked = search, search.kernels, search._blocked_rows
        self.embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        self.grid, self.refine_rtol = grid, refine_rtol
        self.kernel = np.ascontiguousarray(kernel, dtype=np.float32)
        self.split = self.kernels.split_state() if shared else None
        self._last_helps: list[None] = []   # helpers in their last help (list.append is atomic under the GIL)

    def run(self, upper: Float32Array) -> tuple[float, int]:
        """The score and how many patches were re-checked."""
        s = self.search
        try:
            score, rechecked, rows = self.kernels.smoothed_max(
                self.embeddings, np.ascontiguousarray(upper, dtype=np.float32).reshape(-1), self.grid, self.kernel,
                self.refine_rtol, s.center, s.directions, self.blocked, s.bank, s.largest_sq, BOUND_RTOL,
                split=self.split)
        finally:
            self.finish()
        s.rows_checked += rows
        return score, rechecked

    def help(self, *, last: bool = False) -> None:
        """Take chunks of the loop's passes until it returns. ``last``: the helper's last step in the frame (it
        touches nothing of the caller's afterwards, and help raises nothing), counted by ``settled``."""
        if last:
            self._last_helps.append(None)
        if self.split is not None:
            self.kernels.help(self.split, len(self.kernel), self.search.prefix_dims + 2)

    def settled(self, helpers: int) -> bool:
        """True where ``helpers`` helpers have come to their last help: the loop's thread, once ``run`` returned, need
        not wait for them to return (``QuerySplitter.lead_and_help``'s ``settled``)."""
        return len(self._last_helps) >= helpers

    def finish(self) -> None:
        if self.split is not None:
            self.kernels.finish(self.split)


def _principal_directions(bank: Float32Array, p: int) -> tuple[Float32Array, Float32Array]:
    """The bank's mean (float32 ``[D]``) and its ``p`` leading principal directions (float32 ``[D, p]``,
    orthonormal columns), from a float64 covariance of at most ``COVARIANCE_ROWS`` evenly spaced rows."""
    step = max(1, -(-len(bank) // COVARIANCE_ROWS))
    sample = bank[::step].astype(np.float64)
    center = sample.mean(0)
    sample -= center
    _, vectors = np.linalg.eigh(sample.T @ sample)
    directions = np.ascontiguousarray(vectors[:, ::-1][:, :p], dtype=np.float32)
    return center.astype(np.float32), directions
