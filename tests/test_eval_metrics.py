"""The one metrics module, checked against independent implementations (scikit-learn, scipy, brute force)."""
import numpy as np
import pytest
from scipy import stats as scipy_stats
from sklearn import metrics as skm

from tocoad_edge.eval.metrics import aupro, auroc, f1_max, pixel_auroc, rankdata, roc_curve, spearman


def _tied_scores(seed: int, n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    return y, np.round(rng.normal(size=n) + y, 1)          # rounded: many ties


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auroc_matches_scikit_learn_with_ties(seed):
    y, s = _tied_scores(seed)
    assert auroc(y, s) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)


def test_auroc_edge_cases():
    assert auroc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert auroc([0, 1], [0.5, 0.5]) == 0.5
    assert np.isnan(auroc([1, 1], [0.2, 0.3]))


def test_rankdata_and_spearman_match_scipy():
    y, s = _tied_scores(3)
    assert np.array_equal(rankdata(s), scipy_stats.rankdata(s))
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=80), rng.normal(size=80)
    assert spearman(a, a + b) == pytest.approx(scipy_stats.spearmanr(a, a + b)[0], abs=1e-12)
    assert spearman(s, y) == pytest.approx(scipy_stats.spearmanr(s, y)[0], abs=1e-12)


def test_roc_curve_matches_scikit_learn():
    y, s = _tied_scores(5, 120)
    fpr, tpr, thr = roc_curve(y, s)
    sk_fpr, sk_tpr, sk_thr = skm.roc_curve(y, s, drop_intermediate=False)
    assert np.allclose(fpr, sk_fpr) and np.allclose(tpr, sk_tpr)
    assert np.allclose(thr[1:], sk_thr[1:])


def test_f1_max_matches_scikit_learn_precision_recall():
    for seed in range(3):
        y, s = _tied_scores(seed, 150)
        precision, recall, thresholds = skm.precision_recall_curve(y, s)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0)
        best = int(np.argmax(f1[:-1]))
        got_f1, got_t = f1_max(y, s)
        assert got_f1 == pytest.approx(f1[best], abs=1e-12)
        assert got_t == pytest.approx(thresholds[best])
    assert f1_max([1, 0, 1], [0.9, 0.5, 0.1]) == (pytest.approx(0.8), 0.1)


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
    assert pixel_auroc([mask], [perfect]) == skm.roc_auc_score(mask.ravel(), perfect.ravel())


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError):
        auroc([0, 1, 1], [0.1, 0.2])
