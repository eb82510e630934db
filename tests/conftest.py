"""Shared fixtures: a generated dataset, a tiny trained run and its bundle (built once per session)."""
from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def sample_dataset(tmp_path_factory) -> Path:
    from tocoad_edge.synth.sample_set import make_sample_dataset

    return make_sample_dataset(tmp_path_factory.mktemp("data") / "sample", n_train=24, n_test_good=6,
                               n_test_defect=3, size=96, seed=0)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, sample_dataset) -> Path:
    pytest.importorskip("torch")
    from tocoad_edge.train.config import TrainConfig, DataConfig
    from tocoad_edge.train.trainer import train

    cfg = TrainConfig(stages="baseline", data=DataConfig(image_size=64, holdout_images=4))
    return train(sample_dataset, tmp_path_factory.mktemp("runs") / "tiny", cfg, show_progress=False)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory, tiny_run) -> Path:
    from tocoad_edge.export.bundle_writer import ExportOptions, write_bundle

    # the default export, plus the torch weights the torch backend's parity test reads
    return write_bundle(tiny_run, tmp_path_factory.mktemp("bundles") / "tiny", ExportOptions(with_torch_weights=True))


@pytest.fixture(scope="session")
def tiled_bundle(tmp_path_factory, sample_dataset) -> Path:
    """The sample set (96 px) trained with 64 px tiles (2 × 2 per image, overlap 0.25) and exported."""
    pytest.importorskip("torch")
    from tocoad_edge.export.bundle_writer import ExportOptions, write_bundle
    from tocoad_edge.train.config import DataConfig, TilingConfig, TrainConfig
    from tocoad_edge.train.trainer import train

    cfg = TrainConfig(stages="baseline", data=DataConfig(image_size=64, holdout_images=4,
                                                         tiling=TilingConfig(enabled=True, overlap=0.25)))
    run = train(sample_dataset, tmp_path_factory.mktemp("runs") / "tiled", cfg, show_progress=False)
    return write_bundle(run, tmp_path_factory.mktemp("bundles") / "tiled", ExportOptions())


@pytest.fixture()
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not present at {SHARED_DATA}")
    return SHARED_DATA
