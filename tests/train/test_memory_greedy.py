import numpy as np

from tocoad_edge.memory.coreset import greedy_coreset


def plain_greedy(x, count, start):
    md = np.full(len(x), np.inf)
    sel = [start]
    for _ in range(count - 1):
        md = np.minimum(md, ((x - x[sel[-1]]) ** 2).sum(1))
        sel.append(int(md.argmax()))
    return sel


def test_pruned_selection_equals_plain_greedy():
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((20, 16)) * 3
    x = (rng.standard_normal((2000, 16)) + centres[rng.integers(0, 20, 2000)]).astype(np.float32)
    order = greedy_coreset(x, count=150, projection_dim=None, seed=3, selection_order=True)
    ref = plain_greedy(x.astype(np.float64), 150, int(order[0]))
    assert order.tolist() == ref


def test_ratio_count_and_determinism():
    x = np.random.default_rng(0).standard_normal((500, 8)).astype(np.float32)
    a = greedy_coreset(x, ratio=0.1, seed=7)
    b = greedy_coreset(x, ratio=0.1, seed=7)
    assert len(a) == 50 and np.array_equal(a, b) and np.all(np.diff(a) > 0)
    assert len(greedy_coreset(x, count=500)) == 500
