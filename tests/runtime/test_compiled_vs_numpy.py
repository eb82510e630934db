"""benchmarks/compiled_vs_numpy.py times both paths of the search on the same frames and checks they score alike
(keys and values only: no timing is asserted)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tocoad_edge.errors import InputError

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import compiled_vs_numpy

        yield compiled_vs_numpy
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_both_paths_are_timed_on_every_frame_and_score_alike(bench, tiny_bundle, sample_dataset):
    got = bench.measure(str(tiny_bundle), str(sample_dataset), threads=(1, 2), max_images=3, rounds=2)
    assert sorted(got) == [1, 2]
    for r in got.values():
        assert r["frames"] == 6 and r["compiled_p50_ms"] > 0 and r["numpy_p50_ms"] > 0
        assert r["kernels"] and set(r["kernels"]) == {"compiled"}      # switched back on after the turns


def test_bad_arguments_and_missing_folders_say_what_was_expected(bench, tiny_bundle, sample_dataset, tmp_path):
    with pytest.raises(InputError, match="bundle folder does not exist") as e:
        bench.measure(str(tmp_path / "nope"), str(sample_dataset))
    assert str(tmp_path / "nope") in str(e.value)
    with pytest.raises(InputError, match="nothing to measure") as e:
        bench.measure(str(tiny_bundle), str(sample_dataset), threads=(0,))
    assert "threads=(0,)" in str(e.value)
