"""The memory-bank search engine without a GPU: the FP16 graph's numerics (run by ONNX Runtime on the CPU, which
executes the same FP16 GEMM + FP32 add), Polygraphy's lazy loaders per TensorRT version (8.6: FP16 flag with
precision constraints preferred; 10 and 11: strongly typed, no flag), the fingerprint, the ``engines.json`` record
(a ``role: search`` engine round-trips, old records still parse, another bank's engine is refused) and the choice
between the TensorRT engine and ONNX Runtime's graph search. The engine itself runs in tests/runtime/test_trt_gpu.py.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from types import SimpleNamespace

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from test_trt_api_names import _lean, _stub_members
from tocoad_edge.bundle.engine_record import (EngineRecord, RecordedEngine, engine_view, parse_engine_record,
                                              with_engine)
from tocoad_edge.bundle.manifest import FileEntry, read_manifest
from tocoad_edge.errors import BundleError, EngineIncompatibleError
from tocoad_edge.runtime.backends.trt import runner
from tocoad_edge.runtime.backends.trt.compat import TrtApi, parse_version
from tocoad_edge.runtime.backends.trt.fingerprint import DeviceInfo, make_fingerprint, make_search_fingerprint
from tocoad_edge.runtime.backends.trt.search_engine import query_profile, search_engine_loaders, search_graph_for
from tocoad_edge.runtime.backends.trt.search_runner import graph_search_on_tensorrt, search_engine_for
from tocoad_edge.runtime.search.distance_graph import center_and_scale, fp16_search_graph

ORIN = DeviceInfo("10.3.0", "Orin", "8.7")
XAVIER = DeviceInfo("8.6.2", "Xavier", "7.2")
SHA = "ab" * 32


def fp16_bound(bank, q, ref):
    """The stated worst-case relative distance error of the FP16 search engine (docs/int8_and_tensorrt.md): the
    FP16 rounding of the centred query and bank row in the one FP16 product, 2^-10 · |q − μ| · R / d², where R is
    the bank's radius around its mean μ and d the exact distance."""
    mean, _ = center_and_scale(bank)
    radius = np.linalg.norm(bank - mean, axis=1).max()
    return 2.0 ** -10 * np.linalg.norm(q - mean, axis=1) * radius / ref ** 2


def _post_relu_bank(entries, dim, seed=0):
    """Non-negative, offset features like a CNN's pooled activations, and queries close to bank rows."""
    rng = np.random.default_rng(seed)
    bank = (np.maximum(rng.standard_normal((entries, dim)) + 0.5, 0) * 3).astype(np.float32)
    q = bank[rng.integers(0, entries, 784)] + 0.3 * rng.standard_normal((784, dim)).astype(np.float32)
    return bank, q


def _distances_fp16_graph(bank, q, chunk):
    mean, scale = center_and_scale(bank)
    qs = (q - mean) / np.float32(scale)
    sess = ort.InferenceSession(fp16_search_graph(bank, chunk), providers=["CPUExecutionProvider"])
    best = sess.run(None, {"queries": qs})[0] + np.einsum("ij,ij->i", qs, qs)
    return np.sqrt(np.maximum(best * scale * scale, 0))


def _exact64(q, bank):
    q64, b64 = q.astype(np.float64), bank.astype(np.float64)
    return np.sqrt(np.maximum((q64 ** 2).sum(1)[:, None] - 2 * q64 @ b64.T + (b64 ** 2).sum(1)[None], 0).min(1))


@pytest.mark.parametrize("entries,dim,chunk", [(3000, 384, 1024), (700, 64, 256)])
def test_fp16_graph_is_within_its_stated_tolerance_of_exact_search(entries, dim, chunk):
    bank, q = _post_relu_bank(entries, dim)
    got = _distances_fp16_graph(bank, q, chunk)
    ref = _exact64(q, bank)
    assert got.shape == (784,) and got.dtype == np.float32
    assert np.all(np.abs(got - ref) / ref <= fp16_bound(bank, q, ref))
    assert np.max(np.abs(got - ref) / ref) < 0.02            # these queries: 9-10x closer to the bank than its radius


def test_fp16_graph_keeps_the_norms_and_minima_in_fp32():
    bank, _ = _post_relu_bank(600, 32)
    model = onnx.load_from_string(fp16_search_graph(bank, 256))
    onnx.checker.check_model(model, full_check=True)
    types = {t.name: t.data_type for t in model.graph.initializer}
    assert types["bank_0"] == onnx.TensorProto.FLOAT16 and types["norm_0"] == onnx.TensorProto.FLOAT
    assert len([n for n in model.graph.node if n.op_type == "MatMul"]) == 3          # 600 entries in chunks of 256
    casts = {n.output[0]: n.attribute[0].i for n in model.graph.node if n.op_type == "Cast"}
    assert casts["queries_fp16"] == onnx.TensorProto.FLOAT16 and casts["cross32_0"] == onnx.TensorProto.FLOAT
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def test_centring_and_scale_bring_the_bank_inside_the_unit_ball():
    bank, _ = _post_relu_bank(500, 48)
    mean, scale = center_and_scale(bank)
    norms = np.linalg.norm((bank - mean) / scale, axis=1)
    assert norms.max() <= 1.0 and norms.max() > 0.5            # a power of two: within a factor 2 of the radius
    assert np.log2(scale) == int(np.log2(scale))


def _trt(version):
    return SimpleNamespace(__version__=version, MemoryPoolType=SimpleNamespace(WORKSPACE="WORKSPACE"))


@pytest.mark.parametrize("version, strong", [("8.6.1", False), ("10.3.0", True)])
def test_search_loaders_per_tensorrt_version(version, strong, tmp_path):
    assert "WORKSPACE" in _stub_members()["MemoryPoolType"]
    trt = _trt(version)
    network, config, engine = search_engine_loaders(trt, TrtApi(parse_version(version)), b"onnx", 384,
                                                    (1, 784, 6272), workspace_mb=256,
                                                    timing_cache=tmp_path / "t.cache")
    assert network.strongly_typed is strong
    assert config.fp16 is (not strong) and config.int8 is False            # strongly typed refuses precision flags
    assert config.precision_constraints == (None if strong else "prefer")
    assert config.memory_pool_limits == {"WORKSPACE": 256 << 20}
    (profile,) = config.profiles
    assert (tuple(profile["queries"].min), tuple(profile["queries"].opt), tuple(profile["queries"].max)) == \
        ((1, 384), (784, 384), (6272, 384))
    assert engine.timing_cache_path == str(tmp_path / "t.cache")


def test_search_loaders_on_the_real_tensorrt_11_bindings():
    trt = _lean()
    network, config, _ = search_engine_loaders(trt, TrtApi(parse_version(trt.__version__)), b"onnx", 64,
                                               (1, 196, 196), workspace_mb=128)
    assert network.strongly_typed is True and (config.fp16, config.int8) == (False, False)
    assert config.memory_pool_limits == {trt.MemoryPoolType.WORKSPACE: 128 << 20}


def test_search_fingerprint_changes_with_bank_chunking_device_and_profile():
    base = make_search_fingerprint(ORIN, 384, (1, 784, 6272), SHA, 2560, "11" * 32)
    assert base.file.startswith("search.") and base.role == "search" and base.source_sha256 == SHA
    assert base.input_shape == (-1, 384) and base.batch_profile == (1, 784, 6272) and base.precision == "fp16"
    others = [make_search_fingerprint(ORIN, 384, (1, 784, 6272), "cd" * 32, 2560, "11" * 32),     # another bank
              make_search_fingerprint(ORIN, 384, (1, 784, 6272), SHA, 1280, "11" * 32),           # other chunks
              make_search_fingerprint(ORIN, 384, (1, 784, 6272), SHA, 2560, "22" * 32),           # other graph
              make_search_fingerprint(XAVIER, 384, (1, 784, 6272), SHA, 2560, "11" * 32),
              make_search_fingerprint(ORIN, 384, (1, 784, 784), SHA, 2560, "11" * 32)]
    assert len({fp.file for fp in others} | {base.file}) == len(others) + 1
    assert base == make_search_fingerprint(ORIN, 384, (1, 784, 6272), SHA, 2560, "11" * 32)


@pytest.fixture(scope="module")
def manifest(tiny_bundle):
    return read_manifest(tiny_bundle)


def _search_fp(tiny_bundle, manifest, device=ORIN, chunk=None):
    graph, dim, bank_sha, default_chunk = search_graph_for(tiny_bundle, manifest)
    return make_search_fingerprint(device, dim, query_profile(manifest, 1), bank_sha, chunk or default_chunk,
                                   hashlib.sha256(graph).hexdigest())


def test_search_graph_for_is_built_from_the_verified_bank(tiny_bundle, manifest):
    graph, dim, bank_sha, chunk = search_graph_for(tiny_bundle, manifest)
    assert bank_sha == manifest.files[manifest.memory_bank.file].sha256 and dim == manifest.memory_bank.dim
    assert chunk == manifest.memory_bank.entries                    # a small bank is one chunk
    assert query_profile(manifest, 8) == (1, int(np.prod(manifest.features.grid)),
                                          8 * int(np.prod(manifest.features.grid)))
    assert graph == search_graph_for(tiny_bundle, manifest)[0]      # deterministic: the same bank, the same graph


def _record(manifest, *fps):
    record = None
    for i, fp in enumerate(fps):
        record = with_engine(record, manifest, fp, FileEntry(sha256=f"{i:02d}" * 32, bytes=10 + i))
    return record


def test_a_record_with_a_search_engine_round_trips_and_an_old_one_still_parses(tiny_bundle, manifest):
    backbone = make_fingerprint(ORIN, "fp16", (1, 64, 64, 3), manifest.files["backbone.onnx"].sha256)
    search = _search_fp(tiny_bundle, manifest)
    record = _record(manifest, backbone, search)
    text = record.to_json()
    assert parse_engine_record(text.encode(), manifest) == record
    old = json.loads(text)
    del old["engines"][1]
    assert "role" not in old["engines"][0]["fingerprint"]          # backbone entries are written as they were
    parsed = parse_engine_record(json.dumps(old).encode(), manifest)
    assert parsed.engines[0].fingerprint.role == "backbone" and parsed.engines[0].fingerprint == backbone


def test_a_search_engine_of_another_bank_or_role_is_refused(tiny_bundle, manifest):
    stale = dataclasses.replace(_search_fp(tiny_bundle, manifest), source_sha256="ef" * 32)
    with pytest.raises(BundleError, match="another memory bank"):
        parse_engine_record(_record(manifest, stale).to_json().encode(), manifest)
    odd = dataclasses.replace(_search_fp(tiny_bundle, manifest), role="serch")
    with pytest.raises(BundleError, match="did you mean 'search'"):
        parse_engine_record(EngineRecord(1, manifest.model_id, (RecordedEngine(odd, SHA, 1),)).to_json().encode(),
                            manifest)


def test_search_engines_are_never_chosen_as_backbones(tiny_bundle, manifest):
    view = dataclasses.replace(manifest, engines=(_search_fp(tiny_bundle, manifest),))
    with pytest.raises(BundleError, match="no TensorRT engine for precision fp32"):
        runner.engine_for(view, "fp32", ORIN)
    assert search_engine_for(view, ORIN) == view.engines[0]
    with pytest.raises(EngineIncompatibleError, match="Xavier"):
        search_engine_for(view, XAVIER)


def _written(tiny_bundle, tmp_path, fp, data=b"not an engine"):
    import shutil

    bundle = tmp_path / "b"
    shutil.copytree(tiny_bundle, bundle)
    (bundle / fp.file).write_bytes(data)
    manifest = read_manifest(bundle)
    from tocoad_edge.bundle.engine_record import write_engine_record

    write_engine_record(bundle, with_engine(None, manifest, fp, FileEntry(
        sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))))
    return bundle, engine_view(bundle, manifest, strict=True)


def test_without_a_fitting_engine_graph_search_falls_back_or_is_refused(tiny_bundle, manifest, tmp_path,
                                                                        monkeypatch, caplog):
    """The device check runs before TensorRT is imported: an engine of another GPU falls back (auto) with the
    reason logged, and is an error with backend='tensorrt'; a bundle without a search engine falls back either way."""
    bank = np.load(tiny_bundle / manifest.memory_bank.file)
    bundle, view = _written(tiny_bundle, tmp_path, _search_fp(tiny_bundle, manifest, device=XAVIER))
    monkeypatch.setattr(runner, "current_device", lambda *a: ORIN)

    def must_not_import():
        raise AssertionError("TensorRT imported before the fingerprint check")

    monkeypatch.setattr(runner, "import_tensorrt", must_not_import)
    with caplog.at_level(logging.INFO, logger="tocoad_edge.runtime"):
        assert graph_search_on_tensorrt(bank, bundle, view, 1, strict=False) is None
    assert "ONNX Runtime" in caplog.text and "Xavier" in caplog.text
    with pytest.raises(EngineIncompatibleError, match="Xavier"):
        graph_search_on_tensorrt(bank, bundle, view, 1, strict=True)
    assert graph_search_on_tensorrt(bank, tiny_bundle, manifest, 1, strict=True) is None     # none recorded


def test_a_tampered_search_engine_is_refused_before_deserialising(tiny_bundle, manifest, tmp_path, monkeypatch):
    from tocoad_edge.runtime.backends.trt.search_runner import TensorRTGraphSearch

    fp = _search_fp(tiny_bundle, manifest)
    bundle, view = _written(tiny_bundle, tmp_path, fp)
    (bundle / fp.file).write_bytes(b"not an engine, tampered")
    bank = np.load(bundle / manifest.memory_bank.file)
    with pytest.raises(BundleError, match="wrong size|sha256"):
        TensorRTGraphSearch(bank, bundle, view, fp, ORIN)
