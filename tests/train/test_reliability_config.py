"""Item 6: a hostile or wrong config — YAML tags, unknown keys, NaN, negative values, wrong types, missing fields —
is a ConfigError naming the key; nothing runs, nothing is written, the serving model is untouched."""
from __future__ import annotations

import json

import pytest

from reliability_fixtures import (assert_no_partial_files, bundle_copy, golden_fingerprint, rel_bundle,  # noqa: F401
                                  serving, tree)
from tocoad_edge.train.config import load_train_config
from tocoad_edge.errors import BundleError, ConfigError

SENTINEL = "SENTINEL_PATH"

CASES = [
    # (yaml text, regex the message must match)
    (f"seed: !!python/object/apply:os.system ['touch {SENTINEL}']", "tags and Python objects are refused"),
    (f"data: !!python/object/apply:pathlib.Path.touch ['{SENTINEL}']", "tags and Python objects are refused"),
    ("seed: !!python/name:os.system", "tags and Python objects are refused"),
    ("memroy: {coreset_ratio: 0.1}", r"unknown config key 'memroy'; did you mean 'memory'\?"),
    ("memory: {coreset_ration: 0.1}", r"unknown config key 'memory.coreset_ration'; did you mean 'coreset_ratio'\?"),
    ("scoring: {gaussian_sigma: .nan}", r"'scoring.gaussian_sigma' must be a finite number"),
    ("scoring: {threshold_margin: .inf}", r"'scoring.threshold_margin' must be a finite number"),
    ("scoring: {gaussian_sigma: -1.0}", r"'scoring.gaussian_sigma' is out of range"),
    ("data: {image_size: -64}", r"'data.image_size' is out of range"),
    ("memory: {coreset_ratio: 0}", r"'memory.coreset_ratio' is out of range"),
    ("data: {image_size: big}", r"'data.image_size' must be an integer"),
    ("data: {image_size: 64.0}", r"'data.image_size' must be an integer"),
    ("seed: true", r"'seed' must be an integer"),
    ("stages: fulll", r"'stages' has an unsupported value.*did you mean 'full'"),
    ("backbone: {layers: []}", r"'backbone.layers' is out of range"),
    ("- just\n- a list", r"'TrainConfig' must be a mapping"),
    ("data: [1, 2]", r"'data' must be a mapping"),
    ("seed: [unclosed", "not valid plain YAML"),
]


@pytest.mark.parametrize("text,match", CASES, ids=[c[1][:30] for c in CASES])
def test_hostile_or_wrong_config(text, match, tmp_path, serving):
    before = golden_fingerprint(serving)
    sentinel = tmp_path / "pwned"
    path = tmp_path / "config.yaml"
    path.write_text(text.replace(SENTINEL, str(sentinel)), encoding="utf-8")
    listing = {tmp_path: tree(tmp_path)}
    with pytest.raises(ConfigError, match=match) as info:
        load_train_config(path)
    assert not sentinel.exists(), "a YAML tag ran code"
    assert info.value.expected or info.value.got or info.value.fix
    assert_no_partial_files(tmp_path, before=listing)
    assert golden_fingerprint(serving) == before


def test_unreadable_config_files(tmp_path):
    (tmp_path / "latin1.yaml").write_bytes("seed: 1 # caf\xe9".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_train_config(tmp_path / "latin1.yaml")
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_train_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_train_config(tmp_path)                     # a folder


def test_missing_fields_name_the_key():
    from tocoad_edge.bundle.manifest import IndexSpec
    from tocoad_edge.typed_config import from_dict

    with pytest.raises(ConfigError, match="missing config key 'memory_bank.index.file'"):
        from_dict(IndexSpec, {"M": 16}, "memory_bank.index")


@pytest.mark.parametrize("mutate,match", [
    (lambda d: d.pop("model_id"), "missing config key 'model_id'"),
    (lambda d: d["scoring"].update(image_threshold=float("nan")), "'scoring.image_threshold' must be a finite"),
    (lambda d: d["input"].update(hieght=64), "unknown config key 'input.hieght'; did you mean 'height'"),
    (lambda d: d["memory_bank"].update(entries="205"), "'memory_bank.entries' must be an integer"),
], ids=["missing", "nan", "typo", "type"])
def test_wrong_manifest_fields_name_the_key(mutate, match, bundle_copy, serving):
    before = golden_fingerprint(serving)
    path = bundle_copy / "manifest.json"
    data = json.loads(path.read_text())
    mutate(data)
    path.write_text(json.dumps(data, allow_nan=True))
    with pytest.raises(BundleError, match=match):
        serving.swap(bundle_copy)
    assert golden_fingerprint(serving) == before


def test_wrong_runtime_options(bundle_copy, serving):
    from tocoad_edge.runtime import Detector

    before = golden_fingerprint(serving)
    with pytest.raises(ConfigError, match="'detector.precision'.*got: 'fp16'"):
        Detector.open(bundle_copy, precision="fp16")
    with pytest.raises(ConfigError, match="'detector.search'.*got: 'hnsww'"):
        Detector.open(bundle_copy, search="hnsww")
    with pytest.raises(ConfigError, match="unknown backend 'onnxruntime'; did you mean 'onnxrt'"):
        serving.swap(bundle_copy, backend="onnxruntime")
    assert golden_fingerprint(serving) == before
