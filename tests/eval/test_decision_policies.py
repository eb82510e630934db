"""Threshold policies: the binomial tail and the Clopper–Pearson interval against scipy, and the normal-quantile
promise checked by simulation against the true false-call rate of a known score distribution."""
import math

import numpy as np
import pytest
from scipy import stats

from tocoad_edge.errors import DataError
from tocoad_edge.eval.policies import (binom_sf, clopper_pearson, labelled, min_normal_images, normal_quantile)


@pytest.mark.parametrize("n,p", [(10, 0.3), (300, 0.99), (1000, 0.95), (57, 0.5)])
def test_binomial_tail_matches_scipy(n, p):
    for k in (0, 1, n // 3, n // 2, n - 1, n, n + 1):
        assert binom_sf(k, n, p) == pytest.approx(stats.binom.sf(k - 1, n, p), rel=1e-9, abs=1e-300)


def test_minimum_normal_images():
    assert min_normal_images(0.01, 0.95) == math.ceil(math.log(0.05) / math.log(0.99)) == 299
    assert min_normal_images(0.05, 0.95) == 59
    assert min_normal_images(0.05, 0.90) == 45


def test_normal_quantile_refuses_what_the_data_cannot_support():
    with pytest.raises(DataError, match="cannot support") as exc:
        normal_quantile(np.arange(100.0), target_fpr=0.01, confidence=0.95)
    assert exc.value.expected == ">= 299 normal images" and exc.value.got == "100"
    with pytest.raises(DataError, match="between 0 and 1"):
        normal_quantile(np.arange(100.0), target_fpr=1.5)
    with pytest.raises(DataError, match="NaN"):
        normal_quantile(np.array([0.1] * 70 + [np.nan]), target_fpr=0.05)


def test_normal_quantile_promise_holds_over_many_calibration_sets():
    """Exponential normal scores: a threshold t has the true false-call rate exp(−t). Over 400 calibration sets
    the rate exceeds the target in at most δ of them (plus three standard errors); the bound is also not idle
    (it is reached in a fair share of the sets)."""
    rng = np.random.default_rng(0)
    trials, n, alpha, delta = 400, 300, 0.05, 0.10
    true_fpr = []
    for _ in range(trials):
        choice = normal_quantile(rng.exponential(size=n), target_fpr=alpha, confidence=1 - delta)
        true_fpr.append(math.exp(-choice.threshold))
    exceed = float(np.mean(np.array(true_fpr) > alpha))
    assert exceed <= delta + 3 * math.sqrt(delta * (1 - delta) / trials)
    assert exceed >= delta / 4
    assert choice.bound_violation_probability <= delta and choice.order_statistic <= n


def test_normal_quantile_picks_the_lowest_order_statistic_that_keeps_the_promise():
    s = np.random.default_rng(1).normal(size=500)
    c = normal_quantile(s, 0.05, 0.95)
    k = c.order_statistic
    assert stats.binom.sf(k - 1, 500, 0.95) <= 0.05 < stats.binom.sf(k - 2, 500, 0.95)
    assert c.threshold == np.sort(s)[k - 1]


def test_clopper_pearson_matches_scipy():
    for x, n in [(0, 20), (7, 20), (20, 20), (131, 167)]:
        ref = stats.binomtest(x, n).proportion_ci(confidence_level=0.95, method="exact")
        lo, hi = clopper_pearson(x, n, 0.95)
        assert lo == pytest.approx(ref.low, abs=1e-9) and hi == pytest.approx(ref.high, abs=1e-9)


def test_labelled_policy_reports_recall_with_its_interval():
    rng = np.random.default_rng(2)
    good, bad = rng.normal(0, 1, 300), rng.normal(2.5, 1, 120)
    y = np.r_[np.zeros(300), np.ones(120)]
    c = labelled(y, np.r_[good, bad], target_fpr=0.05)
    assert c.false_call_rate <= 0.05 and (good > c.threshold).mean() == c.false_call_rate
    assert c.recall == (bad > c.threshold).mean()
    assert c.recall_interval[0] < c.recall < c.recall_interval[1]
    with pytest.raises(DataError, match="good and defective"):
        labelled(np.zeros(10), np.arange(10.0), 0.05)
