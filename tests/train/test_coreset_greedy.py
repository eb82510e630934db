"""The fast coreset selects exactly what the plain greedy k-center loop selects."""
import numpy as np
import pytest

from tocoad_edge.memory.coreset import greedy_coreset, plain_greedy_coreset


def _clustered(n, d, seed, clusters=20):
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((clusters, d)) * 3.0
    return (c[rng.integers(0, clusters, n)] + rng.standard_normal((n, d))).astype(np.float32)


@pytest.mark.parametrize("n,d,count,proj,seed", [
    (1500, 40, 150, None, 0),
    (2000, 152, 200, 128, 1),
    (2500, 152, 800, 64, 2),
    (1200, 8, 600, None, 3),          # fewer dims than the bound: the bound is the exact distance
])
def test_equals_plain_greedy(n, d, count, proj, seed):
    x = _clustered(n, d, seed)
    fast = greedy_coreset(x, count=count, projection_dim=proj, seed=seed)
    plain = plain_greedy_coreset(x, count=count, projection_dim=proj, seed=seed)
    assert np.array_equal(fast, plain)


def test_ratio_count_and_determinism():
    x = _clustered(1000, 32, 5)
    a = greedy_coreset(x, 0.1, seed=7)
    b = greedy_coreset(x, count=100, seed=7)
    assert len(a) == 100 and np.array_equal(a, b)
    assert np.all(np.diff(a) > 0) and a.min() >= 0 and a.max() < 1000
    assert np.array_equal(greedy_coreset(x, count=1000), np.arange(1000))


def test_duplicates_do_not_break_selection():
    x = np.repeat(_clustered(50, 16, 9), 4, axis=0)   # every point 4 times
    idx = greedy_coreset(x, count=50, projection_dim=None)
    # 50 distinct points: a greedy k-center of 50 covers every distinct point exactly once.
    assert len(np.unique(x[idx], axis=0)) == 50


def test_progress_is_called_per_centre():
    calls = []
    greedy_coreset(_clustered(300, 16, 4), count=30, progress=calls.append)
    assert len(calls) == 30
