"""Item 2: truncated, empty or bit-flipped ONNX, engine, .npy or index files are refused by the sha256 check
before any native loader runs. Each attempt runs in a child process, so a crash would fail the test."""
from __future__ import annotations

import json

import pytest

from reliability_fixtures import (assert_no_partial_files, bundle_copy, corrupt, golden_fingerprint,  # noqa: F401
                                  open_in_subprocess, rel_bundle, rewrite_manifest, serving, tree)

DAMAGE = ("truncated", "empty", "bitflip")


def _add_fake_engine(bundle):
    """A TensorRT engine entry (file + fingerprint), hashed as exported, for a device we do not have."""
    name = "backbone.fp32-0123456789ab.engine"
    (bundle / name).write_bytes(b"ENGINE" * 4096)

    def add(data):
        data["engines"] = [{"file": name, "tensorrt_version": "10.3.0", "gpu_name": "Orin", "compute_capability":
                            "8.7", "precision": "fp32", "input_shape": [1, 64, 64, 3],
                            "onnx_sha256": data["files"]["backbone.onnx"]["sha256"]}]
    rewrite_manifest(bundle, add, rehash=[name])
    return name


@pytest.mark.parametrize("name", ["backbone.onnx", "coreset.npy", "index.hnsw", "search_projection.npy", "engine"])
def test_damaged_file_refused_before_any_loader(name, bundle_copy, serving):
    before_fp = golden_fingerprint(serving)
    if name == "engine":
        name = _add_fake_engine(bundle_copy)
    pristine = (bundle_copy / name).read_bytes()
    for how in DAMAGE:
        (bundle_copy / name).write_bytes(pristine)
        corrupt(bundle_copy / name, how)
        listing = {bundle_copy: tree(bundle_copy)}
        backend = "tensorrt" if name.endswith(".engine") else "onnxrt"
        result = open_in_subprocess(bundle_copy, backend=backend, search="hnsw")
        assert result["error"] == "BundleError", (how, result)
        expected = "sha256" if how == "bitflip" else "wrong size"
        assert expected in result["message"] and name in result["message"], result["message"]
        assert "expected:" in result["message"] and "fix:" in result["message"]
        # refused before ONNX Runtime, hnswlib or TensorRT was even imported
        assert result["modules"] == [], result["modules"]
        assert_no_partial_files(bundle_copy, before=listing)
    assert golden_fingerprint(serving) == before_fp


def test_damaged_file_refused_by_hot_swap_in_process(bundle_copy, serving):
    """The same refusal through HotSwapDetector.swap in this process: typed error, the old model serves on."""
    from tocoad_edge.errors import BundleError

    before_fp, model = golden_fingerprint(serving), serving.model_id
    corrupt(bundle_copy / "backbone.onnx", "bitflip")
    with pytest.raises(BundleError, match="sha256"):
        serving.swap(bundle_copy)
    assert serving.model_id == model and golden_fingerprint(serving) == before_fp
    assert serving.last_error is not None


def test_damaged_manifest_refused(bundle_copy, serving):
    before_fp = golden_fingerprint(serving)
    text = (bundle_copy / "manifest.json").read_text()
    for bad in (text[: len(text) // 2], "", "[1, 2]", text.replace('"schema_version": 2', '"schema_version": 99')):
        (bundle_copy / "manifest.json").write_text(bad)
        result = open_in_subprocess(bundle_copy)
        assert result["error"] == "BundleError", result
        assert result["modules"] == []
    data = json.loads(text)
    data["files"]["coreset.npy"]["sha256"] = 12
    (bundle_copy / "manifest.json").write_text(json.dumps(data))
    result = open_in_subprocess(bundle_copy)
    assert result["error"] == "BundleError" and "files.coreset.npy.sha256" in result["message"], result
    assert golden_fingerprint(serving) == before_fp
