"""Projected HNSW: a cheap first stage in a few dimensions, then an exact re-rank in the bank's own dimension.

The bundle stores a linear projection ``[D + 1, d]`` (rows ``0..D-1`` the matrix ``P``, the last row the bias
``b = −mean·P``; ``q_proj = q·P + b``) and an hnswlib L2 index over the projected bank. A query is projected, the
index returns ``candidates`` bank rows, and their full-dimension L2 distances to the query are computed from the
float32 bank; the smallest is the answer. Every answer is the true distance to a real bank row, so it is an
upper bound of the exact nearest-neighbour distance: ``RefinedSearch`` can still make the image score exact.

Lending (``lend`` > 0, with the patch ``grid``). Neighbouring patches of an image usually have the same or nearby
nearest bank rows, and a walk's cost grows with its ``ef``. So each patch walks with few candidates, and its
``lend`` best rows (by full-dimension distance) are also re-ranked for its four grid neighbours (up, down, left,
right; a border patch counts itself for the missing one). Each patch's answer is the best of its own candidates
and the ``4 · lend`` rows lent to it: still a true distance to a real bank row. A short walk plus the lent rows
costs less than a long walk for about the same map error (``benchmarks/screen_lending.py`` measures both).
Queries then come as whole patch grids (images or tiles, grid-major), and a patch's answer never depends on how
a frame is split over threads. With the compiled loops the whole first stage is one call per thread
(``_first_stage``, ``tk_first_stage``): the threads claim blocks of 16 rows, each projects, walks (hnswlib's own
search, over the index file's arrays: ``hnsw_graph.py``) and ranks its blocks and writes their lent rows into the
frame's table, and once every row is ranked they answer blocks from the whole table, meeting by spinning on
counters without the GIL. Where the walk cannot read the file (another hnswlib format, a CPU other than x86-64)
the threads walk with hnswlib, rank, meet and answer from Python (``_lend_split``). On the numpy path a thread
also walks the grid row either side of its rows, so it has every neighbour's walk at hand.

Per frame (784 queries) the cost is hnswlib's walk in ``d`` dimensions plus ``784 × k`` dot products with bank
rows. The compiled re-rank (``kernels.py``) reads the rows where they lie, in one call that holds no GIL. The numpy
re-rank, the reference, gathers them in row blocks of at most ``GATHER_BYTES`` (``block × k × D`` float32) so they
stay in cache. With ``threads`` > 1 the frame's rows are split over ``QuerySplitter`` threads (the caller and
``threads − 1`` workers), each walking and re-ranking its own rows (hnswlib's ``knn_query``, the compiled re-rank
and numpy's loops release the GIL).
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable, TypeVar, cast

import numpy as np

from ...errors import BundleError, InputError
from ..arrays import Float32Array
from ..threads import blas_threads
from .base import NearestNeighbourSearch
from .hnsw import build_hnsw_index, load_hnsw_index
from .hnsw_graph import read_hnsw_graph
from .kernels import WalkGraph, WalkScratch
from .split import Chunks, QuerySplitter

R = TypeVar("R")

# A block's gathered rows (128 queries × 8 candidates, or 64 × 16, × 384 dims × 4 B = 1.5 MB) are read by the
# mat-vec while they are still in cache. Each numpy call hands the GIL back and forth when two threads re-rank at
# once, so fewer, larger blocks pay at two threads; larger still, the gathered rows fall out of cache. np.take into
# a reused buffer beats fancy indexing, but only with mode="clip": with the default mode="raise" numpy gathers into
# a temporary and copies it into ``out`` (its documented buffering), which made the gather about 2.5 times slower.
GATHER_BYTES = 3 << 19
# How long a thread of a split frame waits for the others' lent rows before it gives up (a walk takes milliseconds;
# only a thread stopped by the system could take this long).
MEET_TIMEOUT_S = 10.0
# A split frame's rows are cut into this many chunks per thread (fewer where a chunk would hold under MIN_CHUNK_ROWS).
# One: a worker that has not started when the caller is done with its own chunk leaves the rest to the caller.
# Finer chunks would let a merely slowed thread hand over part of its share too, but each chunk's extra walk call,
# projection, re-rank call and GIL hand-offs cost more per frame than that won back (docs/performance.md).
CHUNKS_PER_THREAD = 1
MIN_CHUNK_ROWS = 32


def check_projection(projection: np.ndarray, dim: int, where: str = "the search projection") -> Float32Array:
    """``projection`` as float32 ``[dim + 1, d]`` with 1 <= d <= dim and finite values; a ``BundleError`` else."""
    p = np.asarray(projection)
    if p.ndim != 2 or p.shape[0] != dim + 1 or not 1 <= p.shape[1] <= dim or p.dtype != np.float32:
        raise BundleError(f"{where} has the wrong shape or dtype",
                          expected=f"float32 [{dim + 1}, d] with 1 <= d <= {dim} (matrix rows, then the bias)",
                          got=f"{p.dtype} {list(p.shape)}", fix="re-export the bundle")
    if not np.isfinite(p).all():
        raise BundleError(f"{where} holds NaN or inf", expected="finite values", got="non-finite values",
                          fix="re-export the bundle")
    return np.ascontiguousarray(p)


def project(x: np.ndarray, projection: Float32Array) -> Float32Array:
    """``x [n, D]`` → ``x·P + b`` float32 ``[n, d]``: the one formula the index is built with and queried with."""
    out: Float32Array = np.ascontiguousarray(x, dtype=np.float32) @ projection[:-1]
    out += projection[-1]
    return out


def build_projected_index(bank: np.ndarray, projection: np.ndarray, path: str | Path, *, M: int = 16,
                          ef_construction: int = 200, seed: int = 0) -> None:
    """An hnswlib L2 index over the projected ``bank`` (labels = bank row numbers), saved to ``path``."""
    p = check_projection(projection, int(bank.shape[1]))
    build_hnsw_index(project(bank, p), path, M=M, ef_construction=ef_construction, seed=seed)


def grid_neighbours(grids: int, h: int, w: int) -> np.ndarray:
    """Row numbers of each patch's four grid neighbours (up, down, left, right), ``[grids · h · w, 4]`` int64, for
    ``grids`` patch grids of ``h × w`` laid out grid-major, row-major; a border patch's missing neighbour is
    itself (a patch never borrows across a grid, i.e. from another image or tile)."""
    i, j = np.divmod(np.arange(h * w), w)
    local = np.stack([np.maximum(i - 1, 0) * w + j, np.minimum(i + 1, h - 1) * w + j,
                      i * w + np.maximum(j - 1, 0), i * w + np.minimum(j + 1, w - 1)], axis=1)
    out: np.ndarray = (local[None] + (np.arange(grids) * h * w)[:, None, None]).reshape(-1, 4).astype(np.int64)
    return out


class ProjectedSearch(NearestNeighbourSearch):
    name = "projected"

    def __init__(self, bank: np.ndarray, index_path: str | Path, projection: np.ndarray, *, ef: int = 32,
                 candidates: int = 8, lend: int = 0, grid: tuple[int, int] | None = None,
                 threads: int | None = None, compiled: bool = True):
        """``lend``: best rows each patch lends to its grid neighbours (0: none); with ``lend`` > 0, ``grid`` is
        the patch grid ``(h, w)`` of one image or tile, and every query is whole grids. ``compiled``: re-rank with
        the compiled loop where it was built (``kernels.py``; False: numpy's, the reference)."""
        super().__init__(bank, threads)
        from .kernels import compiled_kernels

        self.bank = np.ascontiguousarray(bank, dtype=np.float32)
        self.norms = np.einsum("ij,ij->i", self.bank, self.bank)     # |b|², ranks the candidates
        self.kernels = compiled_kernels() if compiled else None
        self._buffers = threading.local()                               # per-thread gather buffers
        self.projection = check_projection(projection, self.dim)
        self.dims = int(self.projection.shape[1])
        if not 1 <= int(candidates) <= self.entries:
            raise InputError("projected search candidates out of range", expected=f"1 .. {self.entries}",
                             got=str(candidates), fix="re-export the bundle (search candidates in the manifest)")
        self.candidates = int(candidates)
        if not 0 <= int(lend) <= self.candidates:
            raise InputError("projected search lends more rows than it walks",
                             expected=f"lend in 0 .. {candidates} (the candidates)", got=str(lend),
                             fix="re-export the bundle (search lend in the manifest)")
        self.lend = int(lend)
        if self.lend and (grid is None or len(grid) != 2 or min(int(v) for v in grid) < 1):
            raise InputError("a projected search that lends rows between neighbours needs the patch grid",
                             expected="grid=(h, w) with h, w >= 1", got=f"grid={grid}")
        self.grid = (int(grid[0]), int(grid[1])) if self.lend and grid is not None else None
        self._neighbours: dict[int, np.ndarray] = {}       # by grids per query: a frame's tiles, a batch's images
        self.index = load_hnsw_index(index_path, self.dims, self.entries)
        # with the compiled loops and lending, the frame's first stage runs in one C call per thread, walking the
        # same graph with hnswlib's own search (kernels.py, ``first_stage``), where the file and the CPU allow it
        self.walk_graph = None
        if self.kernels is not None and self.kernels.walks and self.lend:
            graph = read_hnsw_graph(index_path, self.dims, self.entries)
            self.walk_graph = None if graph is None else WalkGraph(graph)
        self.splitter = QuerySplitter(self.threads)
        self.set_ef(ef)
        self.set_threads(threads)

    def set_ef(self, ef: int) -> None:
        # hnswlib needs ef >= k to return k neighbours
        self.ef = max(int(ef), self.candidates)
        self.index.set_ef(self.ef)

    def set_threads(self, threads: int | None) -> None:
        super().set_threads(threads)
        if self.threads:
            self.index.set_num_threads(self.threads)
        self.splitter.set_threads(self.threads)

    def candidate_rows(self, q: Float32Array, threads: int = -1) -> np.ndarray:
        """Bank row numbers of each query's ``candidates`` nearest neighbours in the projected space, ``[n, k]``
        (``threads`` -1: the index's own pool)."""
        labels: np.ndarray = self.index.knn_query(project(q, self.projection), k=self.candidates,
                                                  num_threads=threads)[0]
        return labels

    def _query_impl(self, q: Float32Array) -> Float32Array:
        if self.lend:
            return self._query_lending(q)
        if self.splitter.splits(len(q)):
            # each thread walks its own rows (hnswlib releases the GIL) and re-ranks them at once, while they are
            # still in its cache: no thread waits for the whole frame's walk before re-ranking
            return self.splitter.run(lambda block: self._rerank(block, self.candidate_rows(block, 1)), q)
        with blas_threads(1):       # the projection GEMM is small; a multi-threaded OpenBLAS call leaves workers
            return self._rerank(q, self.candidate_rows(q))   # busy-waiting on the core the next stage needs

    def _query_lending(self, q: Float32Array) -> Float32Array:
        """Walk every patch with ``candidates`` rows, then re-rank the rows its grid neighbours lend it. With the
        compiled loops: ``_lend_compiled``. On the numpy path, with several threads, each walks its rows and one grid
        row either side: every neighbour of its rows is among those, and a patch's walk depends only on its own
        query, so a patch at the cut borrows what a one-thread frame would have lent it, with one hand-off to the
        pool per frame (as without lending)."""
        neighbours = self._grid_neighbours(len(q))
        if self.kernels is not None:
            return self._lend_compiled(q, neighbours)
        if not self.splitter.splits(len(q)):
            with blas_threads(1):       # small GEMMs: no BLAS workers left spinning on the other core
                return self._lend_rows(q, neighbours, (0, len(q)), -1)
        cuts = [(int(p[0]), int(p[-1]) + 1) for p in np.array_split(np.arange(len(q)), self.splitter.threads)]
        return np.concatenate(self.splitter.map(lambda cut: self._lend_rows(q, neighbours, cut, 1), cuts))

    def _grid_neighbours(self, rows: int) -> np.ndarray:
        """Each row's four grid neighbours for a query of ``rows`` rows (whole patch grids), kept per grid count."""
        assert self.grid is not None
        h, w = self.grid
        if rows % (h * w):
            raise InputError("a projected search that lends rows between neighbours takes whole patch grids",
                             expected=f"a multiple of {h}×{w} = {h * w} rows (grid-major, one grid per image or "
                             "tile)", got=f"{rows} rows", fix="query one or more whole images' patches")
        grids = rows // (h * w)
        neighbours = self._neighbours.get(grids)
        if neighbours is None:
            neighbours = self._neighbours[grids] = grid_neighbours(grids, h, w)
        return neighbours

    def hands_over(self, rows: int) -> bool:
        """True where ``query_then`` of ``rows`` queries splits the frame and hands its workers on to ``helper``."""
        return bool(self.lend and self.kernels is not None and self.splitter.splits(rows))

    def query_then(self, embeddings: np.ndarray, lead: Callable[[Float32Array], R],
                   helper: Callable[[Float32Array], object],
                   settled: Callable[[int], bool] | None = None) -> tuple[Float32Array, R]:
        """``query``, then ``lead(distances)`` on the calling thread and ``helper(distances)`` on each worker that
        took part in the split frame, without handing the workers back to the pool in between (one wake-up a frame
        instead of two: the refined search's re-check follows its first stage this way). Returns the distances
        and lead's result. No worker runs ``helper`` where the frame does not split (not ``hands_over``: one
        thread, the numpy loops, no lending, too few rows) or where none had started by the time the caller needed
        none. ``settled``: as ``QuerySplitter.lead_and_help``'s, for the helpers."""
        q = self._queries(embeddings)
        if not self.hands_over(len(q)):
            out = self._query_impl(q)
            return out, lead(out)
        split = self._lend_split if self.walk_graph is None else self._first_stage
        out, result = split(q, self._grid_neighbours(len(q)), lead, helper, settled)
        return out, cast(R, result)          # lead ran: where a thread failed, the split raised

    def _lend_compiled(self, q: Float32Array, neighbours: np.ndarray) -> Float32Array:
        """``_query_lending`` with the compiled loops (``_lend_split`` where the frame splits)."""
        assert self.kernels is not None
        if self.walk_graph is not None:
            return self._first_stage(q, neighbours, None, None)[0]
        if self.splitter.splits(len(q)):
            return self._lend_split(q, neighbours, None, None)[0]
        lent = np.empty((len(q), self.lend), dtype=np.int64)
        with blas_threads(1):
            labels = self.candidate_rows(q, -1)
            rank = self.kernels.rank_and_lend(q, labels, self.bank, self.norms, lent)
            return self.kernels.answer(q, labels, rank, self.bank, self.norms, neighbours, lent)

    def _lend_split(self, q: Float32Array, neighbours: np.ndarray, lead: Callable[[Float32Array], R] | None,
                    helper: Callable[[Float32Array], object] | None,
                    settled: Callable[[int], bool] | None = None) -> tuple[Float32Array, R | None]:
        """A lending frame over the search's threads. The frame's rows are cut into chunks that the threads claim
        one at a time (``Chunks``): each walks and ranks the chunks it takes and writes their lent rows into the
        frame's table; once every chunk is in, each answers the chunks it takes from the whole table. The same
        answers as walking a grid row either side of each cut, without those extra walks; and a worker that the
        system starts late leaves its chunk to the caller instead of holding up the frame. With ``lead`` (and
        ``helper``), once every answer is in the caller goes on to ``lead`` and each worker to ``helper``
        (``query_then``)."""
        assert self.kernels is not None
        kernels, n = self.kernels, len(q)
        lent = np.empty((n, self.lend), dtype=np.int64)
        out = np.empty(n, dtype=np.float32)
        cuts = [(int(p[0]), int(p[-1]) + 1)
                for p in np.array_split(np.arange(n), min(self.splitter.threads * CHUNKS_PER_THREAD,
                                                          n // MIN_CHUNK_ROWS))]
        walked: list[tuple[np.ndarray, Float32Array] | None] = [None] * len(cuts)
        ranked, answered = Chunks(len(cuts)), Chunks(len(cuts))

        def rows(i: int = 0) -> R | None:
            try:
                for c in ranked.claims():
                    s, e = cuts[c]
                    labels = self.candidate_rows(q[s:e], 1)
                    walked[c] = labels, kernels.rank_and_lend(q[s:e], labels, self.bank, self.norms, lent[s:e])
                    ranked.finish()
                if not ranked.wait(MEET_TIMEOUT_S):     # every chunk's lent rows are in the table
                    return None                         # a thread failed: it raises why
                for c in answered.claims():
                    s, e = cuts[c]
                    labels, rank = walked[c]  # type: ignore[misc]
                    out[s:e] = kernels.answer(q[s:e], labels, rank, self.bank, self.norms, neighbours[s:e], lent)
                    answered.finish()
                if lead is None or not answered.wait(MEET_TIMEOUT_S):     # every distance is in
                    return None
            except BaseException:
                ranked.fail()
                answered.fail()                         # the others stop claiming and waiting
                raise
            if i == 0:
                return lead(out)
            assert helper is not None
            helper(out)
            return None

        # returns once every chunk is answered: a worker that took one is waited for, and raises what it raised
        return out, self.splitter.lead_and_help(rows, rows, settled)

    def _first_stage(self, q: Float32Array, neighbours: np.ndarray, lead: Callable[[Float32Array], R] | None,
                     helper: Callable[[Float32Array], object] | None,
                     settled: Callable[[int], bool] | None = None) -> tuple[Float32Array, R | None]:
        """A lending frame in one compiled call per thread (``kernels.first_stage``): the threads claim blocks of
        rows, each projects, walks (hnswlib's search over ``walk_graph``), ranks and lends its blocks, and once
        every row is ranked, answers blocks from the whole frame's table; they meet by spinning, without the GIL.
        A row's answer depends on no block or thread. Where the frame splits, the caller and each worker go on
        to ``lead`` and ``helper`` as in ``_lend_split``; a worker that starts after the caller is done finds no
        block left and goes straight on."""
        assert self.kernels is not None and self.walk_graph is not None
        kernels, graph, n, k = self.kernels, self.walk_graph, len(q), self.candidates
        stage = kernels.stage_state()
        lent = np.empty((n, self.lend), dtype=np.int64)
        labels = np.empty((n, k), dtype=np.uint64)
        rank = np.empty((n, k), dtype=np.float32)
        out = np.empty(n, dtype=np.float32)

        split = self.splitter.splits(n)
        wake = self.splitter.wake if split else None

        def part(i: int = 0) -> R | None:
            scratch, projected = self._walk_buffers()
            kernels.first_stage(stage, graph, q, self.projection, self.ef, k, self.bank, self.norms,
                                neighbours, lent, labels, rank, out, scratch, projected, MEET_TIMEOUT_S,
                                wake=wake if i == 0 else None)
            if i == 0:
                return None if lead is None else lead(out)
            if helper is not None:
                helper(out)
            return None

        if not split:
            return out, part()
        # nothing here calls BLAS (the projection is in the compiled call): its pool is left as it is; the caller's
        # compiled call starts a worker waiting on its CPU once the GIL is free
        return out, self.splitter.lead_and_help(part, part, settled, blas_one=False, lead_wakes=True)

    def _walk_buffers(self) -> tuple[WalkScratch, Float32Array]:
        """This thread's walk scratch (visited tags over the whole graph, heaps for ``ef``) and projection rows,
        kept between frames."""
        assert self.kernels is not None and self.walk_graph is not None
        kept: tuple[WalkScratch, Float32Array] | None = getattr(self._buffers, "walk", None)
        if kept is None or kept[0].ef < self.ef:
            kept = self._buffers.walk = (WalkScratch(self.walk_graph.count, self.ef),
                                         np.empty((self.kernels.stage_rows, self.dims), dtype=np.float32))
        return kept

    def _lend_rows(self, q: Float32Array, neighbours: np.ndarray, cut: tuple[int, int],
                   walk_threads: int) -> Float32Array:
        """Answers for the rows ``cut`` (start, stop) of the frame ``q``: walk them and one grid row either side,
        rank each walk's rows, then re-rank each row's own rows with the best ``lend`` of each neighbour's."""
        assert self.grid is not None
        s, e = cut
        lo, hi = max(0, s - self.grid[1]), min(len(q), e + self.grid[1])
        labels = self.candidate_rows(q[lo:hi], walk_threads)
        rank = self._rank(q[lo:hi], labels)
        best = (labels[np.arange(hi - lo), rank.argmin(1)][:, None] if self.lend == 1 else
                np.take_along_axis(labels, np.argpartition(rank, self.lend - 1, axis=1)[:, :self.lend], axis=1))
        lent = best[neighbours[s:e] - lo].reshape(e - s, 4 * self.lend)
        own = slice(s - lo, e - lo)
        return self._winner_distance(q[s:e], np.concatenate([labels[own], lent], axis=1),
                                     np.concatenate([rank[own], self._rank(q[s:e], lent)], axis=1))

    def _rerank(self, q: Float32Array, labels: np.ndarray) -> Float32Array:
        """Smallest full-dimension L2 distance from each query to its candidate rows. The candidates are ranked by
        ``|b|² − 2q·b`` (one batched mat-vec over the gathered rows, no difference array), and the answer is the
        winner's distance by differences: the distance to a real bank row to float32 rounding, so it can only be
        above the exact nearest-neighbour distance, never below it by cancellation. Where two candidates tie
        within rounding the ranking may pick either; the answer is still a true distance to that row."""
        if self.kernels is not None:
            return self.kernels.rerank(q, labels, self.bank, self.norms)
        return self._winner_distance(q, labels, self._rank(q, labels))

    def _winner_distance(self, q: Float32Array, labels: np.ndarray, rank: Float32Array) -> Float32Array:
        """The full-dimension distance from each query to its best-ranked row, by differences."""
        winners = labels[np.arange(len(labels)), rank.argmin(1)]
        diff = np.take(self.bank, winners, axis=0)
        diff -= q
        out: Float32Array = np.einsum("ij,ij->i", diff, diff)
        return np.sqrt(out, out=out)

    def _rank(self, q: Float32Array, labels: np.ndarray) -> Float32Array:
        """``|b|² − 2q·b`` of each query's rows ``labels [n, k]``, the order of their distances to it.

        The loop over row blocks does only the gather, the mat-vec and the sum; the ranking, the winners and their
        distances are whole-array calls after it. Each numpy call retakes the GIL, and with two threads re-ranking
        at once every extra small call in the loop is a hand-off between them."""
        n_rows, k = labels.shape
        rank: Float32Array = np.take(self.norms, labels)                         # |b|², [n, k]
        minus_2q = q * np.float32(-2.0)                                          # exact: a power of two
        gathered, products = self._buffers_for_thread(k)
        step = len(gathered)
        for s in range(0, n_rows, step):
            e = min(s + step, n_rows)
            block = gathered[:e - s]
            # "clip" changes no value: the labels are bank row numbers, and the take of the norms above has
            # already checked them; it only skips numpy's buffered copy
            np.take(self.bank, labels[s:e], axis=0, out=block, mode="clip")     # [n, k, D]
            np.matmul(block, minus_2q[s:e, :, None], out=products[:e - s])      # −2 q·b, [n, k, 1]
            rank[s:e] += products[:e - s, :, 0]
        return rank

    def _buffers_for_thread(self, k: int) -> tuple[Float32Array, Float32Array]:
        """This thread's gather buffer ``[rows, k, D]`` (``GATHER_BYTES`` of float32 rows, at least one query's) and
        product buffer for ``k`` rows per query, kept between frames: a fresh 1.5 MB array per call is a fresh
        mmap, and its page faults cost as much as the gather itself."""
        kept: dict[int, tuple[Float32Array, Float32Array]] | None = getattr(self._buffers, "rerank", None)
        if kept is None:
            kept = self._buffers.rerank = {}
        buffers = kept.get(k)
        if buffers is None:
            rows = max(1, GATHER_BYTES // (k * self.dim * 4))
            buffers = kept[k] = (np.empty((rows, k, self.dim), dtype=np.float32),
                                 np.empty((rows, k, 1), dtype=np.float32))
        return buffers

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "ef": self.ef, "projected_dims": self.dims, "candidates": self.candidates,
                "lend": self.lend, "kernels": "numpy" if self.kernels is None else "compiled",
                "walk": "hnswlib" if self.walk_graph is None else "compiled"}

    def close(self) -> None:
        self.splitter.close()
