"""Activation range algorithms on histograms of |x|: max, percentile and entropy (KL divergence).

Every algorithm returns ``amax``, the largest magnitude kept; the symmetric INT8 scale is ``amax / 127``.
The histogram covers ``[0, absmax]`` in ``bins`` equal bins (``edges`` has ``bins + 1`` entries).

The entropy algorithm is the one TensorRT's ``IInt8EntropyCalibrator2`` documents (and NVIDIA's
pytorch-quantization implements): for each candidate clip bin ``i`` (from 128 up to ``bins``), the reference
distribution P is the first ``i`` bins with everything above folded into bin ``i - 1``; the candidate Q is
those ``i`` bins merged into 128 quantization levels and expanded back over the originally non-empty bins;
the clip with the smallest KL(P || Q) wins and, as in TensorRT, ``amax = (i + 0.5) * bin_width``.
"""
from __future__ import annotations

import numpy as np

from tocoad_edge.errors import ExportError

METHODS = ("max", "percentile", "entropy")
DEFAULT_BINS = 2048
QUANT_LEVELS = 128          # non-negative INT8 levels of a symmetric per-tensor scale


def amax_max(hist: np.ndarray, edges: np.ndarray) -> float:
    """Largest magnitude seen (the upper edge of the last non-empty bin)."""
    nz = np.flatnonzero(hist)
    return float(edges[nz[-1] + 1]) if nz.size else 0.0


def amax_percentile(hist: np.ndarray, edges: np.ndarray, percentile: float = 99.99) -> float:
    """Smallest bin edge below which ``percentile`` % of the magnitudes lie."""
    if not 0.0 < percentile <= 100.0:
        raise ExportError("percentile out of range", expected="0 < percentile <= 100", got=str(percentile))
    total = hist.sum()
    if total == 0:
        return 0.0
    cdf = np.cumsum(hist) / total
    idx = int(np.searchsorted(cdf, percentile / 100.0 - 1e-12))
    return float(edges[min(idx, len(hist) - 1) + 1])


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    m = p > 0
    if np.any(q[m] == 0):
        return np.inf
    return float(np.sum(p[m] * np.log(p[m] / q[m])))


def amax_entropy(hist: np.ndarray, edges: np.ndarray, levels: int = QUANT_LEVELS, start: int | None = None,
                 stride: int = 1) -> float:
    """TensorRT-style entropy calibration (minimum KL divergence between clipped and quantized histograms)."""
    hist = np.asarray(hist, dtype=np.float64)
    bins = len(hist)
    if hist.sum() == 0:
        return 0.0
    if bins <= levels:
        return amax_max(hist, edges)
    width = float(edges[1] - edges[0])
    start = levels if start is None else max(levels, start)
    best_i, best_kl = bins, np.inf
    csum = np.cumsum(hist)
    for i in range(start, bins + 1, stride):
        p = hist[:i].copy()
        p[i - 1] += csum[-1] - csum[i - 1]          # outliers folded into the last kept bin
        ref = hist[:i]
        nonzero = ref != 0
        # merge the i bins into `levels` groups (group boundaries as TensorRT: floor(j * i / levels))
        bounds = (np.arange(levels + 1) * i) // levels
        sums = np.add.reduceat(ref, bounds[:-1])
        counts = np.add.reduceat(nonzero.astype(np.float64), bounds[:-1])
        group = np.repeat(np.arange(levels), np.diff(bounds))
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.where(nonzero, sums[group] / counts[group], 0.0)
        ps, qs = p.sum(), q.sum()
        if qs == 0:
            continue
        kl = _kl(p / ps, q / qs)
        if kl < best_kl:
            best_kl, best_i = kl, i
    return float((best_i + 0.5) * width) if best_i < bins else float(edges[-1])


def compute_amax(method: str, hist: np.ndarray, edges: np.ndarray, *, percentile: float = 99.99) -> float:
    if method == "max":
        return amax_max(hist, edges)
    if method == "percentile":
        return amax_percentile(hist, edges, percentile)
    if method == "entropy":
        return amax_entropy(hist, edges)
    raise ExportError(f"unknown calibration method '{method}'", expected=f"one of {list(METHODS)}", got=method,
                      fix="use --calibration-method max|percentile|entropy|auto")


def scale_from_amax(amax: float) -> float:
    """Symmetric INT8 scale; a tensor that was all zeros gets a tiny positive scale (it stays exactly 0)."""
    return float(max(amax, 1e-8) / 127.0)
