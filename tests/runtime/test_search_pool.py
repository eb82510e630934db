"""The search pool's workers (runtime/search/pool.py): jobs run in order through futures, a job not started yet can
be cancelled, a worker waiting on its CPU starts a job once the wake word changes, and no job is lost where the word
never changes (the worker stops waiting and takes it from the queue)."""
import threading

import pytest

from tocoad_edge.runtime.search.kernels import compiled_kernels
from tocoad_edge.runtime.search.pool import WorkerPool


def test_jobs_run_in_order_and_hand_back_results_and_errors():
    pool = WorkerPool(1, "test-pool")
    seen = []
    futures = [pool.submit(seen.append, i) for i in range(5)]
    boom = pool.submit(int, "not a number")
    assert [f.result(timeout=30) for f in futures] == [None] * 5
    assert seen == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="invalid literal"):
        boom.result(timeout=30)
    assert threading.current_thread().name != "test-pool_0"
    names = pool.submit(lambda: threading.current_thread().name).result(timeout=30)
    assert names == "test-pool_0"
    pool.shutdown()
    assert not any(t.is_alive() for t in pool._threads)


def test_a_job_not_yet_started_can_be_cancelled():
    pool = WorkerPool(1, "test-pool")
    gate = threading.Event()
    first = pool.submit(gate.wait, 30)
    second = pool.submit(lambda: "ran")
    assert second.cancel()                      # still queued behind the first
    gate.set()
    assert first.result(timeout=30) is True
    assert pool.submit(lambda: "after").result(timeout=30) == "after"   # the worker skipped the cancelled job
    assert second.cancelled()
    pool.shutdown()


def test_a_waiting_worker_starts_when_the_word_changes_and_loses_no_job_when_it_does_not():
    if compiled_kernels() is None:
        pytest.skip("the search kernels were not built: workers block on the queue (no wait on the CPU)")
    pool = WorkerPool(1, "test-pool", spin_s=0.2)
    assert pool.spin_s == 0.2
    pool.submit(lambda: None).result(timeout=30)            # the worker is now waiting on its CPU
    done = threading.Event()
    deferred = pool.submit(done.set, wake=False)            # the word is left as it is
    pool.wake[0] += 1                                       # as the caller's compiled call does
    assert deferred.result(timeout=30) is None and done.is_set()
    never = pool.submit(lambda: "taken from the queue", wake=False)   # nobody changes the word
    assert never.result(timeout=30) == "taken from the queue"         # the wait ends, the queue has it
    pool.shutdown()


def test_idle_wait_returns_when_the_word_changes_or_after_its_time(tmp_path):
    kernels = compiled_kernels()
    if kernels is None:
        pytest.skip("the search kernels were not built")
    import numpy as np

    word = np.zeros(1, dtype=np.int64)
    assert kernels.idle_wait(word, 0, 0.001) is False       # unchanged: gives up
    word[0] = 3
    assert kernels.idle_wait(word, 0, 30.0) is True         # changed before the call: returns at once
    changer = threading.Timer(0.01, lambda: word.__setitem__(0, 4))
    changer.start()
    assert kernels.idle_wait(word, 3, 30.0) is True         # changed by another thread meanwhile
    changer.join()


def test_a_detector_sets_how_long_its_search_workers_wait_on_their_cpu(tiny_bundle, sample_dataset):
    """``search_idle_spin_ms`` reaches the refined search's workers and the thread plan; 0 (workers that block at
    once) scores every frame as the default does."""
    import numpy as np

    from tocoad_edge.data import load_dataset, read_image
    from tocoad_edge.runtime import Detector
    from tocoad_edge.runtime.search.pool import IDLE_SPIN_S

    frames = [read_image(t.path) for t in load_dataset(sample_dataset, require_test=True).test][:4]
    with Detector.open(tiny_bundle, search="refined", threads=2) as default, \
            Detector.open(tiny_bundle, search="refined", threads=2, search_idle_spin_ms=0) as blocking, \
            Detector.open(tiny_bundle, search="refined", threads=1, search_idle_spin_ms=5) as one:
        assert default.thread_plan()["search_idle_spin_ms"] == IDLE_SPIN_S * 1000
        assert blocking.thread_plan()["search_idle_spin_ms"] == 0
        assert one.thread_plan()["search_idle_spin_ms"] is None           # one thread: no workers to wait
        for f in frames:
            a, b = default.predict(f), blocking.predict(f)
            assert a.raw_score == b.raw_score
            np.testing.assert_array_equal(a.anomaly_map, b.anomaly_map)
        pool = blocking.search.approx.splitter._pool
        assert pool is not None and pool.spin_s == 0                      # the live pool took it too
        blocking.search.set_idle_spin(0.02)
        assert pool.spin_s == (0.02 if pool.kernels is not None else 0) and blocking.search.idle_spin() == 0.02


@pytest.mark.parametrize("bad", [-1, 1001, float("nan"), "fast", True])
def test_a_search_idle_spin_out_of_range_is_refused_before_the_bundle_is_read(tmp_path, bad):
    from tocoad_edge.errors import ConfigError
    from tocoad_edge.runtime import Detector

    with pytest.raises(ConfigError, match="search_idle_spin_ms out of range") as err:
        Detector.open(tmp_path / "no_bundle_here", search="refined", threads=2, search_idle_spin_ms=bad)
    assert "0 to 1000" in str(err.value) and repr(bad) in str(err.value)
