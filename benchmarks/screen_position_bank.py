"""Screen a position-restricted bank (issue #15): on aligned parts (solar cells, boards) a faint line may find its
nearest neighbour in a busbar or border patch elsewhere in the part. Here each test patch is compared only with the
training patches at grid positions within ``--radius`` cells of its own (every training image, no coreset).

    python benchmarks/screen_position_bank.py BUNDLE --data DIR [--radius 1 2 3]

Prints image AUROC and recall at FPR <= 1 % / 5 % on all test images for the bundle's global bank (exact search)
and for each radius, all scored by ``smoothed-max``.
"""
from __future__ import annotations

import argparse

import numpy as np

from tocoad_edge.data import load_dataset, read_image
from tocoad_edge.eval.metrics import auroc, recall_at_fpr
from tocoad_edge.runtime import Detector
from tocoad_edge.runtime.scoring import score_kernel, smooth_grid


def position_distances(test: np.ndarray, train: np.ndarray, radius: int) -> np.ndarray:
    """``test`` ``[n, h, w, D]``, ``train`` ``[m, h, w, D]`` → each test patch's distance to the nearest training
    patch within ``radius`` cells of its position, ``[n, h, w]``."""
    _, gh, gw, dim = test.shape
    train_sq = (train * train).sum(-1)
    out = np.empty(test.shape[:3], np.float32)
    for i in range(gh):
        for j in range(gw):
            rows, cols = slice(max(0, i - radius), i + radius + 1), slice(max(0, j - radius), j + radius + 1)
            cand, cand_sq = train[:, rows, cols].reshape(-1, dim), train_sq[:, rows, cols].reshape(-1)
            q = test[:, i, j]
            d2 = (q * q).sum(1)[:, None] + cand_sq[None] - 2 * q @ cand.T
            out[:, i, j] = np.sqrt(np.maximum(d2.min(1), 0.0))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle")
    ap.add_argument("--data", required=True)
    ap.add_argument("--radius", type=int, nargs="+", default=[1, 2, 3])
    args = ap.parse_args()

    det = Detector.open(args.bundle, search="exact")
    gh, gw = det.manifest.features.grid
    ds = load_dataset(args.data, require_test=True)
    labels = np.array([t.label for t in ds.test])
    test = np.stack([det.embed(read_image(t.path))[0] for t in ds.test]).astype(np.float32)
    train = np.stack([det.embed(read_image(p))[0] for p in ds.train]).astype(np.float32)
    kernel = score_kernel("smoothed-max", det.manifest.scoring.gaussian_sigma, det.manifest.features.stride)

    def report(name: str, grids: np.ndarray) -> None:
        s = smooth_grid(grids, kernel).reshape(len(grids), -1).max(1)
        print(f"| {name} | {auroc(labels, s):.4f} | {recall_at_fpr(labels, s, 0.01)[0] * 100:.1f} % | "
              f"{recall_at_fpr(labels, s, 0.05)[0] * 100:.1f} % |", flush=True)

    print("| bank | image AUROC | recall at FPR <= 1 % | <= 5 % |")
    print("| --- | --- | --- | --- |")
    report("global (the bundle's, exact)", np.stack([det.search.query(e) for e in test]).reshape(len(test), gh, gw))
    shape = (gh, gw, -1)
    for r in args.radius:
        report(f"positions within {r} cells", position_distances(test.reshape(len(test), *shape),
                                                                 train.reshape(len(train), *shape), r))


if __name__ == "__main__":
    main()
