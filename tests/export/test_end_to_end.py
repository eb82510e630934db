"""The whole path through the CLIs on generated data: train → export → eval."""
import json

import pytest


def test_cli_train_export_eval(tmp_path, sample_dataset):
    pytest.importorskip("torch")
    from tocoad_edge.cli.evaluate import main as eval_main
    from tocoad_edge.cli.train import main as train_main
    from tocoad_edge.export.cli import main as export_main

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("stages: baseline\ndata: {image_size: 64, holdout_images: 4}\nmemory: {coreset_ratio: 0.2}\n")
    run, bundle, out = tmp_path / "run", tmp_path / "bundle", tmp_path / "eval.json"
    assert train_main(["--data", str(sample_dataset), "--out", str(run), "--config", str(cfg), "--quiet"]) == 0
    for name in ("config.yaml", "backbone.safetensors", "memory_bank.npy", "run.json", "train.log"):
        assert (run / name).is_file()
    assert export_main(["bundle", str(run), "--out", str(bundle)]) == 0
    parity = json.loads((bundle / "parity.json").read_text())
    assert parity["onnx_fp32"]["map_max_abs_diff_over_range"] <= 1e-4
    assert eval_main([str(bundle), "--data", str(sample_dataset), "--json", str(out), "--report",
                      str(tmp_path / "report"), "--quiet"]) == 0
    metrics = json.loads(out.read_text())
    for key in ("image_auroc", "pixel_auroc", "aupro", "f1_max"):
        assert 0.0 <= metrics[key] <= 1.0
    assert metrics["image_auroc"] >= 0.8
    assert (tmp_path / "report" / "roc_image.png").is_file()
    assert any(p.name.startswith("overlay_") for p in (tmp_path / "report").iterdir())


def test_export_refuses_to_overwrite_without_force(tmp_path, tiny_run, tiny_bundle):
    from tocoad_edge.errors import ExportError
    from tocoad_edge.export.bundle_writer import ExportOptions, write_bundle

    before = sorted(p.name for p in tiny_bundle.iterdir())
    with pytest.raises(ExportError):
        write_bundle(tiny_run, tiny_bundle, ExportOptions())
    assert sorted(p.name for p in tiny_bundle.iterdir()) == before
    assert not [p for p in tiny_bundle.parent.iterdir() if ".staging-" in p.name]


def test_train_without_images_names_the_folder(tmp_path):
    from tocoad_edge.cli.train import main as train_main

    (tmp_path / "data" / "train" / "good").mkdir(parents=True)
    assert train_main(["--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--quiet"]) == 2
