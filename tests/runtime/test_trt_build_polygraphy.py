"""The engine builder hands Polygraphy the right network and builder config for each TensorRT version.

Polygraphy's loaders are lazy: ``polygraphy_loaders`` builds the real ``NetworkFromOnnxBytes`` / ``CreateConfig`` /
``EngineBytesFromNetwork`` objects without touching a GPU, and their attributes are what Polygraphy will apply.
TensorRT 11: the real tensorrt-lean 11.4 bindings (their ``MemoryPoolType`` keys the workspace limit); TensorRT
10.x: the ``BuilderFlag`` / ``MemoryPoolType`` members of the full 10.x bindings' stub.
"""
from pathlib import Path
from types import SimpleNamespace

import pytest

from test_trt_api_names import _lean, _stub_members
from tocoad_edge.runtime.backends.trt.build import polygraphy_loaders
from tocoad_edge.runtime.backends.trt.compat import TrtApi, parse_version

SHAPE = (-1, 224, 224, 3)


def _trt10():
    members = _stub_members()
    assert "WORKSPACE" in members["MemoryPoolType"]
    return SimpleNamespace(__version__="10.3.0", MemoryPoolType=SimpleNamespace(WORKSPACE="WORKSPACE"))


@pytest.mark.parametrize("precision, fp16, int8", [("fp16", True, False), ("int8", True, True)])
def test_tensorrt_10_gets_mixed_precision_flags_and_no_strong_typing(precision, fp16, int8, tmp_path):
    trt = _trt10()
    network, config, engine = polygraphy_loaders(trt, TrtApi(parse_version(trt.__version__)), b"onnx", precision,
                                                 "image", SHAPE, workspace_mb=512, timing_cache=tmp_path / "t.cache")
    assert (config.fp16, config.int8) == (fp16, int8)
    assert network.strongly_typed is False
    assert config.memory_pool_limits == {"WORKSPACE": 512 << 20}
    assert config.timing_cache_path is None                     # nothing to load yet
    assert engine.timing_cache_path == str(tmp_path / "t.cache")  # written after the build
    assert not config.use_dla and config.calibrator is None       # explicit INT8 only: Q/DQ, no calibrator


def test_tensorrt_11_is_strongly_typed_with_no_precision_flags(tmp_path):
    trt = _lean()
    api = TrtApi(parse_version(trt.__version__))
    cache = tmp_path / "t.cache"
    cache.write_bytes(b"cache")
    network, config, _ = polygraphy_loaders(trt, api, b"onnx", "int8", "image", SHAPE, dynamic_batch=True,
                                            max_batch=4, timing_cache=cache)
    assert network.strongly_typed is True
    assert (config.fp16, config.int8) == (False, False)
    assert config.memory_pool_limits == {trt.MemoryPoolType.WORKSPACE: 1024 << 20}
    assert config.timing_cache_path == str(cache)
    (profile,) = config.profiles
    assert tuple(profile["image"].min) == (1, 224, 224, 3) and tuple(profile["image"].max) == (4, 224, 224, 3)


def test_building_without_tensorrt_is_a_clear_error(tmp_path):
    from tocoad_edge.errors import BackendUnavailableError
    from tocoad_edge.runtime.backends.trt.build import build_engine
    from tocoad_edge.runtime.backends.trt.fingerprint import DeviceInfo

    device = DeviceInfo(tensorrt_version="10.3.0", gpu_name="none", compute_capability="0.0")
    with pytest.raises(BackendUnavailableError, match="TensorRT"):
        build_engine(Path(tmp_path / "m.onnx"), "int8", SHAPE, device=device)
