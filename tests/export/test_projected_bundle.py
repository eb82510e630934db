"""The default bundle (float16 bank, projected index, no torch weights) round trip, and the old format beside it:
a full-dimension, float32, schema 1 bundle of the same run still opens and scores the same."""
import shutil

import cv2
import numpy as np
import pytest

from tocoad_edge.bundle import read_manifest, verify_files
from tocoad_edge.errors import BundleError
from tocoad_edge.runtime import Detector
from reliability_fixtures import rewrite_manifest


@pytest.fixture(scope="module")
def old_format_bundle(tmp_path_factory, tiny_run):
    """The same run exported the way schema 1 bundles were: float32 bank, full-dimension index, and a schema 1
    manifest (none of the schema 2 index keys)."""
    from tocoad_edge.export.bundle_writer import ExportOptions, write_bundle

    out = write_bundle(tiny_run, tmp_path_factory.mktemp("old") / "b",
                       ExportOptions(search_index="full", bank_dtype="float32"))

    def as_schema_1(data):
        data["schema_version"] = 1
        for key in ("projection", "dims", "candidates"):
            data["memory_bank"]["index"].pop(key, None)   # the export no longer writes them for an hnsw index
    rewrite_manifest(out, as_schema_1)
    return out


def _frames(sample_dataset):
    paths = sorted((sample_dataset / "test").glob("*/*.png"))[:6]
    return [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in paths]


def test_default_bundle_files_are_listed_hashed_and_small(tiny_run, tmp_path):
    from tocoad_edge.export.bundle_writer import ExportOptions, write_bundle

    bundle = write_bundle(tiny_run, tmp_path / "b", ExportOptions())
    m = read_manifest(bundle)
    assert "backbone.safetensors" not in m.files and not (bundle / "backbone.safetensors").exists()
    assert {"search_projection.npy", "index.hnsw", "coreset.npy"} <= set(verify_files(bundle, m))
    assert np.load(bundle / "coreset.npy").dtype == np.float16
    projection = np.load(bundle / "search_projection.npy", allow_pickle=False)
    assert projection.shape == (m.memory_bank.dim + 1, m.memory_bank.index.dims) and projection.dtype == np.float32
    with pytest.raises(BundleError, match="--with-torch-weights"):
        Detector.open(bundle, backend="torch")


def test_projected_bundle_scores_exactly_with_refined_search(tiny_bundle, sample_dataset):
    with Detector.open(tiny_bundle, search="exact") as exact, \
            Detector.open(tiny_bundle, search="refined") as refined, \
            Detector.open(tiny_bundle, search="hnsw") as hnsw:
        assert hnsw.describe()["search"]["kind"] == "projected"
        assert refined.describe()["search"]["approx"]["kind"] == "projected"
        for frame in _frames(sample_dataset):
            want = exact.predict(frame)
            assert refined.predict(frame).raw_score == pytest.approx(want.raw_score, rel=1e-5)
            approx = hnsw.predict(frame)
            assert approx.raw_score >= want.raw_score * (1 - 1e-5)          # a real distance: never below exact
            np.testing.assert_allclose(approx.anomaly_map, want.anomaly_map, atol=1e-3 * np.ptp(want.anomaly_map))


def test_search_auto_times_the_projected_index(tiny_bundle):
    from tocoad_edge.runtime.detector import map_ef

    with Detector.open(tiny_bundle, search="auto") as det:
        selection = det.describe()["search"]["selection"]
    assert {"exact_ms", "refined_ms"} <= set(selection) and selection["chosen"] in ("exact", "graph", "refined")
    assert selection["refined_ef"] == map_ef(det.manifest, "fp32")


def test_old_format_bundle_still_opens_and_scores_the_same(old_format_bundle, tiny_bundle, sample_dataset):
    m = read_manifest(old_format_bundle)
    assert m.schema_version == 1 and m.memory_bank.index.kind == "hnsw" and m.memory_bank.dtype == "float32"
    assert "search_projection.npy" not in m.files
    with Detector.open(old_format_bundle, search="refined") as old, \
            Detector.open(tiny_bundle, search="refined") as new:
        assert old.describe()["search"]["approx"]["kind"] == "hnsw"
        for frame in _frames(sample_dataset):
            # same run; the new bank is float16-rounded, which moves exact scores only by rounding
            assert new.predict(frame).raw_score == pytest.approx(old.predict(frame).raw_score, rel=2e-3)


def test_projection_not_listed_or_mismatched_is_refused(tiny_bundle, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(tiny_bundle, copy)
    rewrite_manifest(copy, lambda d: d["files"].pop("search_projection.npy"))
    with pytest.raises(BundleError, match="search projection file search_projection.npy is not listed"):
        Detector.open(copy, search="hnsw")
    shutil.rmtree(copy)
    shutil.copytree(tiny_bundle, copy)
    projection = np.load(copy / "search_projection.npy")
    np.save(copy / "search_projection.npy", projection[:, :16])             # consistent hashes, wrong dims
    data = rewrite_manifest(copy, rehash=["search_projection.npy"])
    assert data["memory_bank"]["index"]["dims"] == 32
    with pytest.raises(BundleError, match="does not match the manifest") as err:
        Detector.open(copy, search="refined")
    assert "expected: 32 dims" in str(err.value)
    with Detector.open(copy, search="exact") as det:                         # exact search never reads it
        assert det.search.name == "exact"


def test_rewriting_a_schema_1_manifest_keeps_its_index_entry_as_it_was(old_format_bundle):
    """tocoad-threshold and engine builds write the manifest back: a schema 1 bundle's index entry must not gain the
    schema 2 keys, or a runtime that reads only schema 1 would refuse the rewritten manifest."""
    import json

    from tocoad_edge.bundle.manifest import PROJECTED_INDEX_KEYS

    before = json.loads((old_format_bundle / "manifest.json").read_text())["memory_bank"]["index"]
    rewritten = json.loads(read_manifest(old_format_bundle).to_json())
    assert rewritten["schema_version"] == 1
    assert rewritten["memory_bank"]["index"] == before
    assert not set(PROJECTED_INDEX_KEYS) & set(before)


def test_projected_index_entry_keeps_its_keys_when_rewritten(tiny_bundle):
    import json

    before = json.loads((tiny_bundle / "manifest.json").read_text())["memory_bank"]["index"]
    assert json.loads(read_manifest(tiny_bundle).to_json())["memory_bank"]["index"] == before
    assert before["kind"] == "projected_hnsw" and before["dims"] >= 1 and before["candidates"] >= 1


def test_default_index_lends_and_one_without_lending_is_written_as_before(tiny_run, tiny_bundle, tmp_path,
                                                                           sample_dataset):
    """The default export walks 8 candidates and lends 2 to each grid neighbour; ``--search-lend 0`` writes the
    index entry without the key, so runtimes from before lending still read it, and its refined scores are the
    same exact scores."""
    import json

    from tocoad_edge.export.bundle_writer import ExportOptions, write_bundle

    lending = json.loads((tiny_bundle / "manifest.json").read_text())["memory_bank"]["index"]
    assert (lending["candidates"], lending["lend"]) == (8, 2)
    plain = write_bundle(tiny_run, tmp_path / "plain", ExportOptions(search_candidates=16, search_lend=0))
    entry = json.loads((plain / "manifest.json").read_text())["memory_bank"]["index"]
    assert "lend" not in entry and entry["candidates"] == 16
    with Detector.open(plain, search="refined") as old, Detector.open(tiny_bundle, search="refined") as new:
        assert old.describe()["search"]["approx"]["lend"] == 0
        assert new.describe()["search"]["approx"]["lend"] == 2
        for frame in _frames(sample_dataset):
            assert new.predict(frame).raw_score == pytest.approx(old.predict(frame).raw_score, rel=1e-5)


def test_lend_beyond_the_candidates_is_refused(tiny_bundle, tmp_path):
    from tocoad_edge.errors import TocoadError

    copy = tmp_path / "b"
    shutil.copytree(tiny_bundle, copy)
    rewrite_manifest(copy, lambda d: d["memory_bank"]["index"].update(lend=9))
    with pytest.raises(TocoadError, match="memory_bank.index.lend") as err:
        Detector.open(copy, search="refined")
    assert "0 .. candidates (8)" in str(err.value) and "9" in str(err.value)
