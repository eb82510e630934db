"""ToCoAD stage 2: contrastive fine-tuning of the backbone.

Per batch of normal images: G's rotated normal image ``x`` gives two photometric views (dense SimSiam on the
patch embeddings, projector + predictor, stop-gradient). With the guide (full ToCoAD), G's synthetic-anomaly image
``a`` of the same ``x`` (with view 1's photometric parameters) is embedded as well; the frozen D marks its
anomalous regions, whose embeddings are pushed away from view 1's embeddings at the same place while the rest stay
aligned (``negative_guide.guide_loss``). Only layers from ``stage2.trainable_from`` up to the deepest used
layer are trained; BatchNorm statistics stay frozen by default. Every epoch is checkpointed, the feature
spread is logged, and a collapse raises ``TrainingError``.
"""
from __future__ import annotations

import copy
import time
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .config import TrainConfig
from ..errors import ConfigError, TrainingError, did_you_mean
from ..models.base import Backbone
from ..models.patch_embedder import PatchEmbedder
from ..synth import AnomalyGenerator
from ..typed_config import to_dict
from ._common import Log, batches, freeze, normalise, to_float_rgb, tqdm_disable
from .augment import apply_photometric, draw_params
from .checkpoints import (fingerprint, load_optimizer_tensors, load_tensors, optimizer_tensors, prefixed,
                          read_meta, save_checkpoint, unprefixed)
from .collapse import CollapseGuard, normalised_feature_std
from .discriminator import Discriminator, masks_to_grid
from .negative_guide import guide_loss
from .simsiam import DensePredictor, DenseProjector, simsiam_loss

STAGE2_INDEX_OFFSET = 20_000_000   # G sample indices of stage 2 never meet those of stage 1


def trainable_groups(backbone: Backbone, trainable_from: str, layers: list[str]) -> tuple[list[nn.Parameter], list[str]]:
    """Parameters of the layers from ``trainable_from`` to the deepest of ``layers`` (inclusive). ``auto``: from the
    first layer of the deepest feature layer's stage (``Backbone.stage_start``), so the shallower feature layers
    keep their ImageNet weights."""
    backbone.check_layers(list(layers))
    groups = backbone.parameter_groups()
    names = [n for n, _ in groups]
    end = max(names.index(n) for n in layers)                 # the deepest feature layer
    first = backbone.stage_start(names[end]) if trainable_from == "auto" else trainable_from
    if first not in names:
        raise ConfigError(f"stage2.trainable_from names no layer of this backbone: '{first}'"
                          + did_you_mean(first, names),
                          expected=f"'auto' or one of {names}", got=first)
    start = names.index(first)
    if start > end:
        raise ConfigError("stage2.trainable_from is deeper than every feature layer, so nothing would be trained",
                          expected=f"a layer at or before {names[end]}", got=first)
    chosen = groups[start:end + 1]
    return [p for _, ps in chosen for p in ps], [n for n, _ in chosen]


def finetune_stage2(cfg: TrainConfig, backbone: Backbone, layers: list[str], images: Sequence[np.ndarray],
                    generator: AnomalyGenerator, disc: Discriminator | None, ckpt_dir: Path, log: Log,
                    progress: bool | None = None) -> tuple[Backbone, dict]:
    """Fine-tune ``backbone`` in place (or load the result from ``ckpt_dir``); returns it in eval mode, frozen,
    and a report (losses and feature spread per epoch)."""
    s2 = cfg.stage2
    guide = disc is not None
    tag = "full" if guide else "no-guide"
    parts = {"stage": 2, "guide": guide, "seed": cfg.seed, "synth": to_dict(cfg.synth), "stage2": to_dict(s2),
             "backbone": to_dict(cfg.backbone), "layers": layers, "aggregation": cfg.features.aggregation}
    if guide:
        parts["stage1"] = to_dict(cfg.stage1)
    fp = fingerprint(parts, list(images))
    final_path = ckpt_dir / f"stage2_{tag}_backbone.safetensors"
    epoch_path = ckpt_dir / f"stage2_{tag}_last_epoch.safetensors"
    meta = read_meta(final_path)
    if meta and meta.get("fingerprint") == fp:
        backbone.load_state_dict(load_tensors(final_path))
        log(f"stage 2 ({tag}): reusing the fine-tuned backbone from {final_path}")
        return freeze(backbone), meta.get("report", {})

    trainable, trainable_names = trainable_groups(backbone, s2.trainable_from, layers)
    for p in backbone.parameters():
        p.requires_grad_(False)
    for p in trainable:
        p.requires_grad_(True)
    frozen = None
    if guide:
        frozen = freeze(copy.deepcopy(backbone))
    embedder = PatchEmbedder(backbone, layers, cfg.features.aggregation,
                             aggregation_mode=cfg.features.aggregation_mode,
                             aggregation_dim=cfg.features.aggregation_dim)
    torch.manual_seed(cfg.seed)
    projector = DenseProjector(embedder.raw_dim, s2.projector_dim)
    predictor = DensePredictor(s2.projector_dim, s2.predictor_dim)
    heads = nn.ModuleDict({"projector": projector, "predictor": predictor})
    opt = torch.optim.Adam([{"params": trainable, "lr": s2.learning_rate},
                            {"params": list(heads.parameters()), "lr": s2.head_learning_rate}],
                           weight_decay=s2.weight_decay)
    guard = CollapseGuard(s2.collapse_std_ratio)
    n = len(images)
    history: list[dict] = []
    start_epoch = 0
    emeta = read_meta(epoch_path)
    if emeta and emeta.get("fingerprint") == fp:
        t = load_tensors(epoch_path)
        backbone.load_state_dict(unprefixed("backbone", t))
        heads.load_state_dict(unprefixed("heads", t))
        load_optimizer_tensors(opt, t)
        start_epoch = int(emeta["epoch"]) + 1
        history = list(emeta.get("history", []))
        guard.reference = emeta.get("std_reference")
        guard.history = [h["feature_std"] for h in history]
        log(f"stage 2 ({tag}): resuming after epoch {start_epoch} from {epoch_path}")
    else:
        _set_bn_mode(backbone, s2.batchnorm)
        with torch.no_grad():
            ref_imgs = [generator.sample(images[i], STAGE2_INDEX_OFFSET - 1 - i, anomaly=False).base
                        for i in range(min(n, 32))]
            guard.set_reference(normalised_feature_std(
                embedder.features(normalise(to_float_rgb(ref_imgs), backbone))))
    log(f"stage 2 ({tag}): fine-tuning {', '.join(trainable_names)} for {s2.epochs} epochs on {n} images; "
        f"feature spread before: {guard.reference:.3f}")

    t_wall, t_cpu = time.perf_counter(), time.process_time()
    for epoch in range(start_epoch, s2.epochs):
        torch.manual_seed(cfg.seed * 1009 + epoch)
        tgen = torch.Generator().manual_seed(cfg.seed * 7919 + epoch)
        order = np.random.default_rng([cfg.seed, 2, epoch]).permutation(n)
        if s2.images_per_epoch is not None:
            order = order[:s2.images_per_epoch]
        _set_bn_mode(backbone, s2.batchnorm)
        heads.train()
        sums = {"loss": 0.0, "simsiam": 0.0, "push": 0.0, "pull": 0.0}
        steps = 0
        bar = tqdm(list(batches(order, s2.batch_size)), desc=f"stage 2 ({tag}) epoch {epoch + 1}/{s2.epochs}",
                   disable=tqdm_disable(progress), leave=False)
        for idx in bar:
            samples = [generator.sample(images[i], STAGE2_INDEX_OFFSET + epoch * n + i, anomaly=guide) for i in idx]
            base = to_float_rgb([s.base for s in samples])
            p1 = draw_params(len(idx), tgen, s2.brightness, s2.contrast, s2.blur_probability)
            p2 = draw_params(len(idx), tgen, s2.brightness, s2.contrast, s2.blur_probability)
            e1 = embedder.features(normalise(apply_photometric(base, p1, s2.noise_std), backbone))
            e2 = embedder.features(normalise(apply_photometric(base, p2, s2.noise_std), backbone))
            z1, z2 = projector(e1), projector(e2)
            l_ss = simsiam_loss(predictor(z1), predictor(z2), z1, z2)
            loss = s2.simsiam_weight * l_ss
            gparts = {"push": 0.0, "pull": 0.0}
            if guide:
                anom = to_float_rgb([s.image for s in samples])
                ea = embedder.features(normalise(apply_photometric(anom, p1, s2.noise_std), backbone))
                weight = _guide_weight(s2.guide_map, disc, frozen, layers, anom, samples, tuple(ea.shape[-2:]))
                l_g, gparts = guide_loss(ea, e1, weight, s2.guide_margin, s2.guide_normal_weight)
                loss = loss + s2.guide_weight * l_g
            if not torch.isfinite(loss):
                raise TrainingError(f"stage 2 loss is not finite at epoch {epoch + 1}", got=str(float(loss.detach())),
                                    fix="lower stage2.learning_rate; the stage resumes from its last epoch checkpoint")
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable + list(heads.parameters()), s2.max_grad_norm)
            opt.step()
            guard.observe(e1)
            steps += 1
            sums["loss"] += float(loss.detach())
            sums["simsiam"] += float(l_ss.detach())
            sums["push"] += gparts["push"]
            sums["pull"] += gparts["pull"]
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}", simsiam=f"{float(l_ss.detach()):.3f}",
                            **({"push": f"{gparts['push']:.3f}", "pull": f"{gparts['pull']:.3f}"} if guide else {}))
        means = {k: v / max(1, steps) for k, v in sums.items()}
        std = guard.end_epoch(epoch + 1)  # raises TrainingError on collapse (the last good epoch stays on disk)
        means["feature_std"] = std
        history.append(means)
        log(f"stage 2 ({tag}) epoch {epoch + 1}/{s2.epochs}: loss {means['loss']:.4f} simsiam {means['simsiam']:.4f}"
            + (f" push {means['push']:.4f} pull {means['pull']:.4f}" if guide else "")
            + f" feature spread {std:.3f} ({time.perf_counter() - t_wall:.0f} s, CPU {time.process_time() - t_cpu:.0f} s"
            " so far)")
        tensors = {**prefixed("backbone", backbone.state_dict()), **prefixed("heads", heads.state_dict()),
                   **optimizer_tensors(opt)}
        save_checkpoint(epoch_path, tensors, {"fingerprint": fp, "epoch": epoch, "history": history,
                                              "std_reference": guard.reference})
    report = {"history": history, "std_reference": guard.reference, "trained_layers": trainable_names}
    save_checkpoint(final_path, backbone.state_dict(), {"fingerprint": fp, "report": report})
    if epoch_path.exists():
        epoch_path.unlink()
    return freeze(backbone), report


@torch.no_grad()
def _guide_weight(mode: str, disc: Discriminator | None, frozen: Backbone | None, layers: list[str],
                  anom: torch.Tensor, samples: list, grid: tuple[int, int]) -> torch.Tensor:
    """``[N, 1, h, w]`` weight of "anomalous here" for the guide."""
    w = None
    if mode in ("discriminator", "product"):
        if disc is None or frozen is None:
            raise TrainingError("stage2.guide_map needs the stage 1 discriminator", expected="--stages full",
                                got="no discriminator", fix="use --stages full or stage2.guide_map: mask")
        w = disc.probability(frozen.forward_layers(normalise(anom, frozen), layers))
        if w.shape[-2:] != grid:
            w = torch.nn.functional.interpolate(w, size=grid, mode="bilinear", align_corners=False)
    if mode in ("mask", "product"):
        m = masks_to_grid(np.stack([s.mask for s in samples]), grid)
        w = m if w is None else w * m
    return w


def _set_bn_mode(backbone: Backbone, mode: str) -> None:
    backbone.train(mode == "train")
