"""ToCoAD two-stage training: the one entry point the trainer calls when ``--stages`` is not ``baseline``.

    backbone = finetune_backbone(cfg, train_images, run_dir, guide=True, log=print)

``guide=True`` (``--stages full``): stage 1 trains D on G's synthetic anomalies, stage 2 fine-tunes the backbone
with SimSiam plus the negative guide from the frozen D. ``guide=False`` (``--stages no-guide``): stage 2 with
SimSiam only (no stage 1). Checkpoints go to ``<run_dir>/tocoad/``; a rerun with the same config and images
reuses finished stages and resumes an interrupted stage 2 from its last epoch. D, projector and predictor are
training-only: only the returned backbone goes on to the memory bank and the export.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from .config import TrainConfig
from ..models.backbones import Backbone
from .embedder_factory import configured_backbone, with_tone_reference
from ..synth import AnomalyGenerator
from ._common import Log, check_train_images, deterministic
from .stage1 import train_discriminator
from .stage2 import finetune_stage2


def _as_log(log: Log | logging.Logger | None) -> Log:
    """Accept a callable or a ``logging.Logger`` (messages go to its ``info``)."""
    if log is None:
        return lambda message: None
    if isinstance(log, logging.Logger):
        return log.info
    return log


def finetune_backbone(cfg: TrainConfig, train_images: Sequence[np.ndarray], run_dir: str | Path, guide: bool,
                      log: Log | logging.Logger | None = None, *, progress: bool | None = None,
                      backbone: Backbone | None = None, report: dict | None = None) -> Backbone:
    """Run ToCoAD stage 1 (if ``guide``) and stage 2; return the fine-tuned backbone (eval mode, frozen).

    ``train_images``: uint8 BGR ``[H, W, 3]`` normal images, all resized to ``data.image_size``.
    ``backbone``: start from this backbone instead of building ``cfg.backbone`` (it is changed in place).
    ``report``: if given, filled with ``{"stage1": {...}, "stage2": {...}}`` (D's held-out pixel AUROC, losses,
    feature spread per epoch).
    """
    log = _as_log(log)
    check_train_images(train_images)
    images = list(train_images)
    ckpt_dir = Path(run_dir) / "tocoad"
    with deterministic(cfg.seed, cfg.threads):
        cfg = with_tone_reference(cfg, images)      # a caller's config may not have measured it
        backbone = configured_backbone(cfg, backbone)
        layers = list(cfg.backbone.layers)
        backbone.check_layers(layers)
        generator = AnomalyGenerator.from_config(cfg.synth, images, cfg.seed)
        disc = None
        if guide:
            disc, r1 = train_discriminator(cfg, backbone, layers, images, generator, ckpt_dir, log, progress)
            if report is not None:
                report["stage1"] = r1
        backbone, r2 = finetune_stage2(cfg, backbone, layers, images, generator, disc, ckpt_dir, log, progress)
        if report is not None:
            report["stage2"] = r2
    return backbone
