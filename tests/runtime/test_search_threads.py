"""Both cores on one frame: exact search splits a frame's queries across its threads (one-thread BLAS each) and
gives the one-thread answer; small blocks (the refined search's re-checks) are not split."""
import threading

import numpy as np
import pytest

from tocoad_edge.errors import InputError
from tocoad_edge.runtime.search.exact import ExactSearch
from tocoad_edge.runtime.search.split import MIN_ROWS_PER_THREAD


def test_split_exact_search_matches_one_thread_and_uses_the_pool():
    rng = np.random.default_rng(0)
    bank = rng.standard_normal((3000, 64)).astype(np.float32)
    q = rng.standard_normal((784, 64)).astype(np.float32)
    one, two = ExactSearch(bank, threads=1), ExactSearch(bank, threads=2)
    seen = set()
    inner = two._query_block

    def spy(block, threads):
        seen.add((threading.current_thread().name.split("_")[0], len(block), threads))
        return inner(block, threads)
    two._query_block = spy
    np.testing.assert_allclose(two.query(q), one.query(q), rtol=1e-6)
    # two halves, one on the caller's thread and one on the search pool, BLAS pinned to 1
    assert seen == {("MainThread", 392, None), ("tocoad-search", 392, None)}
    seen.clear()
    two.query(q[: 2 * MIN_ROWS_PER_THREAD - 1])
    # too few rows to split: the caller's thread, BLAS at one thread (no OpenBLAS workers left busy-waiting)
    assert seen == {("MainThread", 2 * MIN_ROWS_PER_THREAD - 1, 1)}
    two.close()
    two.set_threads(2)
    np.testing.assert_allclose(two.query(q), one.query(q), rtol=1e-6)   # a closed pool is rebuilt


def test_run_covers_every_row_once_the_caller_taking_the_first_block():
    from tocoad_edge.runtime.search.split import QuerySplitter

    splitter = QuerySplitter(3)
    calls = []

    def fn(block):
        start, stop = int(block[0]), int(block[-1]) + 1
        calls.append((threading.current_thread().name.split("_")[0], start, stop))
        return block * 2

    rows = np.arange(100, dtype=np.float32)
    np.testing.assert_array_equal(splitter.run(fn, rows), rows * 2)                     # in row order
    assert sorted((s, e) for _, s, e in calls) == [(0, 34), (34, 67), (67, 100)]      # np.array_split's cuts
    assert {name for name, s, _ in calls if s == 0} == {"MainThread"}
    assert {name for name, s, _ in calls if s > 0} == {"tocoad-search"}
    with pytest.raises(InputError, match="one part per thread"):
        splitter.map(fn, [rows] * 4)                                                   # more parts than threads
    splitter.close()


def test_blas_threads_limits_inside_the_block_and_restores_after():
    from threadpoolctl import threadpool_info

    from tocoad_edge.runtime.threads import blas_threads, set_blas_threads

    def counts():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    assert counts(), "numpy's BLAS must be visible to threadpoolctl for this test"
    before = counts()[0]
    set_blas_threads(3)
    try:
        with blas_threads(1):
            assert set(counts()) == {1}
            with blas_threads(1):               # already 1: left as is, and still 1 after the inner block
                assert set(counts()) == {1}
            assert set(counts()) == {1}
            with blas_threads(2):
                assert set(counts()) == {2}
            assert set(counts()) == {1}
        assert set(counts()) == {3}
        with blas_threads(None):                # None: no limit
            assert set(counts()) == {3}
        try:
            with blas_threads(1):
                raise RuntimeError("inside")
        except RuntimeError:
            pass
        assert set(counts()) == {3}             # restored on the way out of an exception too
    finally:
        set_blas_threads(before)


def test_lead_and_help_does_not_wait_for_a_helper_in_its_settled_last_step():
    """A helper that has reached a last step touching nothing of the caller's (``settled``) is not waited for once
    the lead returns; without ``settled``, or before a helper gets there, the caller waits for it."""
    from tocoad_edge.runtime.search.split import QuerySplitter

    splitter = QuerySplitter(2)
    entered, release = threading.Event(), threading.Event()
    last, done = [], []

    def helper(i):
        last.append(i)                  # from here on the helper touches nothing of the caller's
        entered.set()
        release.wait(30)
        done.append(i)

    def lead():
        assert entered.wait(30)         # the helper has started and reached its last step
        return "lead"

    assert splitter.lead_and_help(lead, helper, settled=lambda n: len(last) >= n) == "lead"
    assert done == []                   # returned while the helper still runs
    release.set()
    entered.clear()
    last.clear()
    timer = threading.Timer(0.05, release.set)
    release.clear()
    timer.start()
    assert splitter.lead_and_help(lead, helper, settled=lambda n: False) == "lead"
    assert done == [1, 1]               # not settled: waited for (the first helper finished before it started)
    splitter.close()
