"""The one metrics module, checked against independent implementations (scikit-learn, scipy, brute force)."""
import numpy as np
import pytest
from scipy import stats as scipy_stats
from sklearn import metrics as skm

from tocoad_edge.eval.metrics import (aupro, auroc, confusion, f1_max, fpr_at_recall, pixel_auroc, rankdata,
                                      recall_at_fpr, roc_curve, spearman)


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


def _sk_best_recall(y, s, max_fpr):
    # scikit-learn's ROC points use "score >= t"; the best recall at FPR <= a is the largest TPR among them
    fpr, tpr, _ = skm.roc_curve(y, s, drop_intermediate=False)
    return tpr[fpr <= max_fpr + 1e-12].max()


@pytest.mark.parametrize("max_fpr", [0.01, 0.02, 0.05, 0.1, 0.3])
def test_recall_at_fpr_matches_the_roc_curve_of_scikit_learn(max_fpr):
    for seed in range(4):
        y, s = _tied_scores(seed, 400)
        recall, threshold = recall_at_fpr(y, s, max_fpr)
        assert recall == pytest.approx(_sk_best_recall(y, s, max_fpr), abs=1e-12)
        # the threshold really gives that recall and keeps the false-call rate
        assert ((s > threshold) & (y == 1)).sum() / (y == 1).sum() == pytest.approx(recall)
        assert ((s > threshold) & (y == 0)).sum() / (y == 0).sum() <= max_fpr + 1e-12


@pytest.mark.parametrize("min_recall", [0.5, 0.9, 0.95, 0.99, 1.0])
def test_fpr_at_recall_matches_the_roc_curve_of_scikit_learn(min_recall):
    for seed in range(4):
        y, s = _tied_scores(seed, 400)
        fpr, threshold = fpr_at_recall(y, s, min_recall)
        sk_fpr, sk_tpr, _ = skm.roc_curve(y, s, drop_intermediate=False)
        assert fpr == pytest.approx(sk_fpr[sk_tpr >= min_recall - 1e-12].min(), abs=1e-12)
        assert ((s > threshold) & (y == 1)).sum() / (y == 1).sum() >= min_recall - 1e-12


def test_confusion_counts_with_a_review_band():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    s = np.array([0.1, 0.5, 0.7, 0.95, 0.4, 0.6, 0.9, 2.0])
    assert confusion(y, s, 0.8) == {"defective_ng": 2, "defective_review": 0, "escapes": 2, "false_calls": 1,
                                     "good_review": 0, "good_ok": 3}
    assert confusion(y, s, 0.8, review_threshold=0.55) == {
        "defective_ng": 2, "defective_review": 1, "escapes": 1, "false_calls": 1, "good_review": 1, "good_ok": 2}


def test_line_metrics_without_both_classes_are_nan():
    assert all(np.isnan(v) for v in recall_at_fpr([0, 0], [0.1, 0.2], 0.05))
    assert all(np.isnan(v) for v in fpr_at_recall([1, 1], [0.1, 0.2], 0.9))
