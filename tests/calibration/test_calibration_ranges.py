"""Activation range algorithms on histograms whose answer is known."""
import numpy as np
import pytest

from tocoad_edge.calibration.ranges import (amax_entropy, amax_max, amax_percentile, compute_amax,
                                            scale_from_amax)
from tocoad_edge.errors import ExportError


def _hist(values, bins=2048):
    a = np.abs(values)
    edges = np.linspace(0, a.max(), bins + 1)
    return np.histogram(a, edges)[0], edges


def test_max_is_upper_edge_of_last_nonempty_bin():
    hist = np.zeros(2048, np.int64)
    hist[[3, 700]] = [10, 1]
    edges = np.linspace(0, 8.0, 2049)
    assert amax_max(hist, edges) == pytest.approx(edges[701])


def test_percentile_of_uniform_histogram():
    hist = np.ones(1000, np.int64)
    edges = np.linspace(0, 10.0, 1001)
    assert amax_percentile(hist, edges, 99.0) == pytest.approx(9.9, abs=0.011)
    assert amax_percentile(hist, edges, 100.0) == pytest.approx(10.0)
    with pytest.raises(ExportError):
        amax_percentile(hist, edges, 0.0)


def test_entropy_clips_rare_outliers_but_keeps_the_bulk():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1.0, 400_000), [60.0, -55.0, 58.0]])   # three huge outliers
    hist, edges = _hist(x)
    amax = amax_entropy(hist, edges)
    assert 2.5 < amax < 12.0, amax              # far below the max (60), at a few sigma
    assert amax < amax_max(hist, edges) / 4


def test_entropy_keeps_almost_everything_of_a_uniform_distribution():
    rng = np.random.default_rng(1)
    hist, edges = _hist(rng.uniform(-4, 4, 200_000))
    assert amax_entropy(hist, edges) > 0.9 * amax_max(hist, edges)


def test_compute_amax_dispatch_and_unknown_method():
    hist, edges = _hist(np.random.default_rng(2).normal(0, 1, 10_000))
    assert compute_amax("max", hist, edges) == amax_max(hist, edges)
    assert compute_amax("percentile", hist, edges, percentile=99.0) == amax_percentile(hist, edges, 99.0)
    with pytest.raises(ExportError) as e:
        compute_amax("kl", hist, edges)
    assert "max|percentile|entropy" in str(e.value)


def test_scale_from_amax_is_symmetric_int8_and_never_zero():
    assert scale_from_amax(127.0) == pytest.approx(1.0)
    assert scale_from_amax(0.0) > 0
