"""Screen stage 1's discriminator D as a second score beside the patch score (issue #15): D learnt to segment G's
synthetic defects; does its map catch the faint defects the patch score passes?

    python benchmarks/screen_discriminator.py BUNDLE RUN --data DIR [--splits 40]

``RUN`` is the training run folder of ``BUNDLE`` (it holds ``tocoad/stage1_discriminator.safetensors``). D runs on
the frozen backbone with the run's input tone, as it was trained; its image score is the maximum of its probability
map (``--smooth`` box size in grid cells first, 1 = none). The patch score is the bundle's ``smoothed-max`` of exact
patch distances. ``--splits`` random halvings of the good test images: one half gives each score's mean and spread
(for the fused scores: the sum of the standardised scores, weighted, and their maximum), the other half plus every
defect the metrics (means over the splits).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch

from tocoad_edge.data import load_dataset, read_image
from tocoad_edge.data.images import resize_to_input
from tocoad_edge.runtime import Detector
from tocoad_edge.runtime.scoring import image_scores, score_kernel
from tocoad_edge.train._common import normalise, to_float_rgb
from tocoad_edge.train.checkpoints import load_tensors
from tocoad_edge.train.discriminator import Discriminator
from tocoad_edge.train.embedder_factory import configured_backbone, run_config
from tocoad_edge.train.run_folder import RunFolder

from half_split import half_split_table  # noqa: E402  (same folder)


@torch.no_grad()
def discriminator_maps(run_dir: Path, paths: list, batch: int = 16) -> np.ndarray:
    cfg = run_config(RunFolder(run_dir))
    backbone = configured_backbone(cfg).eval()
    layers = list(cfg.backbone.layers)
    disc = Discriminator([backbone.layer_channels(n) for n in layers], cfg.stage1.decoder_width)
    disc.load_state_dict(load_tensors(run_dir / "tocoad" / "stage1_discriminator.safetensors"))
    disc.eval()
    size = cfg.data.image_size
    out = []
    for i in range(0, len(paths), batch):
        imgs = [resize_to_input(read_image(p), size) for p in paths[i:i + batch]]
        maps = backbone.forward_layers(normalise(to_float_rgb(imgs), backbone), layers)
        out.append(disc.probability(maps)[:, 0].numpy())
    return np.concatenate(out)


def patch_scores(bundle: str, paths: list) -> np.ndarray:
    det = Detector.open(bundle, search="exact")
    grid = det.manifest.features.grid
    distances = np.stack([det.search.query(det.embed(read_image(p))[0]) for p in paths])
    kernel = score_kernel("smoothed-max", det.manifest.scoring.gaussian_sigma, det.manifest.features.stride)
    return image_scores(distances, grid, kernel)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle")
    ap.add_argument("run", type=Path)
    ap.add_argument("--data", required=True)
    ap.add_argument("--splits", type=int, default=40)
    ap.add_argument("--smooth", type=int, nargs="+", default=[1, 3])
    args = ap.parse_args()

    ds = load_dataset(args.data, require_test=True)
    labels = np.array([t.label for t in ds.test])
    paths = [t.path for t in ds.test]
    dmaps = discriminator_maps(args.run, paths)
    patch = patch_scores(args.bundle, paths)
    scores: dict[str, np.ndarray] = {"smoothed-max": patch}
    for k in args.smooth:
        sm = dmaps if k == 1 else np.stack([cv2.blur(m, (k, k)) for m in dmaps])
        scores[f"D max, box {k}"] = sm.reshape(len(sm), -1).max(1)

    def fuse(z: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        fused = {}
        for n in z:
            if n != "smoothed-max":
                fused[f"sum, {n}"] = z["smoothed-max"] + z[n]
                fused[f"sum, {n} x0.5"] = z["smoothed-max"] + 0.5 * z[n]
                fused[f"max, {n}"] = np.maximum(z["smoothed-max"], z[n])
        return fused

    half_split_table(labels, scores, fuse, args.splits)


if __name__ == "__main__":
    main()
