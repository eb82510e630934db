"""The compiled inner loops of the projected, bounded and refined searches (``_kernels.c``), through ctypes.

ctypes releases the GIL for the length of each call, so the threads that split a frame run these loops at once:
numpy's per-call GIL hand-offs were the part of a frame that two threads did not split. ``compiled_kernels()`` is
None where the extension was not built (``pip install`` builds it; a checkout run without installing has none) or
was built from another version of ``_kernels.c``: the searches then run their numpy code, which gives the same
answers, and ``describe()`` says ``"kernels": "numpy"``.

Each wrapper checks shapes and dtypes before the call (the C code trusts the sizes it is given) and turns the C
code's error codes into ``InputError``s that say what was expected.
"""
from __future__ import annotations

import ctypes
import functools
import importlib.util
import logging

import numpy as np

from ...errors import BundleError, InputError, ResourceError
from ..arrays import Float32Array
from .hnsw_graph import HnswGraph

_BAD_LABEL, _BAD_NEIGHBOUR, _BAD_LEND, _BAD_KERNEL, _SHORT_WALK, _STAGE_TIMEOUT = -1, -2, -3, -4, -5, -6
# The version of _kernels.c's interface this module calls (its TK_INTERFACE).
INTERFACE = 6

log = logging.getLogger(__name__)


class _Graph(ctypes.Structure):
    """``tk_graph``: an ``HnswGraph``'s arrays and numbers as the C walk reads them."""
    _fields_ = [("level0", ctypes.c_void_p), ("upper", ctypes.c_void_p), ("upper_at", ctypes.c_void_p),
                *((name, ctypes.c_int64) for name in ("count", "per_element", "data_at", "label_at", "per_upper",
                                                      "dim", "max_level", "entry"))]


class WalkGraph:
    """An ``HnswGraph`` ready for the C walk: the structure it reads, and the arrays it points into (kept alive)."""

    def __init__(self, graph: HnswGraph):
        self.graph = graph
        level0 = np.ascontiguousarray(graph.level0)
        upper = np.ascontiguousarray(graph.upper) if graph.upper.size else np.zeros(4, dtype=np.uint8)
        upper_at = np.ascontiguousarray(graph.upper_at, dtype=np.int64)
        self._arrays = (level0, upper, upper_at)
        self.struct = _Graph(_pointer(level0), _pointer(upper), _pointer(upper_at), graph.count, graph.per_element,
                             graph.data_at, graph.label_at, graph.per_upper, graph.dim, graph.max_level, graph.entry)
        self.address = ctypes.addressof(self.struct)

    @property
    def count(self) -> int:
        return self.graph.count

    @property
    def dim(self) -> int:
        return self.graph.dim


class WalkScratch:
    """One thread's memory for the C walk: the visited tags of every element, the last tag used, both heaps."""

    def __init__(self, count: int, ef: int):
        self.ef = int(ef)
        self.visited = np.zeros(count, dtype=np.uint32)
        self.tag = np.zeros(1, dtype=np.uint32)
        self.heaps = np.empty(self.ef + 1 + count + 1, dtype=np.uint64)       # (float, uint32) pairs


def _pointer(a: np.ndarray) -> int:
    """The address of ``a``'s first element (a plain int: ``ctypes.data_as`` builds objects worth tens of
    microseconds a frame; the caller keeps ``a`` alive for the call)."""
    address: int = a.ctypes.data
    return address


class CompiledKernels:
    """The loaded library's loops: the re-rank (two steps), the bounded pass, the smoothed-max loop."""

    def __init__(self, library: ctypes.CDLL, path: str):
        self.path = path
        i64, ptr = ctypes.c_int64, ctypes.c_void_p
        self._rank_and_lend = library.tk_rank_and_lend
        self._rank_and_lend.restype = ctypes.c_int64
        self._rank_and_lend.argtypes = [ptr, i64, i64, ptr, i64, ptr, ptr, i64, i64, ptr, ptr]
        self._answer = library.tk_answer
        self._answer.restype = ctypes.c_int64
        self._answer.argtypes = [ptr, i64, i64, ptr, i64, ptr, ptr, ptr, i64, ptr, ptr, i64, i64, ptr]
        self._nearest = library.tk_bounded_nearest
        self._nearest.restype = ctypes.c_int64
        self._nearest.argtypes = [ptr, i64, i64, ptr, i64, ptr, i64, ptr, ptr, ctypes.c_float, ctypes.c_float, ptr,
                                  ptr]
        self._block_rows = library.tk_block_rows
        self._block_rows.restype = None
        self._block_rows.argtypes = [ptr, i64, i64, ptr]
        library.tk_block_size.restype = ctypes.c_int64
        self.block = int(library.tk_block_size())
        self._smoothed_max = library.tk_smoothed_max
        self._smoothed_max.restype = ctypes.c_int64
        self._smoothed_max.argtypes = [ptr, i64, i64, i64, i64, ptr, ptr, i64, ctypes.c_float, ptr, ptr, i64, ptr,
                                       i64, ptr, ctypes.c_float, ctypes.c_float, ptr, ptr, ptr, ptr, ptr]
        self._smoothed_max_scratch = library.tk_smoothed_max_scratch
        self._smoothed_max_scratch.restype = ctypes.c_int64
        self._smoothed_max_scratch.argtypes = [i64, i64, i64, i64]
        self._help = library.tk_smoothed_max_help
        self._help.restype = ctypes.c_int64
        self._help.argtypes = [ptr, ptr]
        self._finish = library.tk_split_finish
        self._finish.restype = None
        self._finish.argtypes = [ptr]
        library.tk_split_size.restype = ctypes.c_int64
        self._split_size = int(library.tk_split_size())
        library.tk_walks.restype = ctypes.c_int64
        self.walks = bool(library.tk_walks())
        self._graph_walk = library.tk_graph_walk
        self._graph_walk.restype = ctypes.c_int64
        self._graph_walk.argtypes = [ptr, ptr, i64, i64, i64, ptr, ptr, ptr, ptr]
        self._first_stage = library.tk_first_stage
        self._first_stage.restype = ctypes.c_int64
        self._first_stage.argtypes = [ptr, ptr, ptr, i64, i64, ptr, i64, i64, ptr, ptr, i64, i64, ptr, ptr, ptr, ptr,
                                      ptr, ptr, ptr, ptr, ptr, ptr, ptr, i64]
        self._idle_wait = library.tk_idle_wait
        self._idle_wait.restype = ctypes.c_int64
        self._idle_wait.argtypes = [ptr, i64, i64]
        library.tk_stage_size.restype = ctypes.c_int64
        self._stage_size = int(library.tk_stage_size())
        library.tk_stage_rows.restype = ctypes.c_int64
        self.stage_rows = int(library.tk_stage_rows())       # rows a thread of a split first stage claims at a time

    def rank_and_lend(self, q: Float32Array, labels: np.ndarray, bank: Float32Array, norms: Float32Array,
                      lent: np.ndarray | None) -> Float32Array:
        """Rank each query's candidate rows ``labels [n, k]`` by ``|b|² − 2 q·b`` (returned, ``[n, k]``) and, with
        ``lent`` (``[n, lend]`` int64, written), keep each query's ``lend`` best rows in it, best first. The first
        half of ``ProjectedSearch._lend_rows``."""
        n, dim = q.shape
        labels = _labels(labels)
        k = labels.shape[1] if labels.ndim == 2 else -1
        lend = 0 if lent is None else (lent.shape[1] if lent.ndim == 2 else -1)
        _check(q, (n, dim), np.float32, "queries")
        _check(labels, (n, k), np.uint64, "candidate rows")
        _check(bank, (len(bank), dim), np.float32, "bank")
        _check(norms, (len(bank),), np.float32, "bank norms")
        if lent is not None:
            _check(lent, (n, lend), np.int64, "lent rows")
        rank = np.empty((n, k), dtype=np.float32)
        code = self._rank_and_lend(_pointer(q), n, dim, _pointer(labels), k, _pointer(bank), _pointer(norms), len(bank),
                                   lend, _pointer(rank), None if lent is None else _pointer(lent))
        if code < 0:
            _raise(code, entries=len(bank), rows=n)
        return rank

    def answer(self, q: Float32Array, labels: np.ndarray, rank: Float32Array, bank: Float32Array,
               norms: Float32Array, neighbours: np.ndarray | None, lent: np.ndarray | None) -> Float32Array:
        """The distance from each query to the best-ranked of its candidates (``labels``, ``rank`` from
        ``rank_and_lend``) and of the rows its ``neighbours [n, 4]`` lend (row numbers into ``lent``, the whole
        frame's ``[rows, lend]``; both None without lending). The second half of ``ProjectedSearch._lend_rows``."""
        n, dim = q.shape
        labels = _labels(labels)
        k = labels.shape[1] if labels.ndim == 2 else -1
        _check(q, (n, dim), np.float32, "queries")
        _check(labels, (n, k), np.uint64, "candidate rows")
        _check(rank, (n, k), np.float32, "candidate ranks")
        _check(bank, (len(bank), dim), np.float32, "bank")
        _check(norms, (len(bank),), np.float32, "bank norms")
        lend, lent_rows, lent_at, neighbours_at = 0, 0, None, None
        if lent is not None and neighbours is not None:
            lent_rows, lend = lent.shape if lent.ndim == 2 else (-1, -1)
            _check(lent, (lent_rows, lend), np.int64, "lent rows")
            _check(neighbours, (n, 4), np.int64, "grid neighbours")
            lent_at, neighbours_at = _pointer(lent), _pointer(neighbours)
        out = np.empty(n, dtype=np.float32)
        code = self._answer(_pointer(q), n, dim, _pointer(labels), k, _pointer(rank), _pointer(bank), _pointer(norms),
                            len(bank), neighbours_at, lent_at, lent_rows, lend, _pointer(out))
        if code < 0:
            _raise(code, entries=len(bank), rows=lent_rows)
        return out

    def rerank(self, q: Float32Array, labels: np.ndarray, bank: Float32Array, norms: Float32Array) -> Float32Array:
        """The distance from each query to the best-ranked of its candidates (no lending)."""
        return self.answer(q, labels, self.rank_and_lend(q, labels, bank, norms, None), bank, norms, None, None)

    def block_rows(self, matrix: Float32Array) -> Float32Array:
        """``matrix [rows, k]`` (a bank share's bound coordinates) in the blocked layout ``bounded_nearest`` reads:
        ``[ceil(rows / block), k, block]``, the last block padded with zeros."""
        rows, k = matrix.shape
        source = np.ascontiguousarray(matrix, dtype=np.float32)
        blocked = np.empty((-(-rows // self.block), k, self.block), dtype=np.float32)
        self._block_rows(_pointer(source), rows, k, _pointer(blocked))
        return blocked

    def bounded_nearest(self, blocked: Float32Array, rows: int, qa: Float32Array, q: Float32Array,
                        bank_rows: Float32Array, q_sq: Float32Array, largest_sq: float, rtol: float,
                        best: Float32Array) -> int:
        """Lower ``best [n]`` (squared distances, in place) to the nearest of ``bank_rows [rows, D]`` that the
        bound (``blocked``: ``block_rows`` of the share's coordinates; ``qa [n, k]``, ``q_sq [n]``) cannot rule
        out; how many full distances that took. What ``BoundedExactSearch._nearest_in_rows`` computes with numpy
        and ONNX Runtime."""
        n, k = qa.shape
        dim = q.shape[1]
        _check(blocked, (-(-rows // self.block), k, self.block), np.float32, "blocked bound rows")
        _check(qa, (n, k), np.float32, "bound coordinates")
        _check(q, (n, dim), np.float32, "queries")
        _check(bank_rows, (rows, dim), np.float32, "bank rows")
        _check(q_sq, (n,), np.float32, "query norms")
        _check(best, (n,), np.float32, "best distances")
        scratch = np.empty(n * (k + 1), dtype=np.float32)
        checked = self._nearest(_pointer(qa), n, k, _pointer(blocked), rows, _pointer(q), dim, _pointer(bank_rows),
                                _pointer(q_sq), float(largest_sq), float(rtol), _pointer(best), _pointer(scratch))
        return int(checked)

    def smoothed_max(self, embeddings: Float32Array, upper: Float32Array, grid: tuple[int, int, int],
                     kernel: Float32Array, refine_rtol: float, center: Float32Array, directions: Float32Array,
                     blocked: Float32Array, bank: Float32Array, largest_sq: float,
                     bound_rtol: float, split: np.ndarray | None = None) -> tuple[float, int, int]:
        """The ``smoothed-max`` image score of one image's patches ``embeddings [P, D]`` from the first stage's
        distances ``upper [P]``, exact: ``RefinedSearch.max_smoothed`` with a ``BoundedExactSearch`` over the
        whole bank (``center``, ``directions``, ``blocked``: its lift and blocked bound rows), in one call. Returns
        the score, the patches re-checked and the full rows computed (the helpers' too). ``split``: a
        ``split_state()`` shared with threads in ``help`` (they take chunks of each pass over the bank); the call
        ends their wait when it returns, and when it raises before the loop starts."""
        tiles, h, w = (int(v) for v in grid)
        patches, dim = embeddings.shape
        p = directions.shape[1] if directions.ndim == 2 else -1
        entries = len(bank)
        radius = len(kernel) // 2
        if split is not None:
            _check(split, (self._split_size,), np.uint8, "split state (split_state())")
        try:
            _check(embeddings, (tiles * h * w, dim), np.float32, "patch embeddings")
            _check(upper, (patches,), np.float32, "first-stage distances")
            _check(kernel, (2 * radius + 1,), np.float32, "score kernel")
            _check(center, (dim,), np.float32, "bank centre")
            _check(directions, (dim, p), np.float32, "principal directions")
            _check(blocked, (-(-entries // self.block), p + 2, self.block), np.float32, "blocked bound rows")
            _check(bank, (entries, dim), np.float32, "bank")
        except BaseException:
            if split is not None:
                self.finish(split)         # the helpers stop waiting for a loop that will not run
            raise
        scratch = np.empty(int(self._smoothed_max_scratch(patches, dim, p, radius)), dtype=np.float32)
        exact = np.empty(patches, dtype=np.uint8)
        score = np.zeros(1, dtype=np.float64)
        counts = np.zeros(2, dtype=np.int64)
        code = self._smoothed_max(_pointer(embeddings), tiles, h, w, dim, _pointer(upper), _pointer(kernel), radius,
                                  float(refine_rtol), _pointer(center), _pointer(directions), p, _pointer(blocked),
                                  entries, _pointer(bank), float(largest_sq), float(bound_rtol), _pointer(scratch),
                                  _pointer(exact), _pointer(score), _pointer(counts),
                                  None if split is None else _pointer(split))
        if code < 0:
            _raise(code, entries=entries, rows=patches)
        return float(score[0]), int(counts[0]), int(counts[1])

    def split_state(self) -> np.ndarray:
        """A fresh state for one ``smoothed_max`` call split with ``help`` threads (zeroed memory; the caller keeps
        it alive until every thread has returned)."""
        return np.zeros(self._split_size, dtype=np.uint8)

    def help(self, split: np.ndarray, kernel_taps: int, kdim: int) -> int:
        """Take chunks of each pass of the ``smoothed_max`` call that shares ``split`` until it returns (a
        ``kernel_taps``-tap kernel, ``kdim`` bound coordinates per row). Returns the full rows computed here, or -1
        where that call's loop never started (its thread failed before it; the helper gives up after a second)."""
        if split.dtype != np.uint8 or split.shape != (self._split_size,):
            raise InputError("the split state has the wrong layout", expected=f"uint8 [{self._split_size}] "
                             "(split_state())", got=f"{split.dtype} {list(split.shape)}")
        scratch = np.empty(kernel_taps * kernel_taps * (kdim + 2), dtype=np.float32)
        return int(self._help(_pointer(split), _pointer(scratch)))

    def finish(self, split: np.ndarray) -> None:
        """End the ``help`` threads' wait on ``split`` (where the loop's thread failed before its call)."""
        self._finish(_pointer(split))


    def graph_walk(self, graph: WalkGraph, queries: Float32Array, ef: int, k: int,
                   scratch: WalkScratch) -> np.ndarray:
        """Each of ``queries [n, graph.dim]``'s ``k`` nearest graph rows by hnswlib's own search with ``ef``
        candidates, uint64 ``[n, k]``, nearest first: what hnswlib's ``knn_query`` returns for them."""
        n = len(queries)
        _check(queries, (n, graph.dim), np.float32, "projected queries")
        _check_walk(graph, ef, k, scratch)
        labels = np.empty((n, k), dtype=np.uint64)
        code = self._graph_walk(graph.address, _pointer(queries), n, int(ef), int(k), _pointer(scratch.visited),
                                _pointer(scratch.tag), _pointer(scratch.heaps), _pointer(labels))
        if code < 0:
            _raise(code, entries=graph.count, rows=n)
        return labels

    def stage_state(self) -> np.ndarray:
        """A fresh state for one frame's ``first_stage`` (zeroed; the caller keeps it alive until every thread of
        the frame has returned)."""
        return np.zeros(self._stage_size, dtype=np.uint8)

    def first_stage(self, stage: np.ndarray, graph: WalkGraph, q: Float32Array, projection: Float32Array, ef: int,
                    k: int, bank: Float32Array, norms: Float32Array, neighbours: np.ndarray | None,
                    lent: np.ndarray | None, labels: np.ndarray, rank: Float32Array, out: Float32Array,
                    scratch: WalkScratch, projected: Float32Array, timeout_s: float,
                    wake: np.ndarray | None = None) -> None:
        """This thread's part of a frame's first stage (``ProjectedSearch._first_stage``): blocks of ``q [n, D]``'s
        rows, claimed through ``stage`` from every thread that calls this with it, projected, walked, ranked and
        (with ``lent [n, lend]``) lent to their ``neighbours [n, 4]``; then, once every row is ranked, blocks
        answered into ``out [n]``. ``labels``, ``rank``: the frame's ``[n, k]``; ``scratch``, ``projected``
        (``[stage_rows, d]``): this thread's. ``wake``: a pool's wake word (``idle_wait``), changed once the call
        holds no GIL (the caller's call only). Returns once every row is answered; raises what any thread met."""
        n, dim = q.shape
        d = graph.dim
        lend = 0 if lent is None else (lent.shape[1] if lent.ndim == 2 else -1)
        _check(stage, (self._stage_size,), np.uint8, "stage state (stage_state())")
        _check(q, (n, dim), np.float32, "queries")
        _check(projection, (dim + 1, d), np.float32, "projection")
        _check(bank, (graph.count, dim), np.float32, "bank")
        _check(norms, (graph.count,), np.float32, "bank norms")
        _check(labels, (n, k), np.uint64, "candidate rows")
        _check(rank, (n, k), np.float32, "candidate ranks")
        _check(out, (n,), np.float32, "distances")
        _check(projected, (self.stage_rows, d), np.float32, "projection scratch")
        _check_walk(graph, ef, k, scratch)
        if lent is not None:
            _check(lent, (n, lend), np.int64, "lent rows")
            assert neighbours is not None
            _check(neighbours, (n, 4), np.int64, "grid neighbours")      # their values: checked in C
        walked = np.empty(-(-n // self.stage_rows), dtype=np.int64)     # the blocks this thread walks
        if wake is not None:
            _check(wake, (1,), np.int64, "wake word")
        code = self._first_stage(_pointer(stage), graph.address, _pointer(q), n, dim, _pointer(projection), int(ef),
                                 int(k), _pointer(bank), _pointer(norms), graph.count, lend,
                                 None if neighbours is None else _pointer(neighbours),
                                 None if lent is None else _pointer(lent), _pointer(labels), _pointer(rank),
                                 _pointer(out), _pointer(scratch.visited), _pointer(scratch.tag),
                                 _pointer(scratch.heaps), _pointer(projected), _pointer(walked),
                                 None if wake is None else _pointer(wake), int(timeout_s * 1e9))
        if code == _STAGE_TIMEOUT:
            raise split_frame_timeout(timeout_s)
        if code < 0:
            _raise(code, entries=graph.count, rows=n)


    def idle_wait(self, word: np.ndarray, seen: int, spin_s: float) -> bool:
        """Wait on this CPU, without the GIL, until ``word`` (int64 ``[1]``) is no longer ``seen``; False after
        ``spin_s`` seconds (``tk_idle_wait``: a pool worker between jobs)."""
        _check(word, (1,), np.int64, "wake word")
        return bool(self._idle_wait(_pointer(word), int(seen), int(spin_s * 1e9)))


def split_frame_timeout(timeout_s: float) -> ResourceError:
    """The error of a split frame whose meeting waited ``timeout_s`` for a part another thread had taken (that
    thread stopped by the system): ``Chunks.wait``'s and the compiled first stage's."""
    return ResourceError("a thread of a split frame did not finish its part in time",
                         expected=f"every part within {timeout_s:g} s", got="a part still running",
                         fix="check the machine's load; threads=1 runs the frame on one thread")


def _check_walk(graph: WalkGraph, ef: int, k: int, scratch: WalkScratch) -> None:
    if not 1 <= k <= min(64, ef, graph.count) or scratch.ef < ef or scratch.visited.shape != (graph.count,):
        raise InputError("the graph walk's sizes do not fit", expected=f"1 <= k <= ef, k <= 64 and k <= "
                         f"{graph.count} rows, scratch for ef >= {ef} over {graph.count} rows",
                         got=f"k={k}, ef={ef}, scratch for ef {scratch.ef} over {len(scratch.visited)} rows")


def _check(a: np.ndarray, shape: tuple[int, ...], dtype: type, what: str) -> None:
    if a.shape != shape or a.dtype != dtype or not a.flags.c_contiguous:
        raise InputError(f"the search kernel's {what} have the wrong layout",
                         expected=f"C-contiguous {np.dtype(dtype).name} {list(shape)}",
                         got=f"{'C-contiguous' if a.flags.c_contiguous else 'strided'} {a.dtype} {list(a.shape)}")


def _labels(labels: np.ndarray) -> np.ndarray:
    """hnswlib's labels are uint64 and C-contiguous already; anything else is converted (and then checked)."""
    if labels.dtype != np.uint64 and labels.dtype.kind in "iu":
        labels = labels.astype(np.uint64)
    return np.ascontiguousarray(labels)


def _raise(code: int, *, entries: int, rows: int) -> None:
    if code == _BAD_LABEL:
        raise BundleError("the search index returned a row the memory bank does not have",
                          expected=f"bank row numbers 0 .. {entries - 1}", got="a row outside them",
                          fix="re-export the bundle (its index and coreset do not match)")
    if code == _BAD_NEIGHBOUR:
        raise InputError("a grid neighbour lies outside the frame's rows", expected=f"row numbers 0 .. {rows - 1}",
                         got="a row outside them")
    if code == _SHORT_WALK:
        raise BundleError("the HNSW graph gave a query fewer rows than it asked for", expected="as many rows as "
                          "the search's candidates", got="fewer (hnswlib refuses such a query too)",
                          fix="re-export the bundle, or a larger ef")
    if code == _BAD_KERNEL:
        raise InputError("the smoothed-max score's kernel is too wide", expected="at most 31 taps (15 each side)",
                         got="a wider kernel", fix="a smaller gaussian_sigma in the bundle's scoring")
    raise InputError("the search kernel refused its arguments", expected="0 <= lend <= candidates <= 64",
                     got=f"error code {code}")


@functools.lru_cache(maxsize=1)
def compiled_kernels() -> CompiledKernels | None:
    """The compiled loops, or None where the extension was not built or was built from another version of
    ``_kernels.c`` (the searches then run their numpy code, and say so in a warning and in ``describe()``)."""
    spec = importlib.util.find_spec(f"{__package__}._kernels")
    if spec is None or not spec.origin:
        return None
    library = ctypes.CDLL(spec.origin)
    version = getattr(library, "tk_interface", None)
    if version is not None:
        version.restype = ctypes.c_int64
    found = int(version()) if version is not None else None
    if found != INTERFACE:
        log.warning("the compiled search loops at %s are out of date (interface %s, this version needs %d): the "
                    "searches run their numpy code; rebuild them with pip install -e . (or reinstall)", spec.origin,
                    found, INTERFACE)
        return None
    return CompiledKernels(library, spec.origin)
