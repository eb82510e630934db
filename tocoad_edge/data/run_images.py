"""The normal images a training run used, read back from its ``run.json`` metadata: the held-out images and the
training images. Export (search tuning, parity) and calibration (calibration set, gate) both read them."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ExportError
from .images import load_resized
from .mvtec import load_dataset


def _dataset_paths(meta: dict) -> tuple[list[Path], list[Path]]:
    root = Path(meta.get("data_dir", ""))
    try:
        ds = load_dataset(root)
    except Exception as exc:  # noqa: BLE001 - reported uniformly below
        raise ExportError(f"the training data of this run is not reachable: {root}", got=str(exc),
                          fix="export on the machine that trained, or keep the data folder in place") from None
    held = set(meta.get("holdout_images", []))
    holdout = [p for p in ds.train if p.name in held]
    train = [p for p in ds.train if p.name not in held]
    return holdout, train


def holdout_images(meta: dict, size: int, limit: int | None = None) -> np.ndarray:
    holdout, train = _dataset_paths(meta)
    paths = holdout or train
    return load_resized(paths[:limit] if limit else paths, size)


def calibration_images(meta: dict, size: int, count: int, seed: int = 0) -> np.ndarray:
    """Up to ``count`` normal training images (deterministic subset)."""
    _, train = _dataset_paths(meta)
    if len(train) > count:
        rng = np.random.default_rng(seed)
        train = [train[i] for i in sorted(rng.choice(len(train), count, replace=False))]
    return load_resized(train, size)
