"""The compiled search loops (runtime/search/_kernels.c through kernels.py) against the numpy code they replace and
against float64 brute force: the same answers, any number of threads at once, and bad input refused before the C
code reads it."""
import os
import threading
import time

import numpy as np
import pytest

from tocoad_edge.errors import BundleError, InputError
from tocoad_edge.runtime.search.bounded import BoundedExactSearch
from tocoad_edge.runtime.search.kernels import compiled_kernels
from tocoad_edge.runtime.search.projected import ProjectedSearch, grid_neighbours
from tocoad_edge.runtime.search.refined import bounded_refined_search

from search_helpers import grid_queries as _grid_queries
from search_helpers import projected_bank_and_index
from search_helpers import true_nn as _true_nn


@pytest.fixture(scope="module")
def kernels():
    k = compiled_kernels()
    assert k is not None, "the search kernels were not built: pip install -e . builds them (it needs a C compiler)"
    return k


@pytest.fixture(scope="module")
def bank_and_index(tmp_path_factory):
    return projected_bank_and_index(tmp_path_factory.mktemp("kernels"), rows=2500, dim=40, rank=10, dims=6, seed=21)


def test_the_kernels_are_built_and_reported(kernels, bank_and_index):
    bank, projection, path = bank_and_index
    assert kernels.path.endswith(".so")
    assert ProjectedSearch(bank, path, projection, threads=1).describe()["kernels"] == "compiled"
    assert BoundedExactSearch(bank, threads=1).describe()["kernels"] == "compiled"
    assert BoundedExactSearch(bank, threads=1, compiled=False).describe()["kernels"] == "numpy"
    refined = bounded_refined_search(ProjectedSearch(bank, path, projection, threads=1), bank, 1).describe()
    assert refined["approx"]["kernels"] == refined["exact"]["kernels"] == "compiled"


@pytest.mark.parametrize("lend, candidates", [(0, 8), (1, 4), (2, 8), (3, 3)])
@pytest.mark.parametrize("threads", [1, 2])
def test_compiled_and_numpy_re_ranks_give_the_same_distances(bank_and_index, lend, candidates, threads):
    bank, projection, path = bank_and_index
    h, w = 9, 11
    q = _grid_queries(bank, 3, h, w, seed=lend * 10 + candidates)
    kw = dict(ef=candidates, candidates=candidates, lend=lend, grid=(h, w) if lend else None, threads=threads)
    compiled = ProjectedSearch(bank, path, projection, compiled=True, **kw)
    reference = ProjectedSearch(bank, path, projection, compiled=False, **kw)
    got, want = compiled.query(q), reference.query(q)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert np.all(got >= _true_nn(bank, q) * (1 - 1e-5))
    compiled.close()
    reference.close()


@pytest.mark.parametrize("queries", [1, 2, 3, 5, 9, 40])
@pytest.mark.parametrize("threads", [1, 2])
def test_the_compiled_bound_gives_exact_distances_with_fewer_full_rows(bank_and_index, queries, threads):
    """Same exact answers as ONNX Runtime's bound with numpy's survivors and as brute force, for every size of the
    last group of queries and for a bank (2500 rows, not a multiple of the block) split over threads; the compiled
    loop tightens its threshold as nearer rows turn up, so it never computes more full distances."""
    bank, _, _ = bank_and_index
    rng = np.random.default_rng(queries)
    q = (bank[rng.integers(0, len(bank), queries)] + 0.2 * rng.standard_normal((queries, bank.shape[1])))
    q = q.astype(np.float32)
    loose = (_true_nn(bank, q) * 1.3).astype(np.float32)          # true distances to no row: upper bounds only
    compiled = BoundedExactSearch(bank, threads=threads, compiled=True)
    reference = BoundedExactSearch(bank, threads=threads, compiled=False)
    got, want = compiled.query_below(q, loose), reference.query_below(q, loose)
    np.testing.assert_allclose(got, _true_nn(bank, q), rtol=1e-5)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert 0 < compiled.rows_checked <= reference.rows_checked
    # without upper bounds the compiled search takes the reference's first guess, and is exact the same way
    np.testing.assert_allclose(compiled.query(q), _true_nn(bank, q), rtol=1e-5)
    compiled.close()
    reference.close()


def test_blocked_rows_hold_the_rows_column_by_column(kernels):
    rows = np.arange(21 * 3, dtype=np.float32).reshape(21, 3)
    blocked = kernels.block_rows(rows)
    b = kernels.block
    assert blocked.shape == (-(-21 // b), 3, b)
    flat = blocked.transpose(0, 2, 1).reshape(-1, 3)              # back to rows, padding rows last
    np.testing.assert_array_equal(flat[:21], rows)
    assert not flat[21:].any()


def test_the_kernels_run_on_several_threads_at_once(kernels, bank_and_index):
    """No shared state: four threads re-ranking different frames at once get each frame's one-thread answer."""
    bank, projection, path = bank_and_index
    search = ProjectedSearch(bank, path, projection, ef=8, candidates=8, lend=2, grid=(9, 11), threads=1)
    frames = [_grid_queries(bank, 1, 9, 11, seed=s) for s in range(8)]
    want = [search.query(f) for f in frames]
    got = [None] * len(frames)

    def work(i):
        for _ in range(20):
            got[i] = search.query(frames[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(frames))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for g, wnt in zip(got, want):
        np.testing.assert_array_equal(g, wnt)


def test_bad_labels_neighbours_and_layouts_are_refused(kernels, bank_and_index):
    bank = np.ascontiguousarray(bank_and_index[0])
    norms = np.einsum("ij,ij->i", bank, bank)
    q = bank[:6].copy()
    labels = np.tile(np.arange(4, dtype=np.uint64), (6, 1))
    nb = grid_neighbours(1, 2, 3)
    lent = np.empty((6, 1), np.int64)
    rank = kernels.rank_and_lend(q, labels, bank, norms, lent)
    np.testing.assert_allclose(kernels.answer(q, labels, rank, bank, norms, nb, lent),
                               np.linalg.norm(bank[:4][None] - q[:, None], axis=2).min(1), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(lent[:4, 0], np.arange(4))       # each of the first rows is its own best
    bad = labels.copy()
    bad[3, 2] = len(bank)
    with pytest.raises(BundleError, match="a row the memory bank does not have") as err:
        kernels.rank_and_lend(q, bad, bank, norms, lent)
    assert f"0 .. {len(bank) - 1}" in str(err.value)
    with pytest.raises(BundleError, match="a row the memory bank does not have"):
        kernels.answer(q, labels, rank, bank, norms, nb, np.full((6, 1), -1, np.int64))
    far = nb.copy()
    far[1, 0] = 6
    with pytest.raises(InputError, match="outside the frame's rows") as err:
        kernels.answer(q, labels, rank, bank, norms, far, lent)
    assert "0 .. 5" in str(err.value)
    with pytest.raises(InputError, match="queries have the wrong layout") as err:
        kernels.rank_and_lend(q[:, ::2], labels, bank, norms, lent)
    assert "float32" in str(err.value) and "strided" in str(err.value)
    with pytest.raises(InputError, match="refused its arguments"):
        kernels.rank_and_lend(q, labels, bank, norms, np.empty((6, 5), np.int64))      # lend 5 of 4 candidates
    with pytest.raises(InputError, match="candidate ranks have the wrong layout"):
        kernels.answer(q, labels, rank[:5], bank, norms, nb, lent)
    blocked = kernels.block_rows(np.ones((5, 3), np.float32))
    args = (np.ones((2, 3), np.float32), q[:2], bank[:5], np.zeros(2, np.float32), 1.0, 1e-5, np.ones(2, np.float32))
    with pytest.raises(InputError, match="blocked bound rows have the wrong layout") as err:
        kernels.bounded_nearest(blocked, kernels.block + 1, *args)    # blocked for 5 rows: one block, not two
    assert f"[2, 3, {kernels.block}]" in str(err.value) and f"[1, 3, {kernels.block}]" in str(err.value)
    with pytest.raises(InputError, match="bound coordinates have the wrong layout"):
        kernels.bounded_nearest(blocked, 5, np.ones((2, 3), np.float64), *args[1:])
    assert kernels.bounded_nearest(blocked, 5, *args) >= 0


@pytest.mark.parametrize("failing", ["first", "second"])
def test_a_thread_that_fails_in_a_split_frame_raises_its_own_error_and_the_other_does_not_wait(bank_and_index,
                                                                                             monkeypatch, failing):
    """The threads of a split frame meet once, when every chunk is walked; when the thread walking the first or
    the second chunk fails before that, the other stops waiting and the caller gets the failing thread's error."""
    import tocoad_edge.runtime.search.projected as projected

    bank, projection, path = bank_and_index
    search = ProjectedSearch(bank, path, projection, ef=8, candidates=8, lend=2, grid=(9, 11), threads=2)
    q = _grid_queries(bank, 2, 9, 11, seed=3)
    want = search.query(q)
    walk = search.candidate_rows

    first = q[0] if failing == "first" else q[len(q) // 2]          # the chunks are the frame's halves

    def failing_half(rows, threads=-1):
        if len(rows) < len(q) and np.array_equal(rows[0], first):
            raise MemoryError("no memory for the walk")
        return walk(rows, threads)

    monkeypatch.setattr(search, "candidate_rows", failing_half)
    monkeypatch.setattr(projected, "MEET_TIMEOUT_S", 60.0)        # the test fails by hanging, never by timing out
    with pytest.raises(MemoryError, match="no memory for the walk"):
        search.query(q)
    monkeypatch.setattr(search, "candidate_rows", walk)
    np.testing.assert_array_equal(search.query(q), want)           # the search still works after the failure
    search.close()


def test_a_library_from_another_version_of_the_loops_is_not_used(kernels, monkeypatch, caplog):
    """An editable install whose extension was not rebuilt after an update: the searches run numpy, and say why."""
    import tocoad_edge.runtime.search.kernels as module

    monkeypatch.setattr(module, "INTERFACE", module.INTERFACE + 1)
    module.compiled_kernels.cache_clear()
    try:
        with caplog.at_level("WARNING", logger=module.__name__):
            assert module.compiled_kernels() is None
        assert "out of date" in caplog.text and "pip install -e ." in caplog.text
    finally:
        monkeypatch.undo()
        module.compiled_kernels.cache_clear()
    assert module.compiled_kernels() is not None


def _smoothed_max_case(kernels, seed, rows=20000, dim=48):
    """A bank of ``rows`` (about 20 chunks of a shared pass), a search over it, and one image's patches with loose
    upper bounds (the exact distances raised by up to 30 %, so several passes re-check cells)."""
    from tocoad_edge.runtime.scoring import score_kernel

    rng = np.random.default_rng(seed)
    bank = rng.standard_normal((rows, dim)).astype(np.float32)
    search = BoundedExactSearch(bank, threads=1, prefix_dims=24)
    grid = (1, 12, 14)
    n = int(np.prod(grid))
    emb = (bank[rng.integers(0, rows, n)] + 0.5 * rng.standard_normal((n, dim))).astype(np.float32)
    emb[rng.integers(0, n)] += 3.0
    exact = _true_nn(bank, emb).astype(np.float32)
    upper = (exact * (1 + 0.3 * rng.random(n))).astype(np.float32)
    kernel = np.ascontiguousarray(score_kernel("smoothed-max", 4.0, 8), dtype=np.float32)
    args = (emb, upper, grid, kernel, 1e-3, search.center, search.directions, search._blocked_rows, search.bank,
            search.largest_sq, 1e-5)
    return search, exact, args


def _help(kernels, split, ready, rows, taps, kdim, cpu):
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})          # this thread only (Linux)
    ready.wait()
    rows.append(kernels.help(split, taps, kdim))


@pytest.fixture()
def own_cpus():
    """The loop's thread on the first CPU and the helpers on the second, where this process has two: left to the
    scheduler, a helper that spins waiting for the loop's first pass can share the loop's CPU for the whole loop
    (a loop here takes under a millisecond), and would then rarely take a chunk. None where there is one CPU."""
    if not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2:
        yield None
        return
    before = os.sched_getaffinity(0)
    cpus = sorted(before)
    os.sched_setaffinity(0, {cpus[0]})
    try:
        yield cpus[1]
    finally:
        os.sched_setaffinity(0, before)


def _shared_run(kernels, search, args, helpers, cpu):
    """One smoothed-max loop shared with ``helpers`` threads: its result and the rows each helper computed."""
    split = kernels.split_state()
    ready = threading.Barrier(helpers + 1)
    rows: list[int] = []
    threads = [threading.Thread(target=_help, args=(kernels, split, ready, rows, len(args[3]),
                                                     search.prefix_dims + 2, cpu)) for _ in range(helpers)]
    for t in threads:
        t.start()
    ready.wait()
    time.sleep(0.002)               # the helpers are waiting in the library when the first pass starts
    shared = kernels.smoothed_max(*args, split=split)
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive()
    return shared, rows


@pytest.mark.parametrize("helpers", [1, 2])
def test_a_smoothed_max_loop_shared_with_helper_threads_gives_the_same_score(kernels, helpers, own_cpus):
    """Helper threads take chunks of each pass over the bank: the score and the cells re-checked are those of the
    loop alone (the same nearest rows, to the bit), and the helpers do take part."""
    from tocoad_edge.runtime.scoring import smooth_grid

    for seed in range(8):
        search, exact, args = _smoothed_max_case(kernels, seed)
        alone = kernels.smoothed_max(*args)
        shared, rows = _shared_run(kernels, search, args, helpers, own_cpus)
        assert shared[:2] == alone[:2]
        assert shared[0] == pytest.approx(float(smooth_grid(exact.reshape(args[2]), args[3]).max()), rel=1e-5)
        assert len(rows) == helpers and min(rows) >= 0
    if own_cpus is not None:
        # a helper on its own CPU claims chunks of a 20-chunk pass, unless the system does not run that CPU during
        # the loop (a virtual machine's second CPU can be held for milliseconds): a few hundred tries
        for _ in range(300):
            shared, rows = _shared_run(kernels, search, args, helpers, own_cpus)
            assert shared[:2] == alone[:2]
            if sum(rows) > 0:
                break
        assert sum(rows) > 0


def test_helpers_of_a_loop_that_refuses_its_arguments_stop_waiting(kernels):
    search, _, args = _smoothed_max_case(kernels, 0, rows=2000)
    split = kernels.split_state()
    rows = []
    helper = threading.Thread(target=lambda: rows.append(kernels.help(split, len(args[3]), search.prefix_dims + 2)))
    helper.start()
    bad = (args[0], args[1][:-1], *args[2:])                       # one distance short
    with pytest.raises(InputError, match="first-stage distances"):
        kernels.smoothed_max(*bad, split=split)
    helper.join(timeout=60)
    assert not helper.is_alive() and rows == [0]
    with pytest.raises(InputError, match="split state"):
        kernels.help(np.zeros(8, np.uint8), len(args[3]), search.prefix_dims + 2)
    with pytest.raises(InputError, match="split state"):
        kernels.smoothed_max(*args, split=np.zeros(8, np.uint8))


@pytest.mark.parametrize("threads", [1, 2])
def test_the_refined_search_makes_its_beside_call_once_and_raises_its_error_after_the_loop(bank_and_index, threads):
    """With two search threads the caller's ``beside`` (the detector's anomaly map) is made by the search's worker
    while the loop runs (or by the caller after it, where the worker had not started by then: a loop over this
    small bank is short); with one, after the loop on the calling thread. Either way once; its error reaches the
    caller, and the search works as before afterwards."""
    from tocoad_edge.runtime.scoring import score_kernel

    bank, projection, path = bank_and_index
    refined = bounded_refined_search(ProjectedSearch(bank, path, projection, ef=8, candidates=8, threads=threads),
                                     bank, threads)
    assert refined.runs_beside == (threads == 2)
    q = _grid_queries(bank, 1, 9, 11, seed=5)
    k = score_kernel("smoothed-max", 4.0, 8)
    first = refined.query(q)
    want = refined.max_smoothed(q, first, (1, 9, 11), k)
    made = []
    got = refined.max_smoothed(q, first, (1, 9, 11), k, beside=lambda: made.append(threading.current_thread().name))
    assert got == want and len(made) == 1
    caller = threading.current_thread().name
    assert made[0] == caller or (threads == 2 and made[0].startswith("tocoad-search"))

    def fails():
        raise MemoryError("no memory for the map")
    with pytest.raises(MemoryError, match="no memory for the map"):
        refined.max_smoothed(q, first, (1, 9, 11), k, beside=fails)
    assert refined.max_smoothed(q, first, (1, 9, 11), k) == want
    refined.close()


def test_a_split_frame_does_not_wait_for_a_worker_that_has_not_started(bank_and_index):
    """The search's only worker is held by other work: the caller walks, ranks and answers every chunk of the frame
    itself, and runs the re-check's loop and its ``beside`` call itself, with the same answers."""
    from tocoad_edge.runtime.scoring import score_kernel

    bank, projection, path = bank_and_index
    make = lambda threads: bounded_refined_search(                             # noqa: E731
        ProjectedSearch(bank, path, projection, ef=8, candidates=8, lend=2, grid=(9, 11), threads=threads), bank,
        threads)
    one, two = make(1), make(2)
    q = _grid_queries(bank, 2, 9, 11, seed=4)
    k = score_kernel("smoothed-max", 4.0, 8)
    first = one.query(q)
    want = one.max_smoothed(q[:99], first[:99], (1, 9, 11), k)
    held = threading.Event()
    blocker = two.approx.splitter._workers().submit(held.wait)                 # the pool's one worker is busy
    try:
        np.testing.assert_array_equal(two.query(q), first)
        made = []
        got = two.max_smoothed(q[:99], first[:99], (1, 9, 11), k,
                               beside=lambda: made.append(threading.current_thread().name))
        assert got == want and made == [threading.current_thread().name]
    finally:
        held.set()
        assert blocker.result() is True
    np.testing.assert_array_equal(two.query(q), first)                           # and with the worker back
    two.close()


def test_a_split_frame_hands_its_worker_from_the_first_stage_to_the_re_check(bank_and_index, monkeypatch):
    """``query_and_max_smoothed`` over a frame the first stage splits: the worker goes on from its half of the
    first stage to the ``beside`` call and the re-check's passes. Distances, score and the distances ``beside`` is
    given are those of one thread; ``beside`` is made once per frame; an error in ``beside`` or in either half of
    the first stage reaches the caller, and the search works as before afterwards."""
    import tocoad_edge.runtime.search.projected as projected
    from tocoad_edge.runtime.scoring import score_kernel

    bank, projection, path = bank_and_index
    make = lambda threads: bounded_refined_search(                             # noqa: E731
        ProjectedSearch(bank, path, projection, ef=8, candidates=8, lend=2, grid=(9, 11), threads=threads), bank,
        threads)
    one, two = make(1), make(2)
    q = _grid_queries(bank, 2, 9, 11, seed=6)                  # two tiles: 198 rows, a frame the first stage splits
    grid, k = (2, 9, 11), score_kernel("smoothed-max", 4.0, 8)
    assert two.approx.hands_over(len(q)) and not one.approx.hands_over(len(q))
    want_dist, want = one.query_and_max_smoothed(q, grid, k)
    assert want == one.max_smoothed(q, one.query(q), grid, k)
    given = []
    for frame in range(10):
        dist, score = two.query_and_max_smoothed(q, grid, k, beside=lambda d: given.append(d.copy()))
        np.testing.assert_array_equal(dist, want_dist)
        assert score == want and len(given) == frame + 1
        np.testing.assert_array_equal(given[-1], want_dist)

    def fails(_):
        raise MemoryError("no memory for the map")
    with pytest.raises(MemoryError, match="no memory for the map"):
        two.query_and_max_smoothed(q, grid, k, beside=fails)
    walk = two.approx.candidate_rows

    def second_half_fails(rows, threads=-1):
        if len(rows) < len(q) and np.array_equal(rows[0], q[len(q) // 2]):
            raise MemoryError("no memory for the walk")
        return walk(rows, threads)
    monkeypatch.setattr(two.approx, "candidate_rows", second_half_fails)
    monkeypatch.setattr(projected, "MEET_TIMEOUT_S", 60.0)        # the test fails by hanging, never by timing out
    with pytest.raises(MemoryError, match="no memory for the walk"):
        two.query_and_max_smoothed(q, grid, k, beside=lambda d: None)
    monkeypatch.setattr(two.approx, "candidate_rows", walk)
    assert two.query_and_max_smoothed(q, grid, k)[1] == want
    two.close()
