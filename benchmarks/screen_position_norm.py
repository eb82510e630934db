"""Screen a per-position normalisation of the image score (issue #15): does dividing out how much each grid position
varies on normal parts raise recall at a low false-call rate?

    python benchmarks/screen_position_norm.py BUNDLE --data DIR [--splits 40]

The bundle's patch distances of every test image (exact search), then ``--splits`` random halvings of the good
test images: the mean and spread of each grid position come from one half (blurred over 2 patches), the metrics
from the other half plus every defect. Prints image AUROC and recall at FPR <= 1 / 5 / 10 % (means over the
splits) for the largest patch, ``smoothed-max``, and both normalisations of the smoothed grid. Taking the
statistics from test images is optimistic: in use they would come from the run's few held-out training images.
"""
from __future__ import annotations

import argparse

import cv2
import numpy as np

from tocoad_edge.data import load_dataset, read_image
from tocoad_edge.eval.metrics import auroc, recall_at_fpr
from tocoad_edge.runtime import Detector
from tocoad_edge.runtime.scoring import score_kernel, smooth_grid

FPRS = (0.01, 0.05, 0.10)


def patch_grids(bundle: str, data: str) -> tuple[np.ndarray, np.ndarray, float, int]:
    det = Detector.open(bundle, search="exact")
    grid = det.manifest.features.grid
    items = list(load_dataset(data, require_train=False, require_test=True).test)
    grids = np.stack([det.search.query(det.embed(read_image(t.path))[0]).reshape(grid) for t in items])
    return grids, np.array([t.label for t in items]), det.manifest.scoring.gaussian_sigma, det.manifest.features.stride


def screen(grids: np.ndarray, labels: np.ndarray, kernel: np.ndarray, splits: int) -> dict[str, np.ndarray]:
    smoothed = smooth_grid(grids, kernel)
    good, bad = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
    rng = np.random.default_rng(0)
    out: dict[str, list] = {}
    for _ in range(splits):
        order = rng.permutation(good)
        stats, held = order[:len(good) // 2], order[len(good) // 2:]
        mean = cv2.GaussianBlur(smoothed[stats].mean(0), (0, 0), 2)
        spread = cv2.GaussianBlur(smoothed[stats].std(0) + 1e-6, (0, 0), 2)
        scores = {"max": grids.reshape(len(grids), -1).max(1),
                  "smoothed-max": smoothed.reshape(len(grids), -1).max(1),
                  "smoothed z-score": ((smoothed - mean) / spread).reshape(len(grids), -1).max(1),
                  "smoothed ratio": (smoothed / mean).reshape(len(grids), -1).max(1)}
        idx = np.concatenate([held, bad])
        y = labels[idx]
        for name, s in scores.items():
            out.setdefault(name, []).append([auroc(y, s[idx])] + [recall_at_fpr(y, s[idx], f)[0] for f in FPRS])
    return {k: np.mean(v, 0) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle")
    ap.add_argument("--data", required=True)
    ap.add_argument("--splits", type=int, default=40)
    args = ap.parse_args()
    grids, labels, sigma, stride = patch_grids(args.bundle, args.data)
    kernel = score_kernel("smoothed-max", sigma, stride)
    assert kernel is not None, "the bundle's gaussian_sigma is 0: nothing to smooth"
    print(f"{args.bundle} on {args.data}: {int((labels == 0).sum())} good, {int(labels.sum())} defective")
    print("| score | image AUROC | recall at FPR <= 1 % | <= 5 % | <= 10 % |\n| --- | --- | --- | --- | --- |")
    for name, m in screen(grids, labels, kernel, args.splits).items():
        print(f"| {name} | {m[0]:.3f} | " + " | ".join(f"{100 * v:.1f} %" for v in m[1:]) + " |")


if __name__ == "__main__":
    main()
