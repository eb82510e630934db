import numpy as np
import pytest

from tocoad_edge.eval.metrics import aupro, auroc, f1_max, pixel_auroc, roc_curve


def brute_auroc(y, s):
    pos, neg = s[y == 1], s[y == 0]
    return np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])


def test_auroc_matches_pairwise_definition_with_ties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.normal(size=200) + y, 1)
    assert auroc(y, s) == pytest.approx(brute_auroc(y, s), abs=1e-12)
    assert auroc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert auroc([0, 1], [0.5, 0.5]) == 0.5
    assert np.isnan(auroc([1, 1], [0.2, 0.3]))


def test_roc_curve_endpoints_and_area():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 100)
    s = rng.normal(size=100) + y
    fpr, tpr, thr = roc_curve(y, s)
    assert fpr[0] == 0 and tpr[0] == 0 and fpr[-1] == 1 and tpr[-1] == 1
    assert np.trapezoid(tpr, fpr) == pytest.approx(auroc(y, s), abs=1e-9)
    assert np.all(np.diff(thr[1:]) < 0)


def test_f1_max():
    f1, t = f1_max([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
    assert f1 == 1.0 and t == 0.8
    f1, _ = f1_max([1, 0, 1], [0.9, 0.5, 0.1])
    assert f1 == pytest.approx(2 / 3 * 1.0 / (2 / 3 + 0.5) * 1.0 * 2 * 0.5, rel=1e-6) or f1 == pytest.approx(0.8)


def test_aupro_perfect_and_random():
    mask = np.zeros((32, 32), bool)
    mask[4:10, 4:10] = True
    mask[20:24, 20:30] = True
    perfect = mask.astype(np.float32) + np.random.default_rng(0).uniform(0, 0.1, mask.shape)
    assert aupro([mask], [perfect]) == pytest.approx(1.0, abs=1e-3)
    noise = [np.random.default_rng(i).uniform(size=(32, 32)).astype(np.float32) for i in range(20)]
    # random maps: PRO ≈ FPR, so the normalised area up to 0.3 is ≈ 0.15
    assert aupro([mask] * 20, noise) == pytest.approx(0.15, abs=0.03)
    assert pixel_auroc([mask], [perfect]) == 1.0


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError):
        auroc([0, 1, 1], [0.1, 0.2])
