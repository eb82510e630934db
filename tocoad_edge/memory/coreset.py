"""Greedy k-center coreset (PatchCore) over a random projection: exact, vectorised, pruned.

The plain greedy loop (``plain_greedy_coreset``) updates every point's distance to the newest centre at
each step: N·d work per step, 773 s for 157k → 15.7k patches. Triangle-inequality pruning with spatial
blocks or centre clusters skips almost nothing on real patch features (measured on magnetic tile: 60-80 %
of points still touched), because their intrinsic dimension is high. What does work is a *tight lower
bound in few dimensions*: the top principal axes plus the residual norm (``_bound_coordinates``). One
``[N, 25]`` GEMV per step finds the 1-3 % of points whose distance can still shrink; only those get the
exact distance. The selection is the plain loop's (same first centre, same formula, same argmax); a test
checks it.
"""
from __future__ import annotations

import numpy as np


def _random_projection(n_in: int, n_out: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n_in, n_out)) / np.sqrt(n_out)).astype(np.float32)


def project(features: np.ndarray, projection_dim: int | None, seed: int) -> np.ndarray:
    """The float32 points the selection works on: a Gaussian random projection to ``projection_dim``."""
    x = np.ascontiguousarray(features, dtype=np.float32)
    if projection_dim is not None and projection_dim < x.shape[1]:
        x = x @ _random_projection(x.shape[1], projection_dim, seed)
    return np.ascontiguousarray(x)


def first_centre(n: int, seed: int) -> int:
    return int(np.random.default_rng(seed).integers(n))


def _resolve_count(n: int, ratio: float | None, count: int | None) -> int:
    if count is None:
        if ratio is None:
            raise ValueError("give ratio or count")
        count = max(1, int(round(n * ratio)))
    return int(min(max(count, 1), n))


def plain_greedy_coreset(features: np.ndarray, ratio: float | None = None, *, count: int | None = None,
                         projection_dim: int | None = 128, seed: int = 0) -> np.ndarray:
    """Reference: the textbook greedy k-center loop (N·d work per step). Slow; for tests and benchmarks."""
    n = int(features.shape[0])
    count = _resolve_count(n, ratio, count)
    if count == n:
        return np.arange(n)
    x = project(features, projection_dim, seed)
    x_sq = np.einsum("ij,ij->i", x, x)
    min_d = np.full(n, np.inf, dtype=np.float32)
    selected = np.empty(count, dtype=np.int64)
    current = first_centre(n, seed)
    for i in range(count):
        selected[i] = current
        c = x[current]
        d = x_sq - 2.0 * (x @ c) + np.float32(c @ c)
        np.minimum(min_d, d, out=min_d)
        current = int(min_d.argmax())
    return np.sort(selected)


def _blas_limit(threads: int | None):
    """BLAS pool limit for the selection loop. Its GEMVs are small: one thread avoids OpenBLAS spin-waits,
    which made the loop 10-50× slower on a busy 2-core machine."""
    import contextlib

    if not threads:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=int(threads), user_api="blas")


def greedy_coreset(features: np.ndarray, ratio: float | None = None, *, count: int | None = None,
                   projection_dim: int | None = 128, seed: int = 0,
                   progress=None, blas_threads: int | None = 1, bound_dim: int = 24,
                   selection_order: bool = False) -> np.ndarray:
    """Sorted indices of a greedy k-center coreset of ``features`` ``[N, D]``.

    Give ``ratio`` (fraction of N) or ``count``. Distances are computed after a Gaussian random
    projection to ``projection_dim`` (None: no projection). Deterministic for a given seed, and equal to
    ``plain_greedy_coreset`` with the same arguments (up to float rounding ties). Indices come sorted, or
    in the order they were picked with ``selection_order=True``.
    """
    n = int(features.shape[0])
    count = _resolve_count(n, ratio, count)
    if count == n and not selection_order:
        return np.arange(n)
    x = project(features, projection_dim, seed)
    with _blas_limit(blas_threads):
        picked = _select(x, count, seed, bound_dim, progress)
    return picked if selection_order else np.sort(picked)


def _bound_coordinates(x: np.ndarray, bound_dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``z = [P·(x − μ), |residual|]`` with P the top ``bound_dim`` principal axes (orthonormal) of a sample.

    For any two points ``|z_p − z_c| ≤ |x_p − x_c|``: the first part is an orthogonal projection, the last
    coordinate compares residual norms (reverse triangle inequality). A cheap, tight lower bound.
    """
    rng = np.random.default_rng(seed + 1)
    sample = x[rng.choice(len(x), size=min(len(x), 20000), replace=False)].astype(np.float64)
    mu = sample.mean(0)
    _, _, vt = np.linalg.svd(sample - mu, full_matrices=False)
    k = int(min(bound_dim, x.shape[1]))
    p = np.ascontiguousarray(vt[:k].T, dtype=np.float32)
    z = np.empty((len(x), k + 1), dtype=np.float32)
    for s in range(0, len(x), 65536):
        xm = x[s:s + 65536] - mu.astype(np.float32)
        zp = xm @ p
        z[s:s + 65536, :k] = zp
        z[s:s + 65536, k] = np.sqrt(np.maximum(np.einsum("ij,ij->i", xm, xm) - np.einsum("ij,ij->i", zp, zp), 0.0))
    return z, np.einsum("ij,ij->i", z, z)


# Rounding guard: a point is skipped only when its lower bound exceeds its current distance by this much.
_REL_MARGIN = np.float32(1e-3)


def _select(x: np.ndarray, count: int, seed: int, bound_dim: int, progress) -> np.ndarray:
    """Greedy k-center. Each step needs ``min(d(p, chosen))`` updated with the new centre ``c``; a point
    whose lower bound ``|z_p − z_c|²`` is not below its current squared distance cannot change, so only the
    survivors of one ``[N, bound_dim+1]`` GEMV get the exact ``[·, d]`` distance (same formula as the plain
    loop, so the same numbers and the same choices).

    The filter ``|z_p − z_c|² ≤ t_p`` is rewritten as ``z_p·z_c − |z_c|²/2 ≥ h_p`` with
    ``h_p = (|z_p|² − t_p)/2`` kept per point: one GEMV and one comparison per step.
    """
    n = len(x)
    x_sq = np.einsum("ij,ij->i", x, x)
    z, z_sq = _bound_coordinates(x, bound_dim, seed)
    min_d = np.full(n, np.inf, dtype=np.float32)       # squared distance to the nearest chosen centre
    h = np.full(n, -np.inf, dtype=np.float32)
    selected = np.empty(count, dtype=np.int64)
    current = first_centre(n, seed)
    one_plus = np.float32(1.0) + _REL_MARGIN
    # Squared distances by expansion carry ~1e-7·|x|² rounding; the guard is 100× that.
    abs_margin = np.float32(1e-5 * float(np.median(x_sq)))
    for i in range(count):
        selected[i] = current
        c = x[current]
        cc = np.float32(c @ c)
        zc = z[current]
        g = z @ zc
        g -= np.float32(0.5 * float(zc @ zc))
        idx = np.flatnonzero(g >= h)
        d = x[idx] @ c
        d *= -2.0
        d += x_sq[idx]
        d += cc
        better = d < min_d[idx]
        ib = idx[better]
        db = d[better]
        min_d[ib] = db
        h[ib] = np.float32(0.5) * (z_sq[ib] - (db * one_plus + abs_margin))
        current = int(min_d.argmax())
        if progress is not None:
            progress(1)
    return selected
