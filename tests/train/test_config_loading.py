import math

import pytest

from tocoad_edge.train.config import TrainConfig, load_train_config
from tocoad_edge.errors import ConfigError


def write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_defaults_without_file():
    cfg = load_train_config(None)
    assert cfg == TrainConfig()
    assert cfg.backbone.name == "efficientnet_lite0"
    assert cfg.memory.coreset_ratio == 0.1


def test_partial_file_merges_over_defaults(tmp_path):
    cfg = load_train_config(write(tmp_path, "seed: 3\nmemory: {coreset_ratio: 0.25}\n"))
    assert cfg.seed == 3 and cfg.memory.coreset_ratio == 0.25
    assert cfg.data.image_size == 224


def test_unknown_key_has_did_you_mean(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_train_config(write(tmp_path, "memory: {coreset_ration: 0.2}\n"))
    assert "memory.coreset_ration" in str(e.value) and "coreset_ratio" in str(e.value)


@pytest.mark.parametrize("text,key", [
    ("memory: {coreset_ratio: .nan}\n", "memory.coreset_ratio"),
    ("memory: {coreset_ratio: -0.1}\n", "memory.coreset_ratio"),
    ("data: {image_size: 100}\n", "data.image_size"),
    ("data: {image_size: '224'}\n", "data.image_size"),
    ("stages: fulll\n", "stages"),
    ("scoring: {gaussian_sigma: -1}\n", "scoring.gaussian_sigma"),
])
def test_bad_values_name_the_key(tmp_path, text, key):
    with pytest.raises(ConfigError) as e:
        load_train_config(write(tmp_path, text))
    assert key in str(e.value)


def test_yaml_python_tags_are_refused(tmp_path, tmp_path_factory):
    sentinel = tmp_path / "pwned"
    text = f"seed: !!python/object/apply:os.system ['touch {sentinel}']\n"
    with pytest.raises(ConfigError):
        load_train_config(write(tmp_path, text))
    assert not sentinel.exists()


def test_section_must_be_mapping(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_train_config(write(tmp_path, "memory: 3\n"))
    assert "memory" in str(e.value)


def test_missing_file_is_config_error(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_train_config(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(e.value)
    assert not math.isnan(0.0)


def test_tiling_config_reads_checks_and_becomes_the_manifest_spec(tmp_path):
    from tocoad_edge.bundle.manifest import TilingSpec

    cfg = load_train_config(write(tmp_path, "data: {tiling: {enabled: true, overlap: 0.5, scale: 0.5}}\n"))
    assert cfg.data.tiling.spec() == TilingSpec(overlap=0.5, scale=0.5)
    assert load_train_config(None).data.tiling.spec() is None          # off by default: frames are resized
    with pytest.raises(ConfigError, match="data.tiling.overlap"):
        load_train_config(write(tmp_path, "data: {tiling: {enabled: true, overlap: 0.8}}\n"))
    with pytest.raises(ConfigError, match="data.tiling.scale"):
        load_train_config(write(tmp_path, "data: {tiling: {scale: 0}}\n"))
    with pytest.raises(ConfigError) as e:
        load_train_config(write(tmp_path, "data: {tiling: {overlapp: 0.2}}\n"))
    assert "data.tiling.overlapp" in str(e.value) and "overlap" in str(e.value)
