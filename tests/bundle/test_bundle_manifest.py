import json

import pytest

from tocoad_edge.bundle import read_manifest, verify_files
from tocoad_edge.errors import BundleError


def test_manifest_round_trip(tiny_bundle):
    m = read_manifest(tiny_bundle)
    assert m.schema_version == 1
    assert set(m.files) >= {"backbone.onnx", "coreset.npy", "index.hnsw", "parity.json"}
    assert m.features.grid == (8, 8) and m.features.dim == 384 and m.features.aggregation_mode == "patchcore"
    assert m.memory_bank.index.ef >= 16
    assert m.scoring.image_threshold > 0 and m.scoring.normalization_scale > 0
    paths = verify_files(tiny_bundle, m)
    assert all(p.is_file() for p in paths.values())


def test_tampered_file_is_refused(tiny_bundle, tmp_path):
    import shutil

    copy = tmp_path / "b"
    shutil.copytree(tiny_bundle, copy)
    data = bytearray((copy / "coreset.npy").read_bytes())
    data[-1] ^= 0xFF
    (copy / "coreset.npy").write_bytes(bytes(data))
    with pytest.raises(BundleError) as e:
        verify_files(copy, read_manifest(copy))
    assert "coreset.npy" in str(e.value) and "sha256" in str(e.value)


def test_unknown_manifest_key_and_schema(tiny_bundle, tmp_path):
    import shutil

    copy = tmp_path / "b"
    shutil.copytree(tiny_bundle, copy)
    data = json.loads((copy / "manifest.json").read_text())
    data["surprise"] = 1
    (copy / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(BundleError) as e:
        read_manifest(copy)
    assert "surprise" in str(e.value)
    data.pop("surprise")
    data["schema_version"] = 99
    (copy / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(BundleError) as e:
        read_manifest(copy)
    assert "schema" in str(e.value)


def test_manifest_path_escape_refused(tiny_bundle, tmp_path):
    import shutil

    copy = tmp_path / "b"
    shutil.copytree(tiny_bundle, copy)
    data = json.loads((copy / "manifest.json").read_text())
    data["files"]["../outside.bin"] = {"sha256": "0" * 64, "bytes": 1}
    (copy / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(BundleError) as e:
        verify_files(copy, read_manifest(copy))
    assert "outside" in str(e.value)
