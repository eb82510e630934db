"""DetectorOptions: one type for Detector.from_options, the stream app and the PLC config; bad values name the
key, what was expected and what was got."""
from __future__ import annotations

from pathlib import Path

import pytest

from tocoad_edge.errors import ConfigError
from tocoad_edge.runtime import Detector, DetectorOptions
from tocoad_edge.typed_config import from_dict


@pytest.mark.parametrize("kwargs, key, expected, got", [
    ({"precision": "fp16"}, "detector.precision", "one of ['fp32', 'int8']", "'fp16'"),
    ({"search": "hnsww"}, "detector.search", "one of ['auto', 'hnsw', 'exact', 'refined', 'graph']", "'hnsww'"),
    ({"threads": 0}, "detector.threads", "an integer >= 1", "0"),
    ({"threads": True}, "detector.threads", "an integer >= 1", "True"),
    ({"backend": " "}, "detector.backend", "a backend name", "' '"),
    ({"bundle": 3}, "detector.bundle", "a bundle folder path", "3"),
    ({"public_key": 42}, "detector.public_key", "a PEM file path, PEM text or PEM bytes", "'int'"),
])
def test_bad_values_name_the_key_the_expectation_and_the_value(kwargs, key, expected, got):
    with pytest.raises(ConfigError) as err:
        DetectorOptions(**kwargs)
    e = err.value
    assert key in e.message and expected in e.expected and e.got == got and key in e.fix


def test_defaults_and_normalised_bundle():
    opts = DetectorOptions(bundle="bundles/tile", threads=2, public_key=b"-----BEGIN PUBLIC KEY-----")
    assert opts.bundle == Path("bundles/tile")          # a str becomes a Path, so both apps see one type
    assert (opts.backend, opts.precision, opts.search) == ("auto", "fp32", "auto")
    assert DetectorOptions().bundle is None


def test_yaml_section_loads_strictly_with_did_you_mean():
    opts = from_dict(DetectorOptions, {"bundle": "b", "search": "exact", "threads": 1,
                                       "public_key": "-----BEGIN PUBLIC KEY-----\nabc\n"}, "detector")
    assert opts.public_key.startswith("-----BEGIN")      # PEM text stays text (not a Path)
    with pytest.raises(ConfigError, match="unknown config key 'detector.serach'; did you mean 'search'"):
        from_dict(DetectorOptions, {"serach": "exact"}, "detector")
    with pytest.raises(ConfigError, match="detector.precision"):
        from_dict(DetectorOptions, {"precision": "fp16"}, "detector")


def test_from_options_without_a_bundle_or_with_the_wrong_type_says_so():
    with pytest.raises(ConfigError, match="no bundle given") as err:
        Detector.from_options(DetectorOptions())
    assert "detector.bundle" in err.value.fix
    with pytest.raises(ConfigError, match="takes a DetectorOptions") as err:
        Detector.from_options({"bundle": "b"})
    assert err.value.got == "dict"


def test_from_options_and_open_give_the_same_detector(tiny_bundle, sample_dataset):
    from tocoad_edge.data import read_image

    image = read_image(sorted((sample_dataset / "test" / "good").iterdir())[0])
    with Detector.open(tiny_bundle, search="exact", threads=1) as a, \
            Detector.from_options(DetectorOptions(bundle=tiny_bundle, search="exact", threads=1)) as b:
        assert a.describe() == b.describe()
        assert a.predict(image).raw_score == b.predict(image).raw_score


OLD_STREAM_YAML = """
source: {uri: "rtsp://10.0.0.5/stream"}
detector: {bundle: bundles/tile, backend: onnxrt, precision: int8, search: refined, threads: 2}
"""


def test_stream_app_yaml_written_before_keeps_loading_into_detector_options(tmp_path):
    from tocoad_edge.stream.app import build_parser, resolve_config

    cfg_file = tmp_path / "line.yaml"
    cfg_file.write_text(OLD_STREAM_YAML)
    cfg = resolve_config(build_parser().parse_args(["--config", str(cfg_file)]))
    assert cfg.detector == DetectorOptions(bundle="bundles/tile", backend="onnxrt", precision="int8",
                                           search="refined", threads=2)
    cfg = resolve_config(build_parser().parse_args(["--config", str(cfg_file), "--public-key", "trusted.pub.pem",
                                                    "--bundle", "bundles/other"]))
    assert (cfg.detector.bundle, cfg.detector.public_key) == (Path("bundles/other"), "trusted.pub.pem")


def test_plc_yaml_written_before_keeps_loading_and_gains_the_runtime_keys(tmp_path):
    from tocoad_edge.plc import load_gateway_config

    shipped = load_gateway_config(Path(__file__).resolve().parents[2] / "examples" / "plc_gateway.yaml")
    assert shipped.detector == DetectorOptions(bundle="bundle/", backend="auto", precision="fp32")
    cfg_file = tmp_path / "gateway.yaml"
    cfg_file.write_text("source: {uri: simulated}\n"
                        "detector: {bundle: b, search: exact, threads: 1, public_key: keys/line.pub.pem}\n")
    cfg = load_gateway_config(cfg_file)
    assert cfg.detector == DetectorOptions(bundle="b", search="exact", threads=1, public_key="keys/line.pub.pem")
    cfg_file.write_text("source: {uri: simulated}\ndetector: {bundle: b, threads: 0}\n")
    with pytest.raises(ConfigError, match="'detector.threads'") as err:
        load_gateway_config(cfg_file)
    assert err.value.got == "0"
