"""examples/camera_stream.py: --help documents every option, a YAML file replaces the flags (strictly)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from script_support import run_python
from tocoad_edge.errors import ConfigError
from tocoad_edge.stream.app import HELP, StreamAppConfig, build_parser, main, resolve_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "camera_stream.py"


def _all_keys():
    for section in dataclasses.fields(StreamAppConfig):
        if section.default_factory is dataclasses.MISSING:   # cameras: a list, YAML only
            yield None, section.name
            continue
        for f in dataclasses.fields(section.default_factory):
            yield section.name, f.name


def test_help_documents_every_option():
    out = run_python(str(EXAMPLE), "--help", timeout=60)
    assert out.returncode == 0
    for section, key in _all_keys():
        flag = "--source" if key == "uri" else "--" + key.replace("_", "-")
        if key == "mqtt":
            flag = f"{section}.{key} (YAML only)"     # a nested section: no flag, named in the help
        if section is None:
            flag = f"{key} (YAML only)"
        assert flag in out.stdout, flag
        assert HELP[key].split(" ")[0] in out.stdout
    for required in ("--bundle", "--source", "--save", "--jsonl", "--config", "--live-view", "--ng-dir"):
        assert required in out.stdout


def test_yaml_replaces_flags_and_flags_override_it(tmp_path):
    cfg_file = tmp_path / "line.yaml"
    cfg_file.write_text(yaml.safe_dump({
        "source": {"uri": "rtsp://10.0.0.5/stream", "reconnect_max_s": 5.0, "buffer_size": 2},
        "detector": {"bundle": "bundle/"},
        "sinks": {"jsonl": "results.jsonl", "live_view": "0.0.0.0:8080"},
        "run": {"duration_s": 60},
    }))
    cfg = resolve_config(build_parser().parse_args(["--config", str(cfg_file)]))
    assert cfg.source.uri == "rtsp://10.0.0.5/stream" and cfg.source.reconnect_max_s == 5.0
    assert cfg.sinks.live_view == "0.0.0.0:8080" and cfg.run.duration_s == 60.0
    cfg = resolve_config(build_parser().parse_args(["--config", str(cfg_file), "--source", "0", "--buffer-size", "4",
                                                    "--no-reconnect"]))
    assert cfg.source.uri == "0" and cfg.source.buffer_size == 4 and cfg.source.reconnect is False
    assert cfg.sinks.jsonl == "results.jsonl"
    flags_only = resolve_config(build_parser().parse_args(["--bundle", "b", "--source", "video.mp4", "--save",
                                                           "overlay.mp4", "--jsonl", "r.jsonl"]))
    assert (flags_only.detector.bundle, flags_only.source.uri, flags_only.sinks.save) == (Path("b"), "video.mp4",
                                                                                          "overlay.mp4")


@pytest.mark.parametrize("doc, words", [
    ({"source": {"urii": "0"}}, "did you mean 'uri'"),
    ({"sink": {}}, "did you mean 'sinks'"),
    ({"sinks": {"live_view": "8080"}}, "HOST:PORT"),
    ({"source": {"buffer_size": 0}}, "source.buffer_size"),
    ({"run": {"on_error": "ignore"}}, "run.on_error"),
])
def test_yaml_is_read_strictly(tmp_path, doc, words):
    cfg_file = tmp_path / "bad.yaml"
    cfg_file.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as err:
        resolve_config(build_parser().parse_args(["--config", str(cfg_file)]))
    assert words in str(err.value)


def test_print_config_and_clear_errors(tmp_path, capsys):
    assert main(["--source", "testsrc://", "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["source"]["uri"] == "testsrc://" and printed["detector"]["bundle"] is None
    assert main(["--source", "testsrc://", "--max-frames", "1"]) == 2
    assert "no bundle given" in capsys.readouterr().err
    assert main(["--bundle", str(tmp_path / "missing"), "--source", "testsrc://"]) == 2
    assert "error" in capsys.readouterr().err
    assert main(["--bundle", str(tmp_path / "missing"), "--source", str(tmp_path / "missing.mp4")]) == 2
    assert "does not exist" in capsys.readouterr().err     # the source is checked before the bundle loads


def test_stop_on_signals_sets_the_event_and_restores_the_handlers():
    import os
    import signal

    from tocoad_edge.shutdown import stop_on_signals

    before = signal.getsignal(signal.SIGTERM)
    with stop_on_signals() as stop:
        assert not stop.is_set()
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(2.0)
    assert signal.getsignal(signal.SIGTERM) is before
