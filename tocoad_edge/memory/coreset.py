"""Greedy k-center coreset (PatchCore), over a random projection, vectorised and pruned.

The classic loop updates every point's distance to the newest centre at each step (N·d work per
step). Here the points are first grouped into spatial blocks around pivots; a block is only touched
when the new centre could be closer to one of its points than that point's current distance
(triangle inequality: ``|c − pivot| − radius < max_min_dist(block)``). Late in the selection almost
every block is skipped. The result is the same selection as the plain greedy loop.
"""
from __future__ import annotations

import numpy as np


def _random_projection(n_in: int, n_out: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n_in, n_out)) / np.sqrt(n_out)).astype(np.float32)


def _sq_dists(x: np.ndarray, x_sq: np.ndarray, c: np.ndarray) -> np.ndarray:
    d = x_sq - 2.0 * (x @ c) + float(c @ c)
    np.maximum(d, 0.0, out=d)
    return d


def _assign_blocks(x: np.ndarray, n_blocks: int, rng: np.random.Generator, chunk: int = 65536) -> np.ndarray:
    pivots = x[rng.choice(len(x), size=n_blocks, replace=False)]
    p_sq = (pivots * pivots).sum(1)
    labels = np.empty(len(x), dtype=np.int64)
    for s in range(0, len(x), chunk):
        xs = x[s:s + chunk]
        d = p_sq[None, :] - 2.0 * xs @ pivots.T
        labels[s:s + chunk] = d.argmin(1)
    return labels


def greedy_coreset(features: np.ndarray, ratio: float | None = None, *, count: int | None = None,
                   projection_dim: int | None = 128, seed: int = 0, n_blocks: int | None = None,
                   progress=None, selection_order: bool = False) -> np.ndarray:
    """Indices of a greedy k-center coreset of ``features`` ``[N, D]``.

    Give ``ratio`` (fraction of N) or ``count``. Distances are computed after a Gaussian random
    projection to ``projection_dim`` (None: no projection). Deterministic for a given seed.
    Indices come sorted, or in the order they were picked with ``selection_order=True``.
    """
    n = int(features.shape[0])
    if count is None:
        if ratio is None:
            raise ValueError("give ratio or count")
        count = max(1, int(round(n * ratio)))
    count = int(min(max(count, 1), n))
    if count == n and not selection_order:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    x = np.ascontiguousarray(features, dtype=np.float32)
    if projection_dim is not None and projection_dim < x.shape[1]:
        x = x @ _random_projection(x.shape[1], projection_dim, seed)
    if n_blocks is None:
        n_blocks = int(np.clip(np.sqrt(n) / 2, 1, 512))
    n_blocks = min(n_blocks, n)

    # Group points by block so each block is a contiguous slice.
    labels = _assign_blocks(x, n_blocks, rng)
    order = np.argsort(labels, kind="stable")
    x = np.ascontiguousarray(x[order])
    labels = labels[order]
    bounds = np.searchsorted(labels, np.arange(n_blocks + 1))
    x_sq = (x * x).sum(1)
    pivots = np.stack([x[bounds[b]:bounds[b + 1]].mean(0) if bounds[b + 1] > bounds[b] else np.zeros(x.shape[1], np.float32)
                       for b in range(n_blocks)]).astype(np.float32)
    radius = np.zeros(n_blocks, dtype=np.float32)
    for b in range(n_blocks):
        s, e = bounds[b], bounds[b + 1]
        if e > s:
            radius[b] = np.sqrt(_sq_dists(x[s:e], x_sq[s:e], pivots[b]).max())

    min_d = np.full(n, np.inf, dtype=np.float32)        # squared distance to the nearest chosen centre
    block_max = np.full(n_blocks, np.inf, dtype=np.float32)
    block_max[bounds[1:] == bounds[:-1]] = -1.0            # empty blocks never win
    block_arg = bounds[:-1].copy()
    selected = np.empty(count, dtype=np.int64)
    current = int(rng.integers(n))
    for i in range(count):
        selected[i] = current
        c = x[current]
        pd = np.sqrt(np.maximum(((pivots - c) ** 2).sum(1), 0.0)) - radius
        touch = np.nonzero((np.maximum(pd, 0.0) ** 2 < block_max) & (block_max >= 0))[0]
        for b in touch:
            s, e = bounds[b], bounds[b + 1]
            seg = min_d[s:e]
            np.minimum(seg, _sq_dists(x[s:e], x_sq[s:e], c), out=seg)
            j = int(seg.argmax())
            block_max[b] = seg[j]
            block_arg[b] = s + j
        best = int(block_max.argmax())
        current = int(block_arg[best])
        if progress is not None:
            progress(1)
    picked = order[selected]
    return picked if selection_order else np.sort(picked)
