"""benchmarks/two_frames_at_once.py runs one pinned process per CPU and reports both turns of each (keys and
values only: no timing is asserted)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tocoad_edge.errors import InputError

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCHMARKS))        # the spawned workers import the script by its module name
    try:
        import two_frames_at_once

        yield two_frames_at_once
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs two CPUs to pin the two processes to")
def test_each_cpu_reports_alone_and_together(bench, tiny_bundle, sample_dataset):
    got = bench.measure(str(tiny_bundle), str(sample_dataset), stage="search", max_images=2, rounds=2)
    assert [cpu for cpu, _ in got] == sorted(os.sched_getaffinity(0))[:2]
    for _, times in got:
        assert set(times) == {"alone", "together"}
        assert all(v > 0 for v in times.values())


def test_bad_arguments_say_what_was_expected(bench, tiny_bundle, sample_dataset):
    with pytest.raises(InputError, match="unknown stage") as e:
        bench.measure(str(tiny_bundle), str(sample_dataset), stage="walk")
    assert "predict or backbone or search" in str(e.value) and "'walk'" in str(e.value)
    with pytest.raises(InputError, match="turn alone") as e:
        bench.measure(str(tiny_bundle), str(sample_dataset), rounds=1)
    assert "rounds=1" in str(e.value)


def test_missing_folders_are_named(bench, tiny_bundle, sample_dataset, tmp_path):
    with pytest.raises(InputError, match="bundle folder does not exist") as e:
        bench.measure(str(tmp_path / "nope"), str(sample_dataset))
    assert str(tmp_path / "nope") in str(e.value)
    with pytest.raises(InputError, match="data folder does not exist"):
        bench.measure(str(tiny_bundle), str(tmp_path / "nodata"))


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs two CPUs to pin the two processes to")
def test_a_worker_that_fails_is_reported_not_waited_for(bench, sample_dataset, tmp_path):
    (tmp_path / "not_a_bundle").mkdir()
    with pytest.raises(RuntimeError, match="a worker process failed") as e:
        bench.measure(str(tmp_path / "not_a_bundle"), str(sample_dataset), max_images=1, rounds=2)
    assert "manifest" in str(e.value).lower()
