"""Patch features of a dataset (MVTec layout) with the default embedder, for the coreset and search benchmarks.

    python benchmarks/extract_features.py --data ../shared/data/magnetic_tile_dev --out /tmp/mt_feats.npz

Writes ``train`` float32 [N_train, h·w, D], ``test`` float32 [N_test, h·w, D], ``labels`` int [N_test].
Uses the default training config (EfficientNet-Lite0 blocks.4 + blocks.10, 3×3 aggregation, 224 px) with its
frozen ImageNet weights, or with ``--run RUN`` the embedder of a training run exactly as trained (fine-tuned).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from tocoad_edge.train.config import load_train_config
from tocoad_edge.data import load_dataset
from tocoad_edge.train.embedder_factory import embedder_from_run, make_embedder, with_tone_reference
from tocoad_edge.train.features import embed_images
from tocoad_edge.data import load_resized


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--config", default=None, help="training config YAML (default config if omitted)")
    p.add_argument("--run", default=None, help="tocoad-train run folder: use its (fine-tuned) embedder")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.run:
        emb, cfg = embedder_from_run(args.run)
    else:
        cfg = load_train_config(args.config)
    ds = load_dataset(args.data)
    size = cfg.data.image_size
    t0 = time.perf_counter()
    train_images = load_resized(ds.train, size)
    if not args.run:        # the config's tone measured on the training images, as tocoad-train does
        emb = make_embedder(with_tone_reference(cfg, train_images))
    train = embed_images(emb, train_images)
    test = embed_images(emb, load_resized([t.path for t in ds.test], size))
    labels = np.array([t.label for t in ds.test], dtype=np.int64)
    np.savez(args.out, train=train, test=test, labels=labels)
    print(f"train {train.shape}, test {test.shape} in {time.perf_counter() - t0:.1f} s -> {args.out}")


if __name__ == "__main__":
    main()
