"""The half-split protocol of the score screens (screen_global_score.py, screen_discriminator.py).

A fused score needs each part's mean and spread on good images, and those must not be the good images it is then
judged on. So: ``splits`` random halvings of the good test images; one half standardises every score, the other
half plus every defect gives the metrics; the table prints their means over the splits.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from tocoad_edge.eval.metrics import auroc, recall_at_fpr

FPRS = (0.01, 0.05)
Fuse = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


def half_split_table(labels: np.ndarray, scores: dict[str, np.ndarray], fuse: Fuse, splits: int,
                     seed: int = 0) -> None:
    """Print image AUROC and recall at FPR ≤ 1 % / 5 % of each score in ``scores`` and of each fused score
    ``fuse(standardised scores)`` returns."""
    good, bad = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
    rng = np.random.default_rng(seed)
    rows: dict[str, list[list[float]]] = {}
    for _ in range(splits):
        order = rng.permutation(good)
        stats, held = order[:len(good) // 2], order[len(good) // 2:]
        z = {n: (s - s[stats].mean()) / (s[stats].std() + 1e-12) for n, s in scores.items()}
        idx = np.concatenate([held, bad])
        y = labels[idx]
        for name, s in {**scores, **fuse(z)}.items():
            rows.setdefault(name, []).append([auroc(y, s[idx])] + [recall_at_fpr(y, s[idx], f)[0] for f in FPRS])
    print("| score | image AUROC | recall at FPR <= 1 % | <= 5 % |")
    print("| --- | --- | --- | --- |")
    for name, v in rows.items():
        m = np.mean(v, 0)
        print(f"| {name} | {m[0]:.4f} | {m[1] * 100:.1f} % | {m[2] * 100:.1f} % |")
