"""Screen a position-restricted bank (issue #15): on aligned parts (solar cells, boards) a faint line may find its
nearest neighbour in a busbar or border patch elsewhere in the part. Here each test patch is compared only with the
training patches at grid positions within ``--radius`` cells of its own (every training image, no coreset).

    python benchmarks/screen_position_bank.py BUNDLE --data DIR [--radius 1 2 3] [--keep 1.0 0.1]

Prints image AUROC and recall at FPR <= 1 % / 5 % on all test images for the bundle's global bank (exact search)
and for each radius, all scored by ``smoothed-max``. ``--keep F``: each position keeps a random fraction F of the
training images' patches, e.g. 0.1 for a bank the size of a 10 % coreset: chosen at random (seed 0), or with
``--greedy`` by the trainer's greedy coreset (``memory/coreset.py``) of each position's patches.
"""
from __future__ import annotations

import argparse

import numpy as np

from tocoad_edge.data import load_dataset, read_image
from tocoad_edge.eval.metrics import auroc, recall_at_fpr
from tocoad_edge.memory.coreset import greedy_coreset
from tocoad_edge.runtime import Detector
from tocoad_edge.runtime.scoring import image_scores, score_kernel


def kept_patches(train: np.ndarray, keep: float, greedy: bool) -> np.ndarray:
    """``[m, h, w]`` mask of the training patches each position keeps."""
    m, gh, gw, _ = train.shape
    if keep >= 1.0:
        return np.ones((m, gh, gw), bool)
    if not greedy:
        return np.random.default_rng(0).random((m, gh, gw)) < keep
    mask = np.zeros((m, gh, gw), bool)
    count = max(1, int(round(keep * m)))
    for i in range(gh):
        for j in range(gw):
            mask[greedy_coreset(train[:, i, j], count=count), i, j] = True
    return mask


def position_distances(test: np.ndarray, train: np.ndarray, radius: int, kept: np.ndarray) -> np.ndarray:
    """``test`` ``[n, h, w, D]``, ``train`` ``[m, h, w, D]`` → each test patch's distance to the nearest kept
    training patch within ``radius`` cells of its position, ``[n, h, w]``."""
    _, gh, gw, dim = train.shape
    train_sq = (train * train).sum(-1)
    out = np.empty(test.shape[:3], np.float32)
    for i in range(gh):
        for j in range(gw):
            rows, cols = slice(max(0, i - radius), i + radius + 1), slice(max(0, j - radius), j + radius + 1)
            mask = kept[:, rows, cols].reshape(-1)
            cand, cand_sq = train[:, rows, cols].reshape(-1, dim)[mask], train_sq[:, rows, cols].reshape(-1)[mask]
            q = test[:, i, j]
            d2 = (q * q).sum(1)[:, None] + cand_sq[None] - 2 * q @ cand.T
            out[:, i, j] = np.sqrt(np.maximum(d2.min(1), 0.0))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle")
    ap.add_argument("--data", required=True)
    ap.add_argument("--radius", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--keep", type=float, nargs="+", default=[1.0])
    ap.add_argument("--greedy", action="store_true", help="keep each position's greedy coreset, not a random draw")
    args = ap.parse_args()

    det = Detector.open(args.bundle, search="exact")
    gh, gw = det.manifest.features.grid
    ds = load_dataset(args.data, require_test=True)
    labels = np.array([t.label for t in ds.test])
    test = np.stack([det.embed(read_image(t.path))[0] for t in ds.test]).astype(np.float32)
    train = np.stack([det.embed(read_image(p))[0] for p in ds.train]).astype(np.float32)
    kernel = score_kernel("smoothed-max", det.manifest.scoring.gaussian_sigma, det.manifest.features.stride)

    def report(name: str, grids: np.ndarray) -> None:
        s = image_scores(grids.reshape(len(grids), -1), (gh, gw), kernel)
        print(f"| {name} | {auroc(labels, s):.4f} | {recall_at_fpr(labels, s, 0.01)[0] * 100:.1f} % | "
              f"{recall_at_fpr(labels, s, 0.05)[0] * 100:.1f} % |", flush=True)

    print("| bank | image AUROC | recall at FPR <= 1 % | <= 5 % |")
    print("| --- | --- | --- | --- |")
    report("global (the bundle's, exact)", np.stack([det.search.query(e) for e in test]).reshape(len(test), gh, gw))
    shape = (gh, gw, -1)
    test, train = test.reshape(len(test), *shape), train.reshape(len(train), *shape)
    for keep in args.keep:
        kept = kept_patches(train, keep, args.greedy)
        how = "greedy" if args.greedy and keep < 1.0 else "random" if keep < 1.0 else "all"
        for r in args.radius:
            report(f"positions within {r} cells, {keep:.0%} of the patches kept ({how})",
                   position_distances(test, train, r, kept))


if __name__ == "__main__":
    main()
