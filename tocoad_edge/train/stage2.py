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
from dataclasses import dataclass, field
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


def trainable_groups(backbone: Backbone, trainable_from: str,
                     layers: list[str]) -> tuple[list[nn.Parameter], list[str]]:
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


@dataclass(frozen=True)
class _Checkpoints:
    """Where one configuration's stage 2 lands: the final backbone and the last finished epoch, both tied to the
    fingerprint of the configuration and the images so a changed setup never reuses them."""
    tag: str
    fingerprint: str
    final: Path
    epoch: Path


@dataclass
class _Stage2Run:
    """What resuming, every epoch and saving share."""
    cfg: TrainConfig
    backbone: Backbone
    layers: list[str]
    images: Sequence[np.ndarray]
    generator: AnomalyGenerator
    disc: Discriminator | None
    frozen: Backbone | None                 # the untouched backbone D reads (guide only)
    embedder: PatchEmbedder
    heads: nn.ModuleDict                    # projector + predictor
    opt: torch.optim.Optimizer
    guard: CollapseGuard
    trainable: list[nn.Parameter]
    trainable_names: list[str]
    checkpoints: _Checkpoints
    history: list[dict] = field(default_factory=list)

    @property
    def guide(self) -> bool:
        return self.disc is not None


def finetune_stage2(cfg: TrainConfig, backbone: Backbone, layers: list[str], images: Sequence[np.ndarray],
                    generator: AnomalyGenerator, disc: Discriminator | None, ckpt_dir: Path, log: Log,
                    progress: bool | None = None) -> tuple[Backbone, dict]:
    """Fine-tune ``backbone`` in place (or load the result from ``ckpt_dir``); returns it in eval mode, frozen,
    and a report (losses and feature spread per epoch)."""
    ck = _checkpoints(cfg, layers, images, disc is not None, ckpt_dir)
    meta = read_meta(ck.final)
    if meta and meta.get("fingerprint") == ck.fingerprint:
        backbone.load_state_dict(load_tensors(ck.final))
        log(f"stage 2 ({ck.tag}): reusing the fine-tuned backbone from {ck.final}")
        return freeze(backbone), meta.get("report", {})
    run = _prepare(cfg, backbone, layers, images, generator, disc, ck)
    start_epoch = _resume(run, log)
    s2 = cfg.stage2
    log(f"stage 2 ({ck.tag}): fine-tuning {', '.join(run.trainable_names)} for {s2.epochs} epochs on {len(images)} "
        f"images; feature spread before: {run.guard.reference:.3f}")
    clock = (time.perf_counter(), time.process_time())
    for epoch in range(start_epoch, s2.epochs):
        means = _run_epoch(run, epoch, progress)
        _log_epoch(run, epoch, means, clock, log)
        _save_epoch(run, epoch)
    return freeze(backbone), _save_final(run)


def _checkpoints(cfg: TrainConfig, layers: list[str], images: Sequence[np.ndarray], guide: bool,
                 ckpt_dir: Path) -> _Checkpoints:
    tag = "full" if guide else "no-guide"
    parts = {"stage": 2, "guide": guide, "seed": cfg.seed, "synth": to_dict(cfg.synth), "stage2": to_dict(cfg.stage2),
             "backbone": to_dict(cfg.backbone), "layers": layers, "aggregation": cfg.features.aggregation}
    if guide:
        parts["stage1"] = to_dict(cfg.stage1)
    return _Checkpoints(tag=tag, fingerprint=fingerprint(parts, list(images)),
                        final=ckpt_dir / f"stage2_{tag}_backbone.safetensors",
                        epoch=ckpt_dir / f"stage2_{tag}_last_epoch.safetensors")


def _prepare(cfg: TrainConfig, backbone: Backbone, layers: list[str], images: Sequence[np.ndarray],
             generator: AnomalyGenerator, disc: Discriminator | None, ck: _Checkpoints) -> _Stage2Run:
    """Unfreeze the trained layers and build the heads, optimizer and collapse guard (seeded: the heads' initial
    weights are part of the result)."""
    s2 = cfg.stage2
    trainable, trainable_names = trainable_groups(backbone, s2.trainable_from, layers)
    for p in backbone.parameters():
        p.requires_grad_(False)
    for p in trainable:
        p.requires_grad_(True)
    frozen = freeze(copy.deepcopy(backbone)) if disc is not None else None
    embedder = PatchEmbedder(backbone, layers, cfg.features.aggregation,
                             aggregation_mode=cfg.features.aggregation_mode,
                             aggregation_dim=cfg.features.aggregation_dim)
    torch.manual_seed(cfg.seed)
    heads = nn.ModuleDict({"projector": DenseProjector(embedder.raw_dim, s2.projector_dim),
                           "predictor": DensePredictor(s2.projector_dim, s2.predictor_dim)})
    opt = torch.optim.Adam([{"params": trainable, "lr": s2.learning_rate},
                            {"params": list(heads.parameters()), "lr": s2.head_learning_rate}],
                           weight_decay=s2.weight_decay)
    return _Stage2Run(cfg=cfg, backbone=backbone, layers=layers, images=images, generator=generator, disc=disc,
                      frozen=frozen, embedder=embedder, heads=heads, opt=opt,
                      guard=CollapseGuard(s2.collapse_std_ratio), trainable=trainable,
                      trainable_names=trainable_names, checkpoints=ck)


def _resume(run: _Stage2Run, log: Log) -> int:
    """Load the last finished epoch of this configuration, if any; else measure the feature spread before
    training (the collapse guard's reference). Returns the first epoch still to run."""
    ck = run.checkpoints
    meta = read_meta(ck.epoch)
    if not (meta and meta.get("fingerprint") == ck.fingerprint):
        _set_bn_mode(run.backbone, run.cfg.stage2.batchnorm)
        with torch.no_grad():
            ref_imgs = [run.generator.sample(run.images[i], STAGE2_INDEX_OFFSET - 1 - i, anomaly=False).base
                        for i in range(min(len(run.images), 32))]
            run.guard.set_reference(normalised_feature_std(
                run.embedder.features(normalise(to_float_rgb(ref_imgs), run.backbone))))
        return 0
    t = load_tensors(ck.epoch)
    run.backbone.load_state_dict(unprefixed("backbone", t))
    run.heads.load_state_dict(unprefixed("heads", t))
    load_optimizer_tensors(run.opt, t)
    start_epoch = int(meta["epoch"]) + 1
    run.history = list(meta.get("history", []))
    run.guard.reference = meta.get("std_reference")
    run.guard.history = [h["feature_std"] for h in run.history]
    log(f"stage 2 ({ck.tag}): resuming after epoch {start_epoch} from {ck.epoch}")
    return start_epoch


def _run_epoch(run: _Stage2Run, epoch: int, progress: bool | None) -> dict:
    """One epoch over a seeded permutation of the images; returns the mean losses and the feature spread (the
    collapse guard raises ``TrainingError`` here; the last good epoch stays on disk)."""
    cfg, s2, n = run.cfg, run.cfg.stage2, len(run.images)
    torch.manual_seed(cfg.seed * 1009 + epoch)
    tgen = torch.Generator().manual_seed(cfg.seed * 7919 + epoch)
    order = np.random.default_rng([cfg.seed, 2, epoch]).permutation(n)
    if s2.images_per_epoch is not None:
        order = order[:s2.images_per_epoch]
    _set_bn_mode(run.backbone, s2.batchnorm)
    run.heads.train()
    sums = {"loss": 0.0, "simsiam": 0.0, "push": 0.0, "pull": 0.0}
    steps = 0
    bar = tqdm(list(batches(order, s2.batch_size)), disable=tqdm_disable(progress), leave=False,
               desc=f"stage 2 ({run.checkpoints.tag}) epoch {epoch + 1}/{s2.epochs}")
    for idx in bar:
        loss, l_ss, gparts = _step(run, epoch, idx, tgen)
        steps += 1
        sums["loss"] += loss
        sums["simsiam"] += l_ss
        sums["push"] += gparts["push"]
        sums["pull"] += gparts["pull"]
        bar.set_postfix(loss=f"{loss:.3f}", simsiam=f"{l_ss:.3f}",
                        **({"push": f"{gparts['push']:.3f}", "pull": f"{gparts['pull']:.3f}"} if run.guide else {}))
    means = {k: v / max(1, steps) for k, v in sums.items()}
    means["feature_std"] = run.guard.end_epoch(epoch + 1)
    run.history.append(means)
    return means


def _step(run: _Stage2Run, epoch: int, idx: list[int], tgen: torch.Generator) -> tuple[float, float, dict]:
    """One optimizer step on the batch ``idx``; returns the loss, the SimSiam loss and the guide's push / pull."""
    s2, backbone, embedder = run.cfg.stage2, run.backbone, run.embedder
    projector, predictor = run.heads["projector"], run.heads["predictor"]
    n = len(run.images)
    samples = [run.generator.sample(run.images[i], STAGE2_INDEX_OFFSET + epoch * n + i, anomaly=run.guide)
               for i in idx]
    base = to_float_rgb([s.base for s in samples])
    p1 = draw_params(len(idx), tgen, s2.brightness, s2.contrast, s2.blur_probability)
    p2 = draw_params(len(idx), tgen, s2.brightness, s2.contrast, s2.blur_probability)
    e1 = embedder.features(normalise(apply_photometric(base, p1, s2.noise_std), backbone))
    e2 = embedder.features(normalise(apply_photometric(base, p2, s2.noise_std), backbone))
    z1, z2 = projector(e1), projector(e2)
    l_ss = simsiam_loss(predictor(z1), predictor(z2), z1, z2)
    loss = s2.simsiam_weight * l_ss
    gparts = {"push": 0.0, "pull": 0.0}
    if run.guide:
        anom = to_float_rgb([s.image for s in samples])
        ea = embedder.features(normalise(apply_photometric(anom, p1, s2.noise_std), backbone))
        weight = _guide_weight(s2.guide_map, run.disc, run.frozen, run.layers, anom, samples, tuple(ea.shape[-2:]))
        l_g, gparts = guide_loss(ea, e1, weight, s2.guide_margin, s2.guide_normal_weight)
        loss = loss + s2.guide_weight * l_g
    if not torch.isfinite(loss):
        raise TrainingError(f"stage 2 loss is not finite at epoch {epoch + 1}", got=str(float(loss.detach())),
                            fix="lower stage2.learning_rate; the stage resumes from its last epoch checkpoint")
    run.opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(run.trainable + list(run.heads.parameters()), s2.max_grad_norm)
    run.opt.step()
    run.guard.observe(e1)
    return float(loss.detach()), float(l_ss.detach()), gparts


def _log_epoch(run: _Stage2Run, epoch: int, means: dict, clock: tuple[float, float], log: Log) -> None:
    t_wall, t_cpu = clock
    s2 = run.cfg.stage2
    log(f"stage 2 ({run.checkpoints.tag}) epoch {epoch + 1}/{s2.epochs}: loss {means['loss']:.4f} "
        f"simsiam {means['simsiam']:.4f}"
        + (f" push {means['push']:.4f} pull {means['pull']:.4f}" if run.guide else "")
        + f" feature spread {means['feature_std']:.3f} ({time.perf_counter() - t_wall:.0f} s, "
          f"CPU {time.process_time() - t_cpu:.0f} s so far)")


def _save_epoch(run: _Stage2Run, epoch: int) -> None:
    """The resume point: backbone, heads and optimizer state after ``epoch``, with the history so far."""
    tensors = {**prefixed("backbone", run.backbone.state_dict()), **prefixed("heads", run.heads.state_dict()),
               **optimizer_tensors(run.opt)}
    save_checkpoint(run.checkpoints.epoch, tensors, {"fingerprint": run.checkpoints.fingerprint, "epoch": epoch,
                                                     "history": run.history, "std_reference": run.guard.reference})


def _save_final(run: _Stage2Run) -> dict:
    """Write the fine-tuned backbone with its report and drop the epoch checkpoint; returns the report."""
    ck = run.checkpoints
    report = {"history": run.history, "std_reference": run.guard.reference, "trained_layers": run.trainable_names}
    save_checkpoint(ck.final, run.backbone.state_dict(), {"fingerprint": ck.fingerprint, "report": report})
    if ck.epoch.exists():
        ck.epoch.unlink()
    return report


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
