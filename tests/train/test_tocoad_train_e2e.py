"""tocoad-train --stages full / no-guide end to end on the generated sample data set (tiny stages)."""
import json

import numpy as np
import pytest

pytest.importorskip("torch")


def _cfg(stages):
    from tocoad_edge.train.config import DataConfig, Stage1Config, Stage2Config, TrainConfig

    return TrainConfig(stages=stages, threads=1, data=DataConfig(image_size=64, holdout_images=4),
                       stage1=Stage1Config(epochs=2, max_synthetic=16, holdout_synthetic=4),
                       stage2=Stage2Config(epochs=1, batch_size=4, images_per_epoch=8))


def test_full_and_no_guide_runs_write_fine_tuned_weights_and_export(tmp_path, sample_dataset, tiny_run):
    from safetensors.numpy import load_file

    from tocoad_edge.export.bundle_writer import ExportOptions, write_bundle
    from tocoad_edge.runtime import Detector
    from tocoad_edge.train.trainer import train

    base = load_file(str(next(tiny_run.glob("*.safetensors"))))
    for stages in ("full", "no-guide"):
        run = train(sample_dataset, tmp_path / stages, _cfg(stages), show_progress=False)
        tuned = load_file(str(next(p for p in run.glob("*.safetensors"))))
        key = "trunk._blocks.10._project_conv.weight"
        assert not np.array_equal(base[key], tuned[key])          # the run carries the fine-tuned backbone
        assert np.array_equal(base["trunk._conv_stem.weight"], tuned["trunk._conv_stem.weight"])
        shallow = "trunk._blocks.4._project_conv.weight"                # the shallow feature layer stays ImageNet's
        assert np.array_equal(base[shallow], tuned[shallow])
        ck = run / "tocoad"
        assert (ck / f"stage2_{stages}_backbone.safetensors").is_file()
        assert (ck / "stage1_discriminator.safetensors").is_file() == (stages == "full")
        log = (run / "train.log").read_text()
        assert "feature spread" in log
        bundle = write_bundle(run, tmp_path / f"bundle_{stages}", ExportOptions())
        manifest = json.loads((bundle / "manifest.json").read_text())
        assert "tocoad" not in json.dumps(manifest["files"])        # D / heads / checkpoints are never exported
        frame = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
        with Detector.open(bundle, backend="onnxrt") as det:
            pred = det.predict(frame)
        assert np.isfinite(pred.score) and pred.anomaly_map.shape == (64, 64)
