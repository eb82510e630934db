"""Stage 1 focal loss, SimSiam loss, negative guide, collapse guard, AUROC helper (tiny tensors)."""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from tocoad_edge.errors import TrainingError
from tocoad_edge.train.collapse import CollapseGuard, normalised_feature_std
from tocoad_edge.eval.metrics import auroc
from tocoad_edge.train.discriminator import Discriminator, focal_loss, masks_to_grid
from tocoad_edge.train.negative_guide import guide_loss
from tocoad_edge.train.simsiam import DensePredictor, DenseProjector, negative_cosine, simsiam_loss


def test_focal_loss_reduces_to_half_bce_and_down_weights_easy_pixels():
    logits = torch.tensor([[-3.0, 0.2, 2.5, -0.1]])
    target = torch.tensor([[0.0, 1.0, 1.0, 0.0]])
    bce = F.binary_cross_entropy_with_logits(logits, target)
    assert torch.allclose(focal_loss(logits, target, alpha=0.5, gamma=0.0), 0.5 * bce)
    easy = focal_loss(torch.tensor([6.0]), torch.tensor([1.0]), 0.5, 2.0)
    hard = focal_loss(torch.tensor([-1.0]), torch.tensor([1.0]), 0.5, 2.0)
    assert easy < 1e-4 * hard
    # hand-computed value for one pixel: -α (1-p)^γ log p
    p = torch.sigmoid(torch.tensor(0.3))
    expected = -0.5 * (1 - p) ** 2 * torch.log(p)
    assert torch.allclose(focal_loss(torch.tensor([0.3]), torch.tensor([1.0]), 0.5, 2.0), expected)


def test_discriminator_learns_a_toy_segmentation_with_focal_loss():
    torch.manual_seed(0)
    maps = [torch.randn(16, 8, 8, 8), torch.randn(16, 12, 4, 4)]
    target = (maps[0][:, :1] > 1.0).float()  # the defect is visible in channel 0 of the finest map
    disc = Discriminator([8, 12], width=16)
    opt = torch.optim.Adam(disc.parameters(), lr=1e-2)
    first = None
    for _ in range(60):
        loss = focal_loss(disc(maps), target)
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    disc.eval()
    assert float(loss.detach()) < 0.5 * first
    assert auroc(target.numpy(), disc.probability(maps).detach().numpy()) > 0.9


def test_masks_to_grid_gives_defect_share_per_cell():
    m = np.zeros((1, 8, 8), np.uint8)
    m[0, :4, :4] = 1
    g = masks_to_grid(m, (2, 2))
    assert g.shape == (1, 1, 2, 2) and torch.allclose(g[0, 0], torch.tensor([[1.0, 0.0], [0.0, 0.0]]))


def test_simsiam_loss_values_and_stop_gradient():
    z = torch.randn(2, 16, 3, 3)
    assert torch.allclose(simsiam_loss(z, z, z, z), torch.tensor(-1.0), atol=1e-6)
    assert torch.allclose(negative_cosine(z, -z), torch.tensor(1.0), atol=1e-6)
    p = torch.randn(2, 16, 3, 3, requires_grad=True)
    target = torch.randn(2, 16, 3, 3, requires_grad=True)
    negative_cosine(p, target).backward()
    assert p.grad is not None and target.grad is None  # stop-gradient on the target branch


def test_simsiam_heads_shapes_and_training_aligns_views():
    torch.manual_seed(0)
    proj, pred = DenseProjector(8, 32), DensePredictor(32, 8)
    x = torch.randn(4, 8, 5, 5)
    z = proj(x)
    assert z.shape == (4, 32, 5, 5) and pred(z).shape == (4, 32, 5, 5)
    params = list(proj.parameters()) + list(pred.parameters())
    opt = torch.optim.SGD(params, lr=0.1, momentum=0.9)
    losses = []
    for _ in range(30):
        v1, v2 = x + 0.1 * torch.randn_like(x), x + 0.1 * torch.randn_like(x)
        z1, z2 = proj(v1), proj(v2)
        loss = simsiam_loss(pred(z1), pred(z2), z1, z2)
        losses.append(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses[-1] < losses[0] and losses[-1] < -0.5


def test_guide_pushes_marked_regions_and_keeps_the_rest_aligned():
    torch.manual_seed(0)
    normal = torch.randn(2, 16, 6, 6)
    weight = torch.zeros(2, 1, 6, 6)
    weight[:, :, :3] = 1.0  # top half marked anomalous by D
    anomalous = (normal + 0.05 * torch.randn_like(normal)).requires_grad_(True)
    loss, parts = guide_loss(anomalous, normal, weight, margin=0.5)
    assert parts["push"] > 0.3 and parts["pull"] < 0.01
    loss.backward()
    g = anomalous.grad
    # the push term's gradient moves marked features away from their normal partner: cos must fall after a step
    stepped = anomalous.detach() - 1.0 * g
    cos_before = F.cosine_similarity(anomalous.detach(), normal, dim=1)
    cos_after = F.cosine_similarity(stepped, normal, dim=1)
    assert (cos_after[:, :3] < cos_before[:, :3]).float().mean() > 0.95
    # unmarked regions are not pushed (only pulled, which keeps cos at ~1)
    assert (cos_after[:, 3:] >= cos_before[:, 3:] - 1e-3).all()
    # a map at another resolution is resized; no gradient reaches the normal anchor
    normal_leaf = normal.clone().requires_grad_(True)
    loss2, _ = guide_loss(anomalous, normal_leaf, torch.ones(2, 12, 12) * 0.5)
    loss2.backward()
    assert normal_leaf.grad is None


def test_guide_is_zero_when_features_are_already_apart():
    normal = torch.zeros(1, 2, 2, 2)
    normal[:, 0] = 1.0
    anomalous = torch.zeros(1, 2, 2, 2)
    anomalous[:, 1] = 1.0  # orthogonal: cos = 0 < margin
    loss, parts = guide_loss(anomalous, normal, torch.ones(1, 1, 2, 2), margin=0.5)
    assert parts["push"] == 0.0 and float(loss) == pytest.approx(0.0, abs=1e-5)


def test_collapse_guard_raises_on_collapsed_features():
    spread = torch.randn(4, 32, 5, 5)
    collapsed = torch.ones(4, 32, 5, 5) + 1e-4 * torch.randn(4, 32, 5, 5)
    assert normalised_feature_std(spread) > 0.5 and normalised_feature_std(collapsed) < 0.01
    guard = CollapseGuard(ratio=0.2)
    guard.set_reference(normalised_feature_std(spread))
    guard.observe(spread)
    assert guard.end_epoch(1) > 0.5
    guard.observe(collapsed)
    with pytest.raises(TrainingError, match="collapsed"):
        guard.end_epoch(2)


def test_stage_sections_load_strictly_from_yaml(tmp_path):
    from tocoad_edge.train.config import load_train_config
    from tocoad_edge.errors import ConfigError

    good = tmp_path / "good.yaml"
    good.write_text("stages: full\nsynth:\n  method: cutpaste\n  textures: /data/dtd\nstage1:\n  epochs: 3\n"
                    "stage2:\n  guide_margin: 0.2\n  batchnorm: train\n")
    cfg = load_train_config(good)
    assert cfg.synth.method == "cutpaste" and cfg.synth.textures == "/data/dtd" and cfg.stage1.epochs == 3
    assert cfg.stage2.guide_margin == 0.2 and cfg.stage2.batchnorm == "train" and cfg.stage2.epochs == 3
    typo = tmp_path / "typo.yaml"
    typo.write_text("stage2:\n  guide_wieght: 2.0\n")
    with pytest.raises(ConfigError, match="did you mean 'guide_weight'"):
        load_train_config(typo)
    bad = tmp_path / "bad.yaml"
    bad.write_text("stage1:\n  focal_gamma: -1\n")
    with pytest.raises(ConfigError, match="stage1.focal_gamma"):
        load_train_config(bad)
