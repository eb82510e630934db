"""Item 1: an engine whose fingerprint names another TensorRT version or GPU is refused before deserialisation,
naming both; the serving model is untouched and nothing is written. No GPU needed: the device is given."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from reliability_fixtures import (assert_no_partial_files, bundle_copy, golden_fingerprint, rel_bundle,  # noqa: F401
                                  rewrite_manifest, serving, tree)
from tocoad_edge.errors import EngineIncompatibleError

from tocoad_edge.runtime.backends.trt import fingerprint as fingerprints
from tocoad_edge.runtime.backends.trt import runner as trt_backend

BUILT_ON = fingerprints.DeviceInfo("10.3.0", "Orin", "8.7")
OTHERS = {
    "other TensorRT": fingerprints.DeviceInfo("10.7.0", "Orin", "8.7"),
    "other GPU": fingerprints.DeviceInfo("10.3.0", "NVIDIA GeForce RTX 4090", "8.9"),
    "both": fingerprints.DeviceInfo("8.6.2", "Xavier", "7.2"),
}


def _bundle_with_engine(bundle):
    manifest = json.loads((bundle / "manifest.json").read_text())
    fp = fingerprints.make_fingerprint(BUILT_ON, "fp16", (1, 64, 64, 3), manifest["files"]["backbone.onnx"]["sha256"])
    (bundle / fp.file).write_bytes(b"\x00TRT-ENGINE" * 1000)          # never deserialised in these tests

    def add(d):
        d["engines"] = [{"file": fp.file, "tensorrt_version": fp.tensorrt_version, "gpu_name": fp.gpu_name,
                         "compute_capability": fp.compute_capability, "precision": fp.precision,
                         "input_shape": list(fp.input_shape), "onnx_sha256": fp.onnx_sha256, "dla_core": None}]
    rewrite_manifest(bundle, add, rehash=[fp.file])
    return fp


@pytest.mark.parametrize("name", list(OTHERS))
def test_fingerprint_mismatch_names_both_sides(name, bundle_copy, serving):
    from tocoad_edge.bundle.manifest import read_manifest

    before = golden_fingerprint(serving)
    fp = _bundle_with_engine(bundle_copy)
    device = OTHERS[name]
    assert trt_backend.engine_matches_device(fp, BUILT_ON)
    assert not trt_backend.engine_matches_device(fp, device)
    with pytest.raises(EngineIncompatibleError) as info:
        trt_backend.engine_for(read_manifest(bundle_copy), "fp32", device=device)
    text = str(info.value)
    for side in (BUILT_ON, device):                                     # both the engine's and this device's
        assert side.tensorrt_version in text and side.gpu_name in text
    assert "tocoad-export engine" in info.value.fix
    assert golden_fingerprint(serving) == before


def test_detector_refuses_before_deserialising(bundle_copy, serving):
    """Detector.open(backend='tensorrt') on a device the engine was not built for: EngineIncompatibleError, and
    TensorRT itself was never imported (so no engine byte reached a deserialiser). backend='auto' falls back to
    ONNX Runtime and serves."""
    before = golden_fingerprint(serving)
    _bundle_with_engine(bundle_copy)
    listing = {bundle_copy: tree(bundle_copy)}
    script = textwrap.dedent("""
        import json, sys
        from tocoad_edge.runtime.backends.trt import fingerprint as trt_fingerprint, runner as trt
        device = trt_fingerprint.DeviceInfo("10.7.0", "NVIDIA GeForce RTX 4090", "8.9")
        trt.current_device = lambda *a, **k: device
        from tocoad_edge.runtime import Detector
        out = {}
        try:
            Detector.open(sys.argv[1], backend="tensorrt")
            out["tensorrt"] = "opened"
        except Exception as exc:
            out["tensorrt"] = type(exc).__name__
            out["message"] = str(exc)
        out["imported_tensorrt"] = "tensorrt" in sys.modules
        with Detector.open(sys.argv[1], backend="auto", search="exact") as det:
            out["auto_backend"] = det.backend.name
        print("RESULT " + json.dumps(out))
    """)
    proc = subprocess.run([sys.executable, "-c", script, str(bundle_copy)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.split("RESULT ", 1)[1])
    assert out["tensorrt"] == "EngineIncompatibleError", out
    assert "10.3.0" in out["message"] and "10.7.0" in out["message"] and "Orin" in out["message"]
    assert out["imported_tensorrt"] is False
    assert out["auto_backend"] == "onnxrt"
    assert_no_partial_files(bundle_copy, before=listing)
    assert golden_fingerprint(serving) == before
