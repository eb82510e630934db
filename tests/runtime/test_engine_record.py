"""Signed bundles that survive the engine build: ``tocoad-export engine`` records the engine in ``engines.json``
(signed with a device key into ``engines.sig``) and leaves ``manifest.json`` alone, so ``Detector.open(public_key=)``
still verifies the bundle and the engine is still fingerprint- and hash-checked. The TensorRT build and load need a
GPU: a stand-in builder writes fixed bytes, and the device is given, so the tests reach the point where the engine
is chosen and its bytes are hash-checked (TensorRT itself is not installed here)."""
from __future__ import annotations

import dataclasses
import json
import logging
import shutil

import numpy as np
import pytest

from tocoad_edge.bundle.engine_record import (ENGINE_RECORD_NAME, ENGINE_SIGNATURE_NAME, engine_view,
                                              parse_engine_record, read_verified_engine)
from tocoad_edge.bundle.manifest import read_manifest
from tocoad_edge.bundle.signature import generate_key_pair, read_signed_manifest, sign_bundle
from tocoad_edge.errors import BackendUnavailableError, BundleError
from tocoad_edge.runtime import Detector
from tocoad_edge.runtime.backends.trt import build as trt_build
from tocoad_edge.runtime.backends.trt import runner
from tocoad_edge.runtime.backends.trt import search_engine as trt_search_engine
from tocoad_edge.runtime.backends.trt.fingerprint import DeviceInfo

ORIN = DeviceInfo("10.3.0", "Orin", "8.7")
ENGINE_BYTES = b"stand-in engine bytes " * 64
SEARCH_ENGINE_BYTES = b"stand-in search engine bytes " * 64


@pytest.fixture(scope="module")
def keys():
    return {"bundle": generate_key_pair(), "device": generate_key_pair(), "other": generate_key_pair()}


@pytest.fixture
def vendor_signed(tiny_bundle, tmp_path, keys, monkeypatch):
    """A copy of the tiny bundle, signed by the vendor's key; engines are built by a stand-in builder."""
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    sign_bundle(bundle, keys["bundle"][0])
    monkeypatch.setattr(trt_build, "build_engine", lambda *a, **k: ENGINE_BYTES)
    monkeypatch.setattr(trt_search_engine, "build_search_engine", lambda *a, **k: SEARCH_ENGINE_BYTES)
    monkeypatch.setenv("TOCOAD_TRT_TIMING_CACHE", str(tmp_path / "timing"))
    return bundle


@pytest.fixture
def signed(vendor_signed, monkeypatch):
    """The same, on a device that is an Orin with TensorRT 10.3 (the engine's fingerprint fits it)."""
    monkeypatch.setattr(runner, "current_device", lambda *a: ORIN)
    return vendor_signed


def _build(bundle, keys, key="device", precision="fp16"):
    return trt_build.build_engine_into_bundle(bundle, precision, device=ORIN,
                                              device_key=keys[key][0] if key else None)


def read_view(bundle, keys):
    return engine_view(bundle, read_manifest(bundle), bundle_key=keys["bundle"][1], engine_key=keys["device"][1],
                       strict=True)


def test_engine_build_keeps_the_manifest_and_its_signature(signed, keys):
    manifest_bytes = (signed / "manifest.json").read_bytes()
    path = _build(signed, keys)
    assert (signed / "manifest.json").read_bytes() == manifest_bytes       # never rewritten
    manifest = read_signed_manifest(signed, keys["bundle"][1])             # the vendor's signature still verifies
    assert manifest.engines == ()
    record = json.loads((signed / ENGINE_RECORD_NAME).read_text())
    entry, search = record["engines"]                                      # the backbone, then the bank's search
    assert entry["fingerprint"]["file"] == path.name and entry["bytes"] == len(ENGINE_BYTES)
    assert entry["fingerprint"]["onnx_sha256"] == manifest.files["backbone.onnx"].sha256
    assert "role" not in entry["fingerprint"]                # a backbone is written as before search engines existed
    assert search["fingerprint"]["role"] == "search" and search["bytes"] == len(SEARCH_ENGINE_BYTES)
    assert search["fingerprint"]["source_sha256"] == manifest.files[manifest.memory_bank.file].sha256
    assert search["fingerprint"]["file"].startswith("search.")
    assert (signed / ENGINE_SIGNATURE_NAME).is_file() and not list(signed.glob(".*tmp*"))

    view = engine_view(signed, manifest, bundle_key=keys["bundle"][1], engine_key=keys["device"][1], strict=True)
    fp = runner.engine_for(view, "fp32", ORIN)
    assert fp.file == path.name and fp.precision == "fp16" and fp.input_shape == (1, 64, 64, 3)
    assert read_verified_engine(signed, view, fp.file) == ENGINE_BYTES     # size + sha256 from the record

    _build(signed, keys)                                                   # a rebuild replaces, not duplicates
    files = [e["fingerprint"]["file"] for e in json.loads((signed / ENGINE_RECORD_NAME).read_text())["engines"]]
    assert files == [path.name, search["fingerprint"]["file"]]


def test_detector_opens_the_signed_bundle_with_its_device_engine(signed, keys):
    """backend='tensorrt' gets past the bundle signature, the engine record's signature, the fingerprint and the
    engine's sha256, and stops only where TensorRT itself is needed. The ONNX model still serves (auto, no GPU)."""
    _build(signed, keys)
    with pytest.raises(BackendUnavailableError) as info:
        Detector.open(signed, backend="tensorrt", public_key=keys["bundle"][1], engine_public_key=keys["device"][1])
    assert "TensorRT" in str(info.value) or "pycuda" in str(info.value)
    (signed / read_view(signed, keys).engines[0].file).write_bytes(ENGINE_BYTES[:-1] + b"!")   # same size, 1 byte
    with pytest.raises(BundleError, match="sha256"):
        Detector.open(signed, backend="tensorrt", public_key=keys["bundle"][1], engine_public_key=keys["device"][1])


def test_auto_serves_with_onnxrt_when_no_tensorrt_here(vendor_signed, keys):
    bundle = vendor_signed
    _build(bundle, keys)
    with Detector.open(bundle, public_key=keys["bundle"][1], engine_public_key=keys["device"][1],
                       search="exact") as det:
        assert det.backend.name == "onnxrt" and det.manifest.engines == ()
        pred = det.predict(np.zeros((64, 64, 3), np.uint8))
    assert np.isfinite(pred.score)


@pytest.mark.parametrize("case", ["other key", "record edited", "no engine key", "signature removed"])
def test_an_untrusted_engine_record_is_refused_or_skipped(signed, keys, case, caplog):
    """backend='tensorrt' refuses (BundleError saying why and the fix); 'auto' leaves the engines out, logs why,
    and serves with ONNX Runtime."""
    engine_key = keys["device"][1]
    if case == "other key":
        _build(signed, keys, key="other")
    else:
        _build(signed, keys)
    if case == "record edited":          # e.g. an engine of the attacker's added without the device key
        rec = json.loads((signed / ENGINE_RECORD_NAME).read_text())
        rec["engines"][0]["bytes"] += 1
        (signed / ENGINE_RECORD_NAME).write_text(json.dumps(rec))
    if case == "no engine key":
        engine_key = None
    if case == "signature removed":
        (signed / ENGINE_SIGNATURE_NAME).unlink()
    want = {"other key": "signed by another key", "record edited": "changed after signing",
            "no engine key": "engine_public_key", "signature removed": "not signed"}[case]
    with pytest.raises(BundleError, match=want) as info:
        Detector.open(signed, backend="tensorrt", public_key=keys["bundle"][1], engine_public_key=engine_key)
    assert info.value.fix
    with caplog.at_level(logging.WARNING, logger="tocoad_edge.bundle"):
        view = engine_view(signed, read_manifest(signed), bundle_key=keys["bundle"][1], engine_key=engine_key)
    assert view.engines == () and any(want in r.getMessage() for r in caplog.records)
    with Detector.open(signed, public_key=keys["bundle"][1], engine_public_key=engine_key, search="exact") as det:
        assert det.backend.name == "onnxrt"


def test_without_keys_the_record_is_taken_on_its_hashes(signed, keys):
    _build(signed, keys, key=None)
    assert not (signed / ENGINE_SIGNATURE_NAME).exists()
    view = engine_view(signed, read_manifest(signed), strict=True)
    fp = runner.engine_for(view, "fp32", ORIN)
    assert read_verified_engine(signed, view, fp.file) == ENGINE_BYTES
    (signed / fp.file).write_bytes(ENGINE_BYTES[: len(ENGINE_BYTES) // 2])
    with pytest.raises(BundleError, match="wrong size"):
        read_verified_engine(signed, view, fp.file)


def test_a_record_must_belong_to_the_bundle(signed, keys):
    _build(signed, keys, key=None)
    manifest = read_manifest(signed)
    good = json.loads((signed / ENGINE_RECORD_NAME).read_text())

    def refused(mutate, match):
        rec = json.loads(json.dumps(good))
        mutate(rec)
        with pytest.raises(BundleError, match=match) as info:
            parse_engine_record(json.dumps(rec).encode(), manifest)
        assert info.value.fix and "tocoad-export engine" in info.value.fix

    refused(lambda r: r["engines"][0]["fingerprint"].update(onnx_sha256="cd" * 32), "ONNX model this bundle does not")
    refused(lambda r: r.update(model_id="another-model"), "another model")
    refused(lambda r: r["engines"][0]["fingerprint"].update(file="coreset.npy"), "not a free engine name")
    refused(lambda r: r["engines"].append(r["engines"][0]), "not a free engine name")
    refused(lambda r: r.update(schema_version=2), "unsupported schema version")
    refused(lambda r: r["engines"][0].update(sha=1), "engine record schema")
    other = dataclasses.replace(manifest, model_id="x")
    with pytest.raises(BundleError, match="another model"):
        parse_engine_record((signed / ENGINE_RECORD_NAME).read_bytes(), other)


def test_cli_device_key_signs_the_engine_record(signed, keys, tmp_path, capsys):
    """``tocoad-export engine BUNDLE --device-key KEY.pem``: the flag the docs and errors name exists and signs."""
    from tocoad_edge.bundle.engine_record import read_engine_record
    from tocoad_edge.export.cli import main

    key_file = tmp_path / "device.key.pem"
    key_file.write_bytes(keys["device"][0])
    assert main(["engine", str(signed), "--precision", "fp16", "--device-key", str(key_file)]) == 0
    assert "engine written:" in capsys.readouterr().out
    record = read_engine_record(signed, read_manifest(signed), keys["device"][1])     # verifies engines.sig
    assert [(e.fingerprint.precision, e.fingerprint.role) for e in record.engines] == [("fp16", "backbone"),
                                                                                       ("fp16", "search")]
    with pytest.raises(BundleError, match="signed by another key"):
        read_engine_record(signed, read_manifest(signed), keys["other"][1])
