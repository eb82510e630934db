"""The engine's I/O tensors are checked against the bundle before any buffer is bound: a fake engine (the
tensor-name API TensorRT ≥ 8.5 has) reports wrong names, shapes or dtypes, and the runner's check refuses it with
``EngineIncompatibleError`` saying what was expected and got. No GPU needed."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from tocoad_edge.bundle.manifest import read_manifest
from tocoad_edge.errors import BundleError, EngineIncompatibleError
from tocoad_edge.runtime.backends.trt.bindings import Binding, binding_mismatches, check_engine_io
from tocoad_edge.runtime.backends.trt.compat import io_tensors
from tocoad_edge.runtime.backends.trt.fingerprint import DeviceInfo, make_fingerprint

ORIN = DeviceInfo("10.3.0", "Orin", "8.7")
# what the runner needs of the tensorrt module here: I/O modes and TensorRT dtype → numpy type
FAKE_TRT = SimpleNamespace(TensorIOMode=SimpleNamespace(INPUT="input", OUTPUT="output"), nptype=lambda t: t)


class FakeEngine:
    """Tensors as (mode, engine shape, numpy dtype); -1 marks a dynamic dimension the context resolves."""

    def __init__(self, tensors: dict[str, tuple[str, tuple[int, ...], type]]):
        self.tensors = tensors
        self.num_io_tensors = len(tensors)

    def get_tensor_name(self, i):
        return list(self.tensors)[i]

    def get_tensor_mode(self, name):
        return self.tensors[name][0]

    def get_tensor_shape(self, name):
        return self.tensors[name][1]

    def get_tensor_dtype(self, name):
        return self.tensors[name][2]


class FakeContext:
    """Resolves -1 in the batch dimension to the input shape set on it (as TensorRT's context does)."""

    def __init__(self, engine):
        self.engine = engine
        self.batch = None

    def set_input_shape(self, name, shape):
        self.batch = shape[0]
        return True

    def get_tensor_shape(self, name):
        shape = self.engine.get_tensor_shape(name)
        return tuple(self.batch if (i == 0 and d == -1) else d for i, d in enumerate(shape))


@pytest.fixture(scope="module")
def manifest(tiny_bundle):
    return read_manifest(tiny_bundle)


def _check(manifest, tensors, shape_batch=1):
    fp = make_fingerprint(ORIN, "fp16", (shape_batch, manifest.input.height, manifest.input.width, 3),
                          manifest.files[manifest.models["fp32"].file].sha256,
                          batch_profile=(1, 1, 8) if shape_batch == -1 else None)
    engine = FakeEngine(tensors)
    context = FakeContext(engine)
    inputs, outputs = io_tensors(FAKE_TRT, engine)
    check_engine_io(FAKE_TRT, engine, context, inputs, outputs, manifest, fp)
    return context


def _tensors(manifest, *, batch=1, out_shape=None, out_dtype=np.float32, in_dtype=np.uint8, out_name=None):
    m, i, f = manifest.models["fp32"], manifest.input, manifest.features
    return {m.input_name: ("input", (batch, i.height, i.width, 3), in_dtype),
            out_name or m.output_name: ("output", out_shape or (batch, f.grid[0] * f.grid[1], f.dim), out_dtype)}


def test_an_engine_with_the_bundles_tensors_passes(manifest):
    _check(manifest, _tensors(manifest))
    _check(manifest, _tensors(manifest, in_dtype=np.float32))           # float input: the runner casts
    context = _check(manifest, _tensors(manifest, batch=-1), shape_batch=-1)
    assert context.batch == 1                                            # dynamic batch: checked at batch 1


@pytest.mark.parametrize("wrong", ["output shape", "output dtype", "input shape", "output name", "extra output"])
def test_an_engine_reporting_other_tensors_is_refused(manifest, wrong):
    f = manifest.features
    p = f.grid[0] * f.grid[1]
    tensors = {
        "output shape": _tensors(manifest, out_shape=(1, p, f.dim * 2)),          # would overrun the buffer
        "output dtype": _tensors(manifest, out_dtype=np.float16),
        "input shape": _tensors(manifest, batch=4),
        "output name": _tensors(manifest, out_name="features"),
        "extra output": {**_tensors(manifest), "debug": ("output", (1, 4), np.float32)},
    }[wrong]
    with pytest.raises(EngineIncompatibleError) as info:
        _check(manifest, tensors)
    err = info.value
    assert "does not have the tensors the runtime allocates for" in err.message
    assert f"[1, {p}, {f.dim}] float32" in err.expected and err.got
    assert "tocoad-export engine BUNDLE" in err.fix
    needle = {"output shape": f"shape [1, {p}, {f.dim * 2}]", "output dtype": "dtype float16",
              "input shape": "shape [4,", "output name": "no tensor 'embeddings'",
              "extra output": "unexpected tensor 'debug'"}[wrong]
    assert needle in err.message


def test_an_engine_of_another_model_is_refused(manifest):
    fp = make_fingerprint(ORIN, "fp16", (1, manifest.input.height, manifest.input.width, 3), "cd" * 32)
    engine = FakeEngine(_tensors(manifest))
    with pytest.raises(BundleError, match="ONNX model this bundle does not have"):
        check_engine_io(FAKE_TRT, engine, FakeContext(engine), ["image"], ["embeddings"], manifest, fp)


def test_binding_mismatches_is_empty_only_for_equal_tensors():
    want = [Binding("x", (1, 2), ("uint8", "float32"))]
    assert binding_mismatches(want, [Binding("x", (1, 2), ("float32",))]) == []
    assert binding_mismatches(want, [Binding("x", (2, 1), ("uint8",))]) == ["'x' shape [2, 1] ≠ [1, 2]"]
    assert binding_mismatches(want, []) == ["no tensor 'x' (engine has [])"]
