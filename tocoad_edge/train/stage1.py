"""ToCoAD stage 1: train the discriminative network D on G's synthetic anomalies, on frozen backbone features.

Frozen features are computed once for a fixed synthetic set (``stage1.synthetic_per_image`` samples per normal
image, at most ``stage1.max_synthetic``), so the epochs only run the small decoder. D's pixel AUROC on a
held-out synthetic set is logged and stored in the checkpoint's metadata.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from .config import TrainConfig
from ..errors import TrainingError
from ..eval.metrics import auroc
from ..models.base import Backbone
from ..synth import AnomalyGenerator
from ..typed_config import to_dict
from ._common import Log, batches, freeze, normalise, to_float_rgb, tqdm_disable
from .checkpoints import fingerprint, load_tensors, read_meta, save_checkpoint
from .discriminator import Discriminator, focal_loss, masks_to_grid

HOLDOUT_INDEX_OFFSET = 10_000_000   # G sample indices of the held-out set never meet the training indices


@torch.no_grad()
def frozen_layer_maps(backbone: Backbone, layers: list[str], images: Sequence[np.ndarray],
                      batch_size: int = 16) -> list[torch.Tensor]:
    outs: list[list[torch.Tensor]] = [[] for _ in layers]
    for idx in batches(range(len(images)), batch_size):
        maps = backbone.forward_layers(normalise(to_float_rgb([images[i] for i in idx]), backbone), layers)
        for o, m in zip(outs, maps):
            o.append(m)
    return [torch.cat(o) for o in outs]


def _synthetic_set(generator: AnomalyGenerator, images: Sequence[np.ndarray], count: int, offset: int,
                   reverse: bool) -> tuple[list[np.ndarray], np.ndarray]:
    n = len(images)
    imgs, masks = [], []
    for k in range(count):
        i = (n - 1 - k) % n if reverse else k % n
        s = generator.sample(images[i], offset + k)
        imgs.append(s.image)
        masks.append(s.mask)
    return imgs, np.stack(masks)


def train_discriminator(cfg: TrainConfig, backbone: Backbone, layers: list[str], images: Sequence[np.ndarray],
                        generator: AnomalyGenerator, ckpt_dir: Path, log: Log,
                        progress: bool | None = None) -> tuple[Discriminator, dict]:
    """Train D (or load it from ``ckpt_dir`` when the same config and images produced it). Returns D (eval mode,
    frozen) and a report ``{"pixel_auroc": ..., "loss": ...}``."""
    s1 = cfg.stage1
    fp = fingerprint({"stage": 1, "seed": cfg.seed, "synth": to_dict(cfg.synth), "stage1": to_dict(s1),
                      "backbone": to_dict(cfg.backbone), "layers": layers}, list(images))
    path = ckpt_dir / "stage1_discriminator.safetensors"
    disc = Discriminator([backbone.layer_channels(n) for n in layers], s1.decoder_width)
    meta = read_meta(path)
    if meta and meta.get("fingerprint") == fp:
        disc.load_state_dict(load_tensors(path))
        report = meta.get("report", {})
        held_out = report.get("pixel_auroc", float("nan"))
        log(f"stage 1: reusing D from {path} (held-out synthetic pixel AUROC {held_out:.3f})")
        return freeze(disc), report

    t_wall, t_cpu = time.perf_counter(), time.process_time()
    n_train = min(s1.max_synthetic, s1.synthetic_per_image * len(images))
    log(f"stage 1: {n_train} synthetic training samples, {s1.holdout_synthetic} held out")
    train_imgs, train_masks = _synthetic_set(generator, images, n_train, 0, reverse=False)
    backbone.eval()
    maps = frozen_layer_maps(backbone, layers, train_imgs)
    grid = tuple(maps[0].shape[-2:])
    targets = masks_to_grid(train_masks, grid)
    del train_imgs

    torch.manual_seed(cfg.seed)
    disc = Discriminator([backbone.layer_channels(n) for n in layers], s1.decoder_width)
    opt = torch.optim.Adam(disc.parameters(), lr=s1.learning_rate, weight_decay=s1.weight_decay)
    rng = np.random.default_rng([cfg.seed, 1])
    bar = tqdm(range(s1.epochs), desc="stage 1 (D)", disable=tqdm_disable(progress), leave=False)
    last = float("nan")
    for _ in bar:
        disc.train()
        total, count = 0.0, 0
        for idx in batches(rng.permutation(n_train), s1.batch_size):
            if len(idx) < 2:
                continue  # BatchNorm needs two samples
            logits = disc([m[idx] for m in maps])
            loss = focal_loss(logits, targets[idx], s1.focal_alpha, s1.focal_gamma)
            if not torch.isfinite(loss):
                raise TrainingError("stage 1 loss is not finite", got=str(float(loss.detach())),
                                    fix="lower stage1.learning_rate")
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        last = total / max(1, count)
        bar.set_postfix(focal=f"{last:.4f}")
    disc = freeze(disc)
    report = {"loss": last, "pixel_auroc": float("nan"), "train_samples": n_train}
    if s1.holdout_synthetic > 0:
        h_imgs, h_masks = _synthetic_set(generator, images, s1.holdout_synthetic, HOLDOUT_INDEX_OFFSET, reverse=True)
        with torch.no_grad():
            probs = disc.probability(frozen_layer_maps(backbone, layers, h_imgs))
            probs = F.interpolate(probs, size=h_masks.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
        report["pixel_auroc"] = auroc(h_masks, probs.numpy())
    report["wall_s"] = time.perf_counter() - t_wall
    report["cpu_s"] = time.process_time() - t_cpu
    log(f"stage 1: D trained, focal loss {last:.4f}, held-out synthetic pixel AUROC {report['pixel_auroc']:.3f} "
        f"({report['wall_s']:.0f} s, CPU {report['cpu_s']:.0f} s)")
    save_checkpoint(path, disc.state_dict(), {"fingerprint": fp, "report": report})
    return disc, report
