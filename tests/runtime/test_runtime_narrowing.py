"""Where the runtime's types narrow (an optional index, a closed session, a registry entry, a manifest key), a wrong
state is a TocoadError that names the fix, not an AttributeError on None deep inside."""
import dataclasses
import shutil

import numpy as np
import pytest

from tocoad_edge.bundle.manifest import MANIFEST_NAME, read_manifest
from tocoad_edge.errors import BundleError, ConfigError, TocoadError
from tocoad_edge.runtime.backends import create_backend, register_backend
from tocoad_edge.runtime.backends.registry import _REGISTRY
from tocoad_edge.runtime.detector import query_ef
from tocoad_edge.runtime.golden import record_golden_scores
from tocoad_edge.runtime.search.graph import GraphSearch


def test_query_ef_without_an_index_names_the_searches_that_need_none(tiny_bundle):
    manifest = read_manifest(tiny_bundle)
    no_index = dataclasses.replace(manifest, search={},
                                   memory_bank=dataclasses.replace(manifest.memory_bank, index=None))
    with pytest.raises(BundleError, match="no HNSW index") as err:
        query_ef(no_index, "fp32")
    assert "search='exact'" in err.value.fix
    # the ef tuned at export still wins where the bundle has one
    tuned = dataclasses.replace(no_index, search={"ef_per_precision": {"fp32": 24}})
    assert query_ef(tuned, "fp32") == 24


def test_closed_graph_search_says_so():
    bank = np.random.default_rng(0).standard_normal((300, 16)).astype(np.float32)
    search = GraphSearch(bank, threads=1)
    assert search.query(bank[:3]).shape == (3,)
    search.close()
    with pytest.raises(TocoadError, match="closed"):
        search.query(bank[:3])


def test_registry_entry_that_is_not_a_backend_class(tmp_path):
    register_backend("not-a-backend", "tocoad_edge.runtime.frames:to_bgr_frame")
    try:
        with pytest.raises(ConfigError, match="names no Backend class") as err:
            create_backend("not-a-backend", tmp_path / "model.onnx")
        assert "Backend subclass" in err.value.expected
    finally:
        del _REGISTRY["not-a-backend"]


def test_golden_record_refuses_a_model_key_that_is_no_precision(tiny_bundle, tmp_path):
    bundle = shutil.copytree(tiny_bundle, tmp_path / "bundle")
    manifest = read_manifest(bundle)
    renamed = dataclasses.replace(manifest, models={"fp64": manifest.models["fp32"]})
    (bundle / MANIFEST_NAME).write_text(renamed.to_json(), encoding="utf-8")
    with pytest.raises(BundleError, match="unknown precision 'fp64'") as err:
        record_golden_scores(bundle)
    assert "fp32" in err.value.expected and "fp64" in err.value.got
