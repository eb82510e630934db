"""Screen an image-level score beside the patch score (issue #15): does a part's overall look, compared with the
training images, catch the defects the patch score passes?

    python benchmarks/screen_global_score.py BUNDLE --data DIR [--splits 40]

Each image's patch embeddings (the bundle's backbone) are pooled into one vector (mean and root mean square of each
feature, standardised by the training images); its global score is the distance to the nearest (``--k``: mean of
the k nearest) training image's vector. The patch score is the bundle's ``smoothed-max`` of exact patch distances.
``--splits`` random halvings of the good test images: one half gives each score's mean and spread (for the fused
scores, a sum of the two standardised scores, weighted, and their maximum), the other half plus every defect the
metrics (means over the splits). Also prints how many defects the patch score passes at FPR <= 5 % of all good
test images and the range of their scores; ``--sheets PREFIX`` writes them (up to 18, lowest score first) to
``PREFIX_missed.png`` and the 12 highest-scoring good images to ``PREFIX_good_highest.png``, each labelled with its
score, for a look at what the patch score misses and what sets its threshold.
"""
from __future__ import annotations

import argparse

import cv2
import numpy as np

from tocoad_edge.data import load_dataset, read_image
from tocoad_edge.runtime import Detector
from tocoad_edge.runtime.scoring import image_scores, score_kernel

from half_split import half_split_table  # noqa: E402  (same folder)


def embed_all(det: Detector, paths: list) -> tuple[np.ndarray, np.ndarray]:
    """Exact patch-distance grids ``[n, h, w]`` and pooled vectors ``[n, 2D]`` of the images at ``paths``."""
    grid = det.manifest.features.grid
    grids, pooled = [], []
    for p in paths:
        e = det.embed(read_image(p))[0]
        grids.append(det.search.query(e).reshape(grid))
        pooled.append(np.concatenate([e.mean(0), np.sqrt((e * e).mean(0))]))
    return np.stack(grids), np.stack(pooled)


def contact_sheet(paths: list, scores: np.ndarray, out: str, columns: int = 6, side: int = 200) -> None:
    tiles = []
    for p, s in zip(paths, scores):
        im = cv2.resize(read_image(p), (side, side))
        cv2.putText(im, f"{s:.1f}", (5, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 255), 2)
        tiles.append(im)
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % columns)
    rows = [np.hstack(tiles[i:i + columns]) for i in range(0, len(tiles), columns)]
    cv2.imwrite(out, np.vstack(rows))


def global_scores(test: np.ndarray, train: np.ndarray, k: int) -> np.ndarray:
    mean, spread = train.mean(0), train.std(0) + 1e-6
    a, b = (test - mean) / spread, (train - mean) / spread
    d = np.sqrt(np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None] - 2 * a @ b.T, 0.0))
    d.sort(1)
    out: np.ndarray = d[:, :k].mean(1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle")
    ap.add_argument("--data", required=True)
    ap.add_argument("--splits", type=int, default=40)
    ap.add_argument("--k", type=int, default=1)
    ap.add_argument("--sheets", metavar="PREFIX", help="write the missed defects and the highest good images as PNGs")
    args = ap.parse_args()

    det = Detector.open(args.bundle, search="exact")
    ds = load_dataset(args.data, require_test=True)
    labels = np.array([t.label for t in ds.test])
    grids, pooled = embed_all(det, [t.path for t in ds.test])
    _, pooled_train = embed_all(det, list(ds.train))
    kernel = score_kernel("smoothed-max", det.manifest.scoring.gaussian_sigma, det.manifest.features.stride)
    patch = image_scores(grids.reshape(len(grids), -1), det.manifest.features.grid, kernel)
    glob = global_scores(pooled, pooled_train, args.k)

    good, bad = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
    threshold = np.quantile(patch[good], 0.95)
    missed = bad[patch[bad] <= threshold]
    print(f"patch score at FPR <= 5 % of all {len(good)} good images: threshold {threshold:.2f}, {len(missed)} of "
          f"{len(bad)} defects pass (scores {patch[missed].min():.2f}-{patch[missed].max():.2f})")

    if args.sheets and len(missed):
        paths = [t.path for t in ds.test]
        low = missed[np.argsort(patch[missed])][:18]
        contact_sheet([paths[i] for i in low], patch[low], f"{args.sheets}_missed.png")
        high = good[np.argsort(-patch[good])][:12]
        contact_sheet([paths[i] for i in high], patch[high], f"{args.sheets}_good_highest.png")

    def fuse(z: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        zp, zg = z["smoothed-max"], z["global"]
        return {"sum": zp + zg, "sum, global x0.5": zp + 0.5 * zg, "max": np.maximum(zp, zg)}

    half_split_table(labels, {"smoothed-max": patch, "global": glob}, fuse, args.splits)


if __name__ == "__main__":
    main()
