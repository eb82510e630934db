"""``tocoad-train``: normal images → (ToCoAD fine-tuned) backbone → memory bank → run folder."""
from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Collection, Iterator

import numpy as np
import torch
import yaml

from .. import __version__
from .config import TrainConfig, config_to_dict
from ..typed_config import to_dict
from ..data import load_dataset, load_resized
from ..errors import DataError
from ..memory import greedy_coreset
from ..models.base import Backbone
from ..models.patch_embedder import PatchEmbedder
from ..runtime.scoring import image_scores as score_images, score_kernel
from ..runtime.search.exact import ExactSearch
from .embedder_factory import make_embedder, with_tone_reference
from .features import embed_images
from .projection import fit_projection
from .run_folder import (BANK_NAME, CONFIG_NAME, LOG_NAME, META_NAME, PROJECTION_NAME, WEIGHTS_NAME, save_npy,
                         write_json)
from .thresholds import Thresholds, calibrate

log = logging.getLogger("tocoad_edge.train")


def _progress_bar(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="it", disable=not enabled, leave=False, dynamic_ncols=True)


def _setup_logging(run_dir: Path) -> logging.Handler:
    handler = logging.FileHandler(run_dir / LOG_NAME, mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("tocoad_edge")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return handler


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def split_holdout(paths: list[Path], holdout: int, seed: int) -> tuple[list[Path], list[Path]]:
    """Deterministically hold out up to ``holdout`` normal images (at most a fifth of the set)."""
    k = min(holdout, len(paths) // 5)
    if k == 0:
        return list(paths), []
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(paths))
    held = sorted(idx[:k].tolist())
    keep = sorted(idx[k:].tolist())
    return [paths[i] for i in keep], [paths[i] for i in held]


@dataclass(frozen=True)
class _Images:
    """The normal images after the hold-out split: paths (for the run's metadata) and ``[N, S, S, 3]`` uint8: the
    images resized to ``S``, or with tiling their tiles (``holdout_tiles``: how many tiles each held-out image has)."""
    train_paths: list[Path]
    holdout_paths: list[Path]
    train: np.ndarray
    holdout: np.ndarray
    excluded: list[str]
    holdout_tiles: list[int] | None = None


@dataclass(frozen=True)
class _Features:
    """The training patch features as the memory bank sees them (projected, capped at ``memory.max_patches``)
    and the embedder that produces them (with the projection inside)."""
    embedder: PatchEmbedder
    flat: np.ndarray
    projection: np.ndarray | None


@contextmanager
def _timed(timings: dict[str, float], key: str) -> Iterator[None]:
    """Record the seconds of one step under ``key`` (the run's ``timings``)."""
    t0 = time.perf_counter()
    yield
    timings[key] = time.perf_counter() - t0


def train(data_dir: str | Path, out_dir: str | Path, cfg: TrainConfig, *, show_progress: bool = True,
          exclude: Collection[str] = ()) -> Path:
    """Run the configured stages and write the run folder. Returns its path.

    ``exclude``: file names in ``train/good`` left out of this run (``tocoad-train --select`` keeps its held-out
    normal images away from the candidates); recorded in ``run.json`` as ``excluded_images``."""
    t_start = time.perf_counter()
    run_dir = Path(out_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = _setup_logging(run_dir)
    try:
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        seed_everything(cfg.seed)
        _write_config(run_dir, cfg)
        images = _load_images(data_dir, cfg, show_progress, set(exclude))
        resolved = with_tone_reference(cfg, images.train)
        if resolved is not cfg:
            cfg = resolved
            log.info("tone: training images at mean %.1f, std %.1f grey levels", *cfg.data.tone_reference)
            _write_config(run_dir, cfg)     # the resolved config: export and --select rebuild the same input
        timings: dict[str, float] = {}
        with _timed(timings, "finetune_s"):
            backbone = _finetune(cfg, images.train, run_dir, show_progress)
        embedder = make_embedder(cfg, backbone)
        with _timed(timings, "features_s"):
            features = _embed(cfg, embedder, images.train, show_progress)
        with _timed(timings, "coreset_s"):
            bank = _coreset(cfg, features.flat, show_progress)
        with _timed(timings, "thresholds_s"):
            th = _thresholds(cfg, features, bank, images.holdout, images.holdout_tiles)
        _save_model(run_dir, features, bank)
        timings["total_s"] = time.perf_counter() - t_start
        write_json(run_dir / META_NAME, _run_meta(data_dir, cfg, images, features, bank, th, timings))
        log.info("run folder written: %s (%.1f s)", run_dir, timings["total_s"])
        return run_dir
    finally:
        logging.getLogger("tocoad_edge").removeHandler(handler)
        handler.close()


def _write_config(run_dir: Path, cfg: TrainConfig) -> None:
    (run_dir / CONFIG_NAME).write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False), encoding="utf-8")


def _load_images(data_dir: str | Path, cfg: TrainConfig, show_progress: bool, exclude: set[str]) -> _Images:
    ds = load_dataset(data_dir, extensions=cfg.data.extensions)
    paths = list(ds.train)
    if cfg.data.max_train_images is not None:
        paths = paths[:cfg.data.max_train_images]
    paths = [p for p in paths if p.name not in exclude]
    train_paths, holdout_paths = split_holdout(paths, cfg.data.holdout_images, cfg.seed)
    if not train_paths:
        raise DataError(f"no training images left in {data_dir} after the hold-out", fix="add normal images")
    log.info("tocoad-train %s: %d train, %d held-out images from %s, stages=%s", __version__, len(train_paths),
             len(holdout_paths), data_dir, cfg.stages)
    size = cfg.data.image_size
    tiling = cfg.data.tiling.spec()
    with _progress_bar(len(paths), "load images", show_progress) as bar:
        if tiling is None:
            return _Images(train_paths, holdout_paths, load_resized(train_paths, size, bar.update),
                           load_resized(holdout_paths, size, bar.update), sorted(exclude))
        from .tiles import load_tiles

        train_tiles, _ = load_tiles(train_paths, size, tiling, bar.update)
        holdout_tiles, counts = load_tiles(holdout_paths, size, tiling, bar.update)
    log.info("tiling: %d training images → %d tiles of %d px (overlap %.2f, scale %.2f)", len(train_paths),
             len(train_tiles), size, tiling.overlap, tiling.scale)
    return _Images(train_paths, holdout_paths, train_tiles, holdout_tiles, sorted(exclude), counts)


def _finetune(cfg: TrainConfig, train_imgs: np.ndarray, run_dir: Path, show_progress: bool) -> Backbone | None:
    """The ToCoAD stages' backbone, or ``None`` for the baseline (ImageNet weights)."""
    if cfg.stages == "baseline":
        return None
    from .tocoad import finetune_backbone

    return finetune_backbone(cfg, list(train_imgs), run_dir, guide=(cfg.stages == "full"), log=log,
                             progress=show_progress)


def _embed(cfg: TrainConfig, embedder: PatchEmbedder, train_imgs: np.ndarray, show_progress: bool) -> _Features:
    with _progress_bar(len(train_imgs), "patch features", show_progress) as bar:
        feats = embed_images(embedder, train_imgs, progress=bar.update)
    flat = feats.reshape(-1, feats.shape[-1])
    projection = fit_projection(cfg.features.projection, flat, cfg.features.projection_dim, cfg.seed)
    if projection is not None:
        flat = flat @ projection
        embedder = make_embedder(cfg, embedder.backbone, projection)
    if cfg.memory.max_patches is not None and len(flat) > cfg.memory.max_patches:
        rng = np.random.default_rng(cfg.seed)
        flat = flat[np.sort(rng.choice(len(flat), cfg.memory.max_patches, replace=False))]
    return _Features(embedder, flat, projection)


def _coreset(cfg: TrainConfig, flat: np.ndarray, show_progress: bool) -> np.ndarray:
    count = max(1, int(round(len(flat) * cfg.memory.coreset_ratio)))
    with _progress_bar(count, "coreset", show_progress) as bar:
        idx = greedy_coreset(flat, count=count, projection_dim=cfg.memory.coreset_projection_dim,
                             seed=cfg.seed, progress=bar.update)
    bank = np.ascontiguousarray(flat[idx], dtype=np.float32)
    log.info("memory bank: %d of %d patches (ratio %.3f), dim %d", len(bank), len(flat),
             cfg.memory.coreset_ratio, bank.shape[1])
    return bank


def _thresholds(cfg: TrainConfig, features: _Features, bank: np.ndarray, holdout_imgs: np.ndarray,
                holdout_tiles: list[int] | None = None) -> Thresholds:
    """From the held-out normal images' scores; without any, from the training patches' own distances."""
    search = ExactSearch(bank)
    if len(holdout_imgs):
        hf = embed_images(features.embedder, holdout_imgs)
        patch_scores = search.query(hf.reshape(-1, hf.shape[-1])).reshape(len(hf), -1)
        size = holdout_imgs.shape[1:3]
        grid = features.embedder.grid_size(*size)
        kernel = score_kernel(cfg.scoring.image_score, cfg.scoring.gaussian_sigma, features.embedder.stride)
        image_scores = score_images(patch_scores, grid, kernel)      # as the runtime scores each image (tile)
        if holdout_tiles is not None:       # an image's score is the max over its tiles, as at run time
            ends = np.cumsum(holdout_tiles)
            image_scores = np.array([image_scores[e - n:e].max() for e, n in zip(ends, holdout_tiles)])
    else:
        patch_scores = search.query(features.flat[: min(len(features.flat), 20000)])
        image_scores = np.array([], dtype=np.float32)
    th = calibrate(image_scores, patch_scores, cfg.scoring)
    log.info("image threshold %.4f (held-out normal scores %s)", th.image_threshold,
             np.round(np.asarray(th.holdout_scores), 4).tolist()[:8])
    return th


def _save_model(run_dir: Path, features: _Features, bank: np.ndarray) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in features.embedder.backbone.state_dict().items()}
    save_file(state, str(run_dir / WEIGHTS_NAME))
    save_npy(run_dir / BANK_NAME, bank)
    if features.projection is not None:
        save_npy(run_dir / PROJECTION_NAME, features.projection)


def _run_meta(data_dir: str | Path, cfg: TrainConfig, images: _Images, features: _Features, bank: np.ndarray,
              th: Thresholds, timings: dict[str, float]) -> dict:
    """``run.json``: what export needs to rebuild the feature extractor and the scoring, and how the run went."""
    size = cfg.data.image_size
    embedder = features.embedder
    return {
        "tocoad_edge_version": __version__,
        "torch_version": torch.__version__,
        "stages": cfg.stages,
        "data_dir": str(Path(data_dir).resolve()),
        "train_images": len(images.train_paths),
        "holdout_images": [p.name for p in images.holdout_paths],
        "excluded_images": images.excluded,
        "feature": {"backbone": cfg.backbone.name, "layers": list(cfg.backbone.layers),
                    "aggregation": cfg.features.aggregation, "stride": embedder.stride,
                    "aggregation_mode": cfg.features.aggregation_mode,
                    "aggregation_dim": cfg.features.aggregation_dim,
                    "grid": list(embedder.grid_size(size, size)), "dim": int(bank.shape[1]),
                    "projection": cfg.features.projection,
                    "mean": list(embedder.backbone.mean), "std": list(embedder.backbone.std),
                    "tone_reference": (None if embedder.backbone.tone_reference is None
                                       else list(embedder.backbone.tone_reference))},
        "image_size": size,
        "tiling": to_dict(cfg.data.tiling.spec()),       # null: untiled
        "memory_bank": {"entries": int(bank.shape[0]), "dim": int(bank.shape[1]),
                        "source_patches": int(len(features.flat)), "ratio": cfg.memory.coreset_ratio},
        "thresholds": {"image_threshold": th.image_threshold, "pixel_threshold": th.pixel_threshold,
                       "normalization_offset": th.normalization_offset,
                       "normalization_scale": th.normalization_scale,
                       "holdout_scores": list(th.holdout_scores)},
        "gaussian_sigma": cfg.scoring.gaussian_sigma,
        "image_score": cfg.scoring.image_score,
        "timings": timings,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }
