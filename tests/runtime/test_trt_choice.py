"""Which TensorRT engine serves a request: precision, device and input (dynamic batch by its optimisation
profile), and ``backend="auto"`` falling back to ONNX Runtime, with the reason logged, when none fits. No GPU:
the device is given."""
from __future__ import annotations

import dataclasses
import logging

import pytest

from tocoad_edge.bundle.manifest import read_manifest
from tocoad_edge.errors import EngineIncompatibleError
from tocoad_edge.runtime.backends.trt import runner
from tocoad_edge.runtime.backends.trt.fingerprint import (DeviceInfo, fingerprint_id, input_mismatches,
                                                          make_fingerprint)
from tocoad_edge.runtime.detector import choose_backend

ORIN = DeviceInfo("10.3.0", "Orin", "8.7")
XAVIER = DeviceInfo("8.6.2", "Xavier", "7.2")
SHA = "ab" * 32


@pytest.fixture(scope="module")
def manifest(tiny_bundle):
    return read_manifest(tiny_bundle)


def _with(manifest, *engines):
    return dataclasses.replace(manifest, engines=tuple(engines))


def test_dynamic_batch_engines_are_matched_by_their_profile():
    hwc = (64, 64, 3)
    static = make_fingerprint(ORIN, "fp16", (1, 64, 64, 3), SHA)
    dynamic = make_fingerprint(ORIN, "fp16", (-1, 64, 64, 3), SHA, batch_profile=(1, 1, 8))
    from_two = make_fingerprint(ORIN, "fp16", (-1, 64, 64, 3), SHA, batch_profile=(2, 4, 8))
    assert input_mismatches(static, hwc) == [] and input_mismatches(dynamic, hwc) == []
    assert input_mismatches(dynamic, hwc, batch=8) == [] and "outside" in input_mismatches(dynamic, hwc, batch=9)[0]
    assert "batch 1 outside the engine's profile 2..8" in input_mismatches(from_two, hwc)
    assert "input batch 1 ≠ 4" in input_mismatches(static, hwc, batch=4)
    assert input_mismatches(static, (32, 64, 3))[0].startswith("input 1×64×64×3")
    assert dynamic.file != static.file != from_two.file != dynamic.file      # the profile is part of the name
    # a static engine keeps the name it had before profiles were recorded
    assert static.file == f"backbone.{fingerprint_id('10.3.0', 'Orin', '8.7', 'fp16', (1, 64, 64, 3), SHA)}.engine"
    with pytest.raises(ValueError, match="batch profile"):
        make_fingerprint(ORIN, "fp16", (-1, 64, 64, 3), SHA)


def test_engine_for_skips_engines_whose_input_does_not_fit(manifest):
    h, w = manifest.input.height, manifest.input.width
    other_size = make_fingerprint(ORIN, "fp16", (1, h * 2, w, 3), SHA)
    no_batch_one = make_fingerprint(ORIN, "fp16", (-1, h, w, 3), SHA, batch_profile=(2, 2, 8))
    dynamic = make_fingerprint(ORIN, "fp16", (-1, h, w, 3), SHA, batch_profile=(1, 4, 8))
    assert runner.engine_for(_with(manifest, other_size, no_batch_one, dynamic), "fp32", ORIN) == dynamic
    with pytest.raises(EngineIncompatibleError) as info:
        runner.engine_for(_with(manifest, other_size, no_batch_one), "fp32", ORIN)
    text = str(info.value)
    assert other_size.file in text and no_batch_one.file in text and "profile 2..8" in text
    assert f"input 1×{h}×{w}×3" in info.value.expected and "tocoad-export engine BUNDLE" in info.value.fix


def test_auto_falls_back_to_onnxrt_naming_why(manifest, monkeypatch, caplog):
    """An engine that fits the device but not the requested precision, or the precision but not the device:
    auto must pick ONNX Runtime (and say why), never pick TensorRT to fail on it afterwards."""
    monkeypatch.setattr(runner, "current_device", lambda *a: ORIN)
    h, w = manifest.input.height, manifest.input.width
    fp16_orin = make_fingerprint(ORIN, "fp16", (1, h, w, 3), SHA)
    int8_xavier = make_fingerprint(XAVIER, "int8", (1, h, w, 3), SHA)
    int8_orin = make_fingerprint(ORIN, "int8", (1, h, w, 3), SHA)
    m = _with(manifest, fp16_orin, int8_xavier)
    with caplog.at_level(logging.INFO, logger="tocoad_edge.runtime"):
        assert choose_backend("auto", m, "int8") == "onnxrt"
    (line,) = [r.getMessage() for r in caplog.records if "backend auto" in r.getMessage()]
    assert "ONNX Runtime" in line and int8_xavier.file in line and "Xavier" in line
    assert choose_backend("auto", m, "fp32") == "tensorrt"             # the FP16 engine serves a float request
    assert choose_backend("auto", _with(manifest, int8_orin), "int8") == "tensorrt"
    assert choose_backend("auto", _with(manifest, int8_orin), "fp32") == "onnxrt"
    assert choose_backend("auto", _with(manifest), "fp32") == "onnxrt"
    assert choose_backend("tensorrt", _with(manifest), "fp32") == "tensorrt"  # an explicit choice is kept


def test_auto_falls_back_when_there_is_no_tensorrt_here(manifest, monkeypatch, caplog):
    from tocoad_edge.errors import BackendUnavailableError

    def no_device(*a):
        raise BackendUnavailableError("TensorRT is not installed")

    monkeypatch.setattr(runner, "current_device", no_device)
    engine = make_fingerprint(ORIN, "fp16", (1, manifest.input.height, manifest.input.width, 3), SHA)
    with caplog.at_level(logging.INFO, logger="tocoad_edge.runtime"):
        assert choose_backend("auto", _with(manifest, engine), "fp32") == "onnxrt"
    assert any("TensorRT is not installed" in r.getMessage() for r in caplog.records)
