"""Build the deployable ``PatchEmbedder`` from a config (training) or a run folder (export)."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .config import TrainConfig
from .run_folder import RunFolder
from ..errors import BundleError, ConfigError
from ..models.backbones import Backbone, build_backbone
from ..models.patch_embedder import PatchEmbedder


def with_tone_reference(cfg: TrainConfig, images: Sequence[np.ndarray]) -> TrainConfig:
    """``cfg`` with ``data.tone_reference`` measured on ``images`` (the uint8 training images) where ``data.tone:
    standardize`` has none yet; otherwise ``cfg`` itself."""
    if cfg.data.tone != "standardize" or cfg.data.tone_reference is not None:
        return cfg
    from ..models.tone import tone_reference

    return replace(cfg, data=replace(cfg.data, tone_reference=tone_reference(images)))


def configured_backbone(cfg: TrainConfig, backbone: Backbone | None = None) -> Backbone:
    """``backbone`` (or ``cfg.backbone`` built from its weights) with the config's input tone set on it. With
    ``data.tone: standardize`` the reference is the config's, else the one ``backbone`` already carries."""
    bb = backbone if backbone is not None else build_backbone(cfg.backbone.name, cfg.backbone.weights)
    if cfg.data.tone == "none":
        bb.tone_reference = None
        return bb
    reference = cfg.data.tone_reference or (backbone.tone_reference if backbone is not None else None)
    if reference is None:
        raise ConfigError("data.tone: standardize needs the training images' tone", expected="data.tone_reference "
                          "[mean, std]", got="null", fix="train with tocoad-train (it measures it and writes it to "
                          "the run's config.yaml), give data.tone_reference, or set data.tone: none")
    bb.tone_reference = (float(reference[0]), float(reference[1]))
    return bb


def make_embedder(cfg: TrainConfig, backbone: Backbone | None = None,
                  projection: np.ndarray | None = None) -> PatchEmbedder:
    bb = configured_backbone(cfg, backbone)
    proj = torch.from_numpy(np.ascontiguousarray(projection, dtype=np.float32)) if projection is not None else None
    return PatchEmbedder(bb, list(cfg.backbone.layers), cfg.features.aggregation, proj,
                         aggregation_mode=cfg.features.aggregation_mode,
                         aggregation_dim=cfg.features.aggregation_dim).eval()


def load_run_embedder(run_dir: Path, cfg: TrainConfig, projection: np.ndarray | None) -> PatchEmbedder:
    """The embedder exactly as trained: architecture from the config, weights from the run folder."""
    from safetensors.torch import load_file

    from .run_folder import WEIGHTS_NAME

    path = Path(run_dir) / WEIGHTS_NAME
    if not path.is_file():
        raise BundleError(f"run folder has no {WEIGHTS_NAME}: {run_dir}", fix="run tocoad-train again")
    bb = build_backbone(cfg.backbone.name, cfg.backbone.weights)
    try:
        state = load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - SafetensorError and friends: the file is not safetensors
        raise BundleError(f"cannot load {path}", expected="a safetensors file (never a pickle)",
                          got=f"{type(exc).__name__}: {exc}", fix="run tocoad-train again") from None
    try:
        bb.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise BundleError(f"{path} does not fit backbone '{cfg.backbone.name}'", got=str(exc).splitlines()[0],
                          fix="export with the config the run was trained with") from None
    return make_embedder(cfg, bb, projection)


def run_config(run: RunFolder) -> TrainConfig:
    """The config a run folder was trained with, as it was trained."""
    from .config import load_train_config

    cfg = load_train_config(run.file("config.yaml"))
    if "tone_reference" not in run.meta()["feature"]:
        # trained before data.tone existed: its config file has no tone, and the default would add one
        cfg = replace(cfg, data=replace(cfg.data, tone="none", tone_reference=None))
    return cfg


def embedder_from_run(run_dir: str | Path) -> tuple[PatchEmbedder, TrainConfig]:
    """A training run folder's embedder exactly as trained (its config, projection and weights), and the config."""
    run = RunFolder(Path(run_dir))
    cfg = run_config(run)
    return load_run_embedder(run.path, cfg, run.projection()), cfg
