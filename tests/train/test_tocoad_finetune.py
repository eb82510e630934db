"""End-to-end ToCoAD fine-tuning on tiny generated images: both modes, checkpoints, resume, determinism."""
import numpy as np
import pytest
import torch

from tocoad_edge.train.config import Stage1Config, Stage2Config, SynthConfig, TrainConfig
from tocoad_edge.errors import ConfigError, DataError
from tocoad_edge.models.backbones import build_backbone
from tocoad_edge.train.tocoad import finetune_backbone


def _images(n=4, size=64):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size]
    out = []
    for _ in range(n):
        stripes = 128 + 60 * np.sin(xx / rng.uniform(2, 4) + rng.uniform(0, 6))
        img = np.clip(stripes + rng.normal(0, 8, (size, size)), 0, 255).astype(np.uint8)
        out.append(np.repeat(img[..., None], 3, axis=2))
    return out


def _cfg(**stage2):
    return TrainConfig(
        seed=1, threads=1,
        synth=SynthConfig(anomaly_probability=0.7),
        stage1=Stage1Config(epochs=2, max_synthetic=8, holdout_synthetic=4, batch_size=4),
        stage2=Stage2Config(epochs=2, batch_size=2, **stage2),
    )


def _backbone_state(bb):
    return {k: v.clone() for k, v in bb.state_dict().items()}


def test_full_finetune_trains_backbone_and_writes_resumable_checkpoints(tmp_path):
    imgs = _images()
    cfg = _cfg()
    before = _backbone_state(build_backbone(cfg.backbone.name))
    logs, report = [], {}
    bb = finetune_backbone(cfg, imgs, tmp_path, guide=True, log=logs.append, progress=False, report=report)
    after = bb.state_dict()
    assert not bb.training and not any(p.requires_grad for p in bb.parameters())
    # trainable_from auto: the stage of the deepest feature layer (blocks.8-10) changed; the stem, the shallow
    # feature layer (blocks.4) and the unused deep blocks did not
    assert not torch.equal(before["trunk._blocks.8._project_conv.weight"],
                           after["trunk._blocks.8._project_conv.weight"])
    assert not torch.equal(before["trunk._blocks.10._project_conv.weight"],
                           after["trunk._blocks.10._project_conv.weight"])
    assert torch.equal(before["trunk._conv_stem.weight"], after["trunk._conv_stem.weight"])
    assert torch.equal(before["trunk._blocks.4._project_conv.weight"], after["trunk._blocks.4._project_conv.weight"])
    assert torch.equal(before["trunk._blocks.7._project_conv.weight"], after["trunk._blocks.7._project_conv.weight"])
    assert torch.equal(before["trunk._blocks.12._project_conv.weight"], after["trunk._blocks.12._project_conv.weight"])
    # reports: D's held-out synthetic pixel AUROC and per-epoch feature spread
    assert 0.0 <= report["stage1"]["pixel_auroc"] <= 1.0
    assert len(report["stage2"]["history"]) == 2 and all(h["feature_std"] > 0 for h in report["stage2"]["history"])
    assert any("pixel AUROC" in m for m in logs) and any("feature spread" in m for m in logs)
    ck = tmp_path / "tocoad"
    assert (ck / "stage1_discriminator.safetensors").is_file()
    assert (ck / "stage2_full_backbone.safetensors").is_file()
    assert not (ck / "stage2_full_last_epoch.safetensors").exists()
    # a rerun reuses both stages and returns the same weights
    logs2 = []
    bb2 = finetune_backbone(cfg, imgs, tmp_path, guide=True, log=logs2.append, progress=False)
    assert any("reusing D" in m for m in logs2) and any("reusing the fine-tuned backbone" in m for m in logs2)
    for k, v in bb2.state_dict().items():
        assert torch.equal(v, after[k])


def test_no_guide_is_deterministic_and_resumes_an_interrupted_stage(tmp_path):
    imgs = _images()
    one = finetune_backbone(_cfg(), imgs, tmp_path / "a", guide=False, progress=False)
    two = finetune_backbone(_cfg(), imgs, tmp_path / "b", guide=False, progress=False)
    for (k, v), (_, w) in zip(one.state_dict().items(), two.state_dict().items()):
        assert torch.equal(v, w), k
    assert not (tmp_path / "a" / "tocoad" / "stage1_discriminator.safetensors").exists()  # no stage 1 without guide
    # a changed config never reuses the old result
    logs = []
    finetune_backbone(_cfg(guide_margin=0.1), imgs, tmp_path / "a", guide=False, log=logs.append, progress=False)
    assert not any("reusing" in m for m in logs)


def test_resume_from_epoch_checkpoint_matches_uninterrupted_run(tmp_path, monkeypatch):
    imgs = _images()
    cfg = _cfg()
    full = finetune_backbone(cfg, imgs, tmp_path / "full", guide=False, progress=False)
    # interrupt after the first epoch: make the collapse guard fail at epoch 2 (the epoch-1 checkpoint stays)
    from tocoad_edge.train import collapse

    real_end = collapse.CollapseGuard.end_epoch

    def failing_end(self, epoch):
        if epoch == 2:
            raise collapse.TrainingError("simulated interruption")
        return real_end(self, epoch)

    monkeypatch.setattr(collapse.CollapseGuard, "end_epoch", failing_end)
    with pytest.raises(collapse.TrainingError, match="simulated"):
        finetune_backbone(cfg, imgs, tmp_path / "resumed", guide=False, progress=False)
    assert (tmp_path / "resumed" / "tocoad" / "stage2_no-guide_last_epoch.safetensors").is_file()
    monkeypatch.setattr(collapse.CollapseGuard, "end_epoch", real_end)
    logs = []
    resumed = finetune_backbone(cfg, imgs, tmp_path / "resumed", guide=False, log=logs.append, progress=False)
    assert any("resuming after epoch 1" in m for m in logs)
    for (k, v), (_, w) in zip(full.state_dict().items(), resumed.state_dict().items()):
        assert torch.allclose(v, w, atol=1e-6), k


def test_bad_inputs_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="too few"):
        finetune_backbone(_cfg(), _images(1), tmp_path, guide=False)
    imgs = _images()
    imgs[2] = imgs[2][:32]
    with pytest.raises(DataError, match="another size"):
        finetune_backbone(_cfg(), imgs, tmp_path, guide=False)
    with pytest.raises(ConfigError, match="trainable_from"):
        finetune_backbone(_cfg(trainable_from="layer2"), _images(), tmp_path, guide=False)


def test_auto_trainable_from_is_the_first_layer_of_the_deepest_feature_layers_stage():
    from tocoad_edge.models.wide_resnet import WideResNetBackbone
    from tocoad_edge.train.stage2 import trainable_groups

    lite = build_backbone("efficientnet_lite0")
    assert lite.stage_start("blocks.10") == "blocks.8"          # blocks.8-10: 112 channels, stride 16
    assert lite.stage_start("blocks.4") == "blocks.3"           # blocks.3-4: 40 channels, stride 8
    assert lite.stage_start("blocks.0") == "blocks.0"
    _, names = trainable_groups(lite, "auto", ["blocks.4", "blocks.10"])
    assert names == ["blocks.8", "blocks.9", "blocks.10"]
    _, names = trainable_groups(lite, "blocks.5", ["blocks.4", "blocks.10"])
    assert names == [f"blocks.{i}" for i in range(5, 11)]
    wrn = WideResNetBackbone()                                  # random weights: only the layout matters here
    assert wrn.stage_start("layer3") == "layer3"
    assert trainable_groups(wrn, "auto", ["layer2", "layer3"])[1] == ["layer3"]
    with pytest.raises(ConfigError, match="no layer 'blocks.99'"):
        lite.stage_start("blocks.99")
