"""data.tone: standardize — each frame's mean and spread mapped to the training images' inside the model graph."""
import json

import numpy as np
import pytest

from tocoad_edge.errors import ConfigError

pytest.importorskip("torch")


def _frame(seed=0, size=64):
    rng = np.random.default_rng(seed)
    return (rng.integers(40, 200, (size, size, 3))).astype(np.uint8)


def _exposed(frame):
    """The same scene darker and flatter: half the contrast, 20 grey levels up (exact in uint8 for even values)."""
    even = frame & 0xFE
    return (even // 2 + 20).astype(np.uint8), even


def _embed(cfg, frames):
    import torch

    from tocoad_edge.train.embedder_factory import make_embedder

    with torch.inference_mode():
        return make_embedder(cfg)(torch.from_numpy(np.stack(frames))).numpy()


def test_standardised_embeddings_do_not_see_exposure_and_plain_ones_do():
    from tocoad_edge.train.config import DataConfig, TrainConfig

    dark, frame = _exposed(_frame())
    toned = TrainConfig(data=DataConfig(image_size=64, tone="standardize", tone_reference=(120.0, 40.0)))
    plain = TrainConfig(data=DataConfig(image_size=64, tone="none"))
    t = _embed(toned, [frame, dark])
    p = _embed(plain, [frame, dark])
    assert np.abs(t[0] - t[1]).max() < 1e-3 * np.abs(t[0]).max()
    assert np.abs(p[0] - p[1]).max() > 0.05 * np.abs(p[0]).max()


def test_tone_needs_a_reference_and_a_known_mode():
    from tocoad_edge.train.config import DataConfig, TrainConfig
    from tocoad_edge.train.embedder_factory import make_embedder

    with pytest.raises(ConfigError, match="tone_reference"):
        make_embedder(TrainConfig())            # the default tone, and nothing to measure it on
    with pytest.raises(ConfigError) as bad:
        DataConfig(tone="clahe")
    assert "standardize" in str(bad.value) and "clahe" in str(bad.value)
    with pytest.raises(ConfigError, match="tone_reference"):
        DataConfig(tone="standardize", tone_reference=(120.0, 0.0))


def test_training_measures_the_tone_and_every_backend_applies_it(tmp_path, sample_dataset):
    from tocoad_edge.export.bundle_writer import ExportOptions, write_bundle
    from tocoad_edge.runtime import Detector
    from tocoad_edge.train.config import DataConfig, TrainConfig, load_train_config
    from tocoad_edge.train.trainer import train

    data = DataConfig(image_size=64, holdout_images=4, tone="standardize")
    cfg = TrainConfig(stages="baseline", threads=1, data=data)
    run = train(sample_dataset, tmp_path / "run", cfg, show_progress=False)
    reference = load_train_config(run / "config.yaml").data.tone_reference
    assert reference is not None and 0 < reference[0] < 255 and 0 < reference[1] < 128
    assert json.loads((run / "run.json").read_text())["feature"]["tone_reference"] == list(reference)

    bundle = write_bundle(run, tmp_path / "bundle", ExportOptions(with_torch_weights=True))
    assert json.loads((bundle / "manifest.json").read_text())["features"]["tone_reference"] == list(reference)
    dark, frame = _exposed(_frame(1))          # at the model input size: no resize rounds the two apart
    with Detector.open(bundle, backend="onnxrt", search="exact") as det:
        bright_ort, dark_ort = det.predict(frame), det.predict(dark)
    with Detector.open(bundle, backend="torch", search="exact") as det:
        bright_torch = det.predict(frame)
    # the exported graph standardises like the torch model, and the exposure no longer moves the score
    assert bright_ort.raw_score == pytest.approx(bright_torch.raw_score, rel=1e-4)
    assert dark_ort.raw_score == pytest.approx(bright_ort.raw_score, rel=2e-3)


def test_a_run_trained_before_the_tone_existed_keeps_its_frames_as_they_come(tmp_path, tiny_run):
    import shutil

    import yaml

    from tocoad_edge.train.embedder_factory import embedder_from_run

    old = tmp_path / "old_run"
    shutil.copytree(tiny_run, old)
    cfg = yaml.safe_load((old / "config.yaml").read_text())
    del cfg["data"]["tone"], cfg["data"]["tone_reference"]          # what a run folder of an earlier version holds
    (old / "config.yaml").write_text(yaml.safe_dump(cfg))
    meta = json.loads((old / "run.json").read_text())
    del meta["feature"]["tone_reference"]
    (old / "run.json").write_text(json.dumps(meta))

    embedder, loaded = embedder_from_run(old)
    assert loaded.data.tone == "none" and embedder.backbone.tone_reference is None
    from tocoad_edge.export.bundle_writer import ExportOptions, write_bundle

    bundle = write_bundle(old, tmp_path / "old_bundle", ExportOptions())
    assert json.loads((bundle / "manifest.json").read_text())["features"]["tone_reference"] is None
    new_embedder, new_cfg = embedder_from_run(tiny_run)
    assert new_cfg.data.tone == "standardize" and new_embedder.backbone.tone_reference is not None
