import json

import pytest

from tocoad_edge.bundle import read_manifest, verify_files
from tocoad_edge.errors import BundleError


def test_manifest_round_trip(tiny_bundle):
    m = read_manifest(tiny_bundle)
    assert m.schema_version == 2
    assert set(m.files) >= {"backbone.onnx", "coreset.npy", "index.hnsw", "search_projection.npy", "parity.json"}
    assert m.features.grid == (8, 8) and m.features.dim == 384 and m.features.aggregation_mode == "patchcore"
    # the default export: float16 bank, projected index with lending
    ix = m.memory_bank.index
    assert ix.ef >= ix.candidates
    assert m.memory_bank.dtype == "float16"
    assert (ix.kind, ix.projection, ix.dims, ix.candidates, ix.lend) == \
        ("projected_hnsw", "search_projection.npy", 32, 8, 2)
    assert m.search["index_kind"] == "projected_hnsw" and m.search["projected_dims"] == 32
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


def test_index_spec_kinds_must_be_consistent():
    from tocoad_edge.bundle.manifest import IndexSpec
    from tocoad_edge.errors import ConfigError

    with pytest.raises(ConfigError, match="memory_bank.index.projection"):
        IndexSpec(file="index.hnsw", kind="projected_hnsw", dims=64, candidates=8)
    with pytest.raises(ConfigError, match="memory_bank.index.dims"):
        IndexSpec(file="index.hnsw", kind="hnsw", dims=64)
    with pytest.raises(ConfigError, match="memory_bank.index.kind"):
        IndexSpec(file="index.hnsw", kind="ivf")
    with pytest.raises(ConfigError, match="memory_bank.index.candidates"):
        IndexSpec(file="index.hnsw", kind="projected_hnsw", projection="p.npy", dims=8, candidates=0)
