"""Threshold policies: how an image threshold (and a review band below it) is chosen from scores.

``normal-quantile``: from normal images only. The threshold is the k-th smallest of n calibration scores; a part
is NG when its score is above it. For continuous scores the false-call rate of that threshold on unseen normal
parts, ``1 − F(s_(k))``, exceeds α exactly when at least k of the n calibration scores lie below the (1 − α)
quantile of the normal scores, i.e. with probability ``P(Binomial(n, 1 − α) ≥ k)``. The policy takes the
smallest k for which that is ≤ δ, so the stated rate holds with confidence 1 − δ whatever the score
distribution. It needs
``n ≥ ln δ / ln(1 − α)`` images (k = n), and refuses with fewer.

``labelled``: normal and defective scores at commissioning. The threshold with the highest recall at a false-call
rate ≤ α on the good parts, and that recall with a Clopper–Pearson interval.

Pure numpy and ``math``: this runs on the gateway too (``tocoad-threshold``), where there is no scipy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import DataError
from .metrics import recall_at_fpr

POLICIES = ("normal-quantile", "labelled")


def binom_sf(k: int, n: int, p: float) -> float:
    """P(X ≥ k) for X ~ Binomial(n, p), summed in log space (exact to double precision for n up to ~10⁶)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    lp, lq = math.log(p), math.log1p(-p)
    lg = math.lgamma(n + 1)
    terms = [lg - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp + (n - i) * lq for i in range(k, n + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def min_normal_images(target_fpr: float, confidence: float) -> int:
    """The fewest normal images for which ``normal-quantile`` can promise ``target_fpr`` with ``confidence``."""
    _check_rates(target_fpr, confidence)
    return math.ceil(math.log(1.0 - confidence) / math.log1p(-target_fpr) - 1e-12)


@dataclass(frozen=True)
class ThresholdChoice:
    """A threshold on the raw image score and how it was chosen (recorded in the manifest)."""
    policy: str
    threshold: float
    target_fpr: float
    confidence: float
    normal_images: int
    order_statistic: int | None = None        # normal-quantile: k of n (1-based, ascending)
    bound_violation_probability: float | None = None   # normal-quantile: P(false-call rate > target) ≤ this
    defective_images: int | None = None       # labelled
    recall: float | None = None               # labelled: on the commissioning set
    recall_interval: tuple[float, float] | None = None   # labelled: Clopper–Pearson at ``confidence``
    false_call_rate: float | None = None      # on the images it was chosen from

    def to_json(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items() if v is not None}


def _check_rates(target_fpr: float, confidence: float) -> None:
    if not 0.0 < target_fpr < 1.0:
        raise DataError("the target false-call rate must lie between 0 and 1", expected="e.g. 0.01",
                        got=str(target_fpr))
    if not 0.0 < confidence < 1.0:
        raise DataError("the confidence must lie between 0 and 1", expected="e.g. 0.95", got=str(confidence))


def _finite(scores: np.ndarray, what: str) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64).ravel()
    if not np.isfinite(s).all():
        raise DataError(f"{what} scores hold NaN or inf", fix="the model or the images are damaged")
    return s


def normal_quantile(normal_scores: np.ndarray, target_fpr: float, confidence: float = 0.95) -> ThresholdChoice:
    """The lowest order statistic of ``normal_scores`` whose false-call rate on unseen normal parts is
    ≤ ``target_fpr`` with probability ≥ ``confidence``."""
    _check_rates(target_fpr, confidence)
    s = np.sort(_finite(normal_scores, "normal"))
    n = int(s.size)
    need = min_normal_images(target_fpr, confidence)
    if n < need:
        raise DataError(f"{n} normal images cannot support a false-call rate of {target_fpr:g} with confidence "
                        f"{confidence:g}", expected=f">= {need} normal images", got=str(n),
                        fix="add normal images, or promise less (a higher --target-fpr or a lower --confidence): "
                            "see docs/decisions.md")
    delta = 1.0 - confidence
    lo, hi = 1, n                       # P(Bin(n, 1-α) ≥ k) falls as k grows; hi satisfies it (n ≥ need)
    while lo < hi:
        mid = (lo + hi) // 2
        if binom_sf(mid, n, 1.0 - target_fpr) <= delta:
            hi = mid
        else:
            lo = mid + 1
    k = lo
    threshold = float(s[k - 1])
    return ThresholdChoice(policy="normal-quantile", threshold=threshold, target_fpr=target_fpr,
                           confidence=confidence, normal_images=n, order_statistic=k,
                           bound_violation_probability=binom_sf(k, n, 1.0 - target_fpr),
                           false_call_rate=float((s > threshold).mean()))


def clopper_pearson(successes: int, trials: int, confidence: float) -> tuple[float, float]:
    """Exact two-sided binomial interval for ``successes / trials`` (bisection on the binomial tails)."""
    if trials <= 0:
        return float("nan"), float("nan")
    a = (1.0 - confidence) / 2.0

    def solve(f, lo: float = 0.0, hi: float = 1.0) -> float:
        for _ in range(60):
            mid = (lo + hi) / 2.0
            if f(mid):
                hi = mid
            else:
                lo = mid
        return (lo + hi) / 2.0

    lower = 0.0 if successes == 0 else solve(lambda p: binom_sf(successes, trials, p) >= a)
    upper = 1.0 if successes == trials else solve(lambda p: binom_sf(successes + 1, trials, p) >= 1.0 - a)
    return lower, upper


def labelled(labels: np.ndarray, scores: np.ndarray, target_fpr: float,
             confidence: float = 0.95) -> ThresholdChoice:
    """The threshold with the highest recall at a false-call rate ≤ ``target_fpr`` on the labelled set."""
    _check_rates(target_fpr, confidence)
    y = np.asarray(labels).ravel().astype(bool)
    s = _finite(scores, "commissioning")
    if y.shape != s.shape:
        raise DataError("labels and scores differ in number", expected=str(s.shape), got=str(y.shape))
    n_good, n_bad = int((~y).sum()), int(y.sum())
    if n_good == 0 or n_bad == 0:
        raise DataError("the labelled policy needs good and defective images",
                        expected=">= 1 of each (test/good and test/<defect>)",
                        got=f"{n_good} good, {n_bad} defective", fix="use --policy normal-quantile without defects")
    recall, threshold = recall_at_fpr(y, s, target_fpr)
    caught = int((s[y] > threshold).sum())
    return ThresholdChoice(policy="labelled", threshold=float(threshold), target_fpr=target_fpr,
                           confidence=confidence, normal_images=n_good, defective_images=n_bad,
                           recall=float(recall), recall_interval=clopper_pearson(caught, n_bad, confidence),
                           false_call_rate=float((s[~y] > threshold).mean()))
