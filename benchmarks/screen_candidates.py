"""Quick screen of frozen-backbone candidates (issue #15 item 3): image AUROC and recall at FPR <= 1/5/10 %.

    python benchmarks/screen_candidates.py --data DIR --out OUT_DIR benchmarks/recall_candidates/*.yaml

Each YAML is a training config (merged over the defaults, as with ``tocoad-train --config``). For each one:
frozen ImageNet backbone → patch features of the training and test images (the trainer's embedder) → a random
pool of ``--pool`` training patches → greedy coreset of ``memory.coreset_ratio`` of the pool (the trainer's
``greedy_coreset``) → exact search → image score = max patch distance (the runtime's ``image_score``). Writes
OUT_DIR/<set>/<candidate>.json and prints one table row per candidate.

``--augment`` screens a memory bank built from the training images and their mirror images (``flips``: left-right
and top-bottom; ``mirrors``: those and both at once, i.e. turned 180°); the pool is drawn from all of them, so the
bank keeps its size. It exists only here, to find out whether the trainer should offer it.

``--tone`` screens a per-image tone normalisation applied to every frame before the model (training and test):
``standardize`` maps each image's own mean and standard deviation to the training images' medians of both (a
darker or flatter part looks like a typical one; ``center`` shifts the mean only), ``clahe`` equalises contrast
locally (OpenCV's CLAHE, clip 2, 8 × 8 tiles, on the luminance). It exists only here, to find out whether the
runtime should offer one.

``--resize`` screens how a frame is brought to the model's input (the product resizes to a square, ``squash``):
``letterbox`` keeps the aspect ratio and pads with the image's mean colour, ``portrait`` first turns landscape
crops upright (``portrait-letterbox`` both); ``--input-hw H W`` resizes to a non-square input instead of
``data.image_size`` squared. These exist only here, to find out whether the runtime should offer them.

Why a pool: on the shared 2-core machine the greedy coreset of all ~260k magnetic-tile patches takes 20+
minutes per candidate. The smaller bank raises false calls, so the screen's numbers rank candidates against
the baseline row of the same screen only; confirm a winner with benchmarks/recall_candidates.sh (tocoad-train
+ tocoad-export + tocoad-eval). A purely random bank (no coreset) is no proxy: on magnetic_tile_dev a random 25 %
of the patches gave the baseline image AUROC 0.739 and recall 16.7 % at FPR <= 5 % (greedy coreset: 0.889, 59.3 %).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from tocoad_edge.data import load_dataset, read_image
from tocoad_edge.eval.metrics import auroc, recall_at_fpr
from tocoad_edge.memory.coreset import greedy_coreset
from tocoad_edge.models.tone import tone_reference
from tocoad_edge.runtime.scoring import image_score
from tocoad_edge.runtime.search.exact import ExactSearch
from tocoad_edge.train.config import load_train_config
from tocoad_edge.train.embedder_factory import make_embedder, with_tone_reference
from tocoad_edge.train.features import embed_images

FPRS = (0.01, 0.05, 0.10)
RESIZES = ("squash", "letterbox", "portrait", "portrait-letterbox")
AUGMENTS = ("none", "flips", "mirrors")
TONES = ("none", "standardize", "center", "clahe")


def to_input(image: np.ndarray, hw: tuple[int, int], resize: str) -> np.ndarray:
    """A uint8 BGR image brought to ``hw`` by ``resize`` (see the module doc)."""
    h, w = hw
    if resize.startswith("portrait") and image.shape[1] > image.shape[0]:
        image = np.ascontiguousarray(np.rot90(image))
    if not resize.endswith("letterbox"):
        return cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
    scale = min(h / image.shape[0], w / image.shape[1])
    nh, nw = max(1, round(image.shape[0] * scale)), max(1, round(image.shape[1] * scale))
    inner = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    fill = [int(v) for v in inner.reshape(-1, 3).mean(0)]
    top, left = (h - nh) // 2, (w - nw) // 2
    return cv2.copyMakeBorder(inner, top, h - nh - top, left, w - nw - left, cv2.BORDER_CONSTANT, value=fill)


def load_inputs(paths: list[Path], hw: tuple[int, int], resize: str) -> np.ndarray:
    out = np.empty((len(paths), *hw, 3), dtype=np.uint8)
    for i, p in enumerate(paths):
        out[i] = to_input(read_image(p), hw, resize)
    return out


def toned(images: np.ndarray, tone: str, reference: tuple[float, float] | None) -> np.ndarray:
    """``images [N, H, W, 3]`` uint8 after the per-image tone normalisation ``tone`` (see the module doc);
    ``reference`` is the (mean, std) that ``standardize`` maps every image to."""
    if tone == "none":
        return images
    out = np.empty_like(images)
    if tone == "clahe":
        clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8))
        for i, im in enumerate(images):
            lab = cv2.cvtColor(im, cv2.COLOR_BGR2LAB)
            lab[..., 0] = clahe.apply(np.ascontiguousarray(lab[..., 0]))
            out[i] = cv2.cvtColor(lab, cv2.COLOR_LAB2BGR)
        return out
    assert reference is not None
    mu_ref, sd_ref = reference
    for i, im in enumerate(images):
        x = im.astype(np.float32)
        gain = sd_ref / max(float(x.std()), 1.0) if tone == "standardize" else 1.0
        out[i] = np.clip((x - x.mean()) * gain + mu_ref, 0, 255).round()
    return out


def augmented(images: np.ndarray, augment: str) -> np.ndarray:
    """``images [N, H, W, 3]`` and, for ``flips``, their left-right and top-bottom mirror images (``mirrors``:
    also both at once)."""
    if augment == "none":
        return images
    parts = [images, images[:, :, ::-1], images[:, ::-1]]
    if augment == "mirrors":
        parts.append(images[:, ::-1, ::-1])
    return np.ascontiguousarray(np.concatenate(parts))


def screen(data: Path, config: Path, seed: int, pool: int, resize: str = "squash",
           input_hw: tuple[int, int] | None = None, augment: str = "none", tone: str = "none") -> dict:
    cfg = load_train_config(config)
    ds = load_dataset(data, require_test=True)
    t0 = time.perf_counter()
    hw = input_hw or (cfg.data.image_size, cfg.data.image_size)
    train_images = load_inputs(list(ds.train), hw, resize)
    reference = tone_reference(train_images) if tone in ("standardize", "center") else None
    # the config's own tone (data.tone, in the model) is measured on the same images as the trainer would
    embedder = make_embedder(with_tone_reference(cfg, train_images))
    with torch.inference_mode():
        train = embed_images(embedder, augmented(toned(train_images, tone, reference), augment))
        test = embed_images(embedder, toned(load_inputs([t.path for t in ds.test], hw, resize), tone, reference))
    flat = train.reshape(-1, train.shape[-1])
    rng = np.random.default_rng(seed)
    if len(flat) > pool:
        flat = flat[np.sort(rng.choice(len(flat), pool, replace=False))]
    idx = greedy_coreset(flat, ratio=cfg.memory.coreset_ratio, projection_dim=cfg.memory.coreset_projection_dim,
                         seed=seed)
    bank = np.ascontiguousarray(flat[idx])
    del flat, train
    search = ExactSearch(bank, threads=1)
    scores = np.array([image_score(search.query(f)) for f in test])
    labels = np.array([t.label for t in ds.test])
    name = config.stem if (resize, input_hw) == ("squash", None) else \
        f"{config.stem}, {resize}" + (f" {hw[0]}x{hw[1]}" if input_hw else "")
    if augment != "none":
        name += f", bank with {augment}"
    if tone != "none":
        name += f", tone {tone}"
    row = {"set": data.name, "candidate": name, "image_auroc": auroc(labels, scores),
           "bank": [int(bank.shape[0]), int(bank.shape[1])], "seconds": time.perf_counter() - t0,
           "protocol": f"frozen backbone, greedy coreset of a random pool of {pool} patches, exact search"}
    for fpr in FPRS:
        row[f"recall_at_fpr_{fpr:g}"] = recall_at_fpr(labels, scores, fpr)[0]
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="data set folder (MVTec layout)")
    ap.add_argument("--out", type=Path, required=True, help="folder for the per-candidate JSON")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pool", type=int, default=80000, help="training patches the coreset is drawn from")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--resize", choices=RESIZES, default="squash", help="how images reach the model input")
    ap.add_argument("--augment", choices=AUGMENTS, default="none",
                    help="mirror images of the training images in the bank's pool")
    ap.add_argument("--tone", choices=TONES, default="none", help="per-image tone normalisation of every frame")
    ap.add_argument("--input-hw", type=int, nargs=2, metavar=("H", "W"), help="non-square model input")
    ap.add_argument("configs", type=Path, nargs="+", help="candidate training configs (YAML)")
    args = ap.parse_args()
    if args.input_hw and any(v < 32 or v % 16 for v in args.input_hw):
        ap.error(f"--input-hw: expected multiples of 16 of at least 32 (the backbone's stride), got {args.input_hw}")
    torch.set_num_threads(args.threads)
    out = args.out / args.data.name
    out.mkdir(parents=True, exist_ok=True)
    print("| set | candidate | image AUROC | recall@1 % | recall@5 % | recall@10 % | bank | s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for config in args.configs:
        hw = tuple(args.input_hw) if args.input_hw else None
        row = screen(args.data, config, args.seed, args.pool, args.resize, hw, args.augment, args.tone)
        (out / f"{row['candidate'].replace(', ', '_').replace(' ', '_')}.json").write_text(json.dumps(row, indent=1))
        r = [100 * row[f"recall_at_fpr_{f:g}"] for f in FPRS]
        print(f"| {row['set']} | {row['candidate']} | {100 * row['image_auroc']:.1f} | {r[0]:.1f} | {r[1]:.1f} "
              f"| {r[2]:.1f} | {row['bank'][0]}×{row['bank'][1]} | {row['seconds']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
