"""A tiny real bundle (sample data → tocoad-train → tocoad-export) built once per test process.

Shared by the search / pipeline / bench tests of issue 5. Needs torch and onnx (the train and export
extras); tests that use it skip without them.
"""
from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import pytest


@functools.lru_cache(maxsize=1)
def _build() -> tuple[Path, Path, Path]:
    from tocoad_edge.config import DataConfig, MemoryConfig, TrainConfig
    from tocoad_edge.sample_data import make_sample_dataset
    from tocoad_edge.train.trainer import train

    from tocoad_edge.export.bundle_writer import ExportOptions, write_bundle

    root = Path(tempfile.mkdtemp(prefix="tocoad_i5_"))
    data = make_sample_dataset(root / "data", n_train=12, n_test_good=4, n_test_defect=2, size=64)
    cfg = TrainConfig(data=DataConfig(image_size=64, holdout_images=2), memory=MemoryConfig(coreset_ratio=0.25))
    run = train(data, root / "run", cfg, show_progress=False)
    bundle = write_bundle(run, root / "bundle", ExportOptions())
    return data, run, bundle


def tiny_bundle() -> tuple[Path, Path, Path]:
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    return _build()
