"""The camera-stream app with a ``sinks.mqtt`` section: a real bundle on a test pattern, verdicts at a real
Mosquitto with the bundle's model id and hash; a wrong key in the section is explained."""
from __future__ import annotations

import json

import pytest
import yaml

from fleet_helpers import broker, collector, poll, retained  # noqa: F401
from tocoad_edge.errors import ConfigError
from tocoad_edge.fleet.verdict import bundle_sha256
from tocoad_edge.stream.app import build_parser, main, resolve_config


def _config(tmp_path, bundle, port, **mqtt):
    cfg = {"source": {"uri": "testsrc://?width=64&height=64"},
           "detector": {"bundle": str(bundle), "search": "exact", "threads": 1},
           "sinks": {"mqtt": {"line": "line-2", "gateway": "gw-9", "spool": str(tmp_path / "spool.sqlite"),
                              "broker": {"port": port}, **mqtt}},
           "run": {"max_frames": 12, "log_every_s": 0.0}}
    path = tmp_path / "stream.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def test_stream_app_publishes_every_verdict(tmp_path, broker, collector, tiny_bundle, capsys):
    assert main(["--config", str(_config(tmp_path, tiny_bundle, broker.port))]) == 0
    report = json.loads(capsys.readouterr().out)
    verdicts = poll(collector.snapshot, lambda v: len(v) >= report["processed"])
    assert report["processed"] == 12 and [v["seq"] for v in verdicts] == list(range(1, 13))
    model = json.loads((tiny_bundle / "manifest.json").read_text())["model_id"]
    assert {(v["model_id"], v["bundle_sha256"]) for v in verdicts} == {(model, bundle_sha256(tiny_bundle))}
    assert retained(broker, "tocoad/line-2/gw-9/status")["state"] == "offline"    # clean stop says goodbye


def test_mqtt_section_is_read_strictly(tmp_path):
    path = _config(tmp_path, tmp_path, 1883, spool_max_mbb=5)
    with pytest.raises(ConfigError, match="unknown config key 'sinks.mqtt.spool_max_mbb'; did you mean "
                                          "'spool_max_mb'"):
        resolve_config(build_parser().parse_args(["--config", str(path)]))
    cfg = resolve_config(build_parser().parse_args(["--config", str(_config(tmp_path, tmp_path, 1883))]))
    assert cfg.sinks.mqtt.topics.verdict("cam0") == "tocoad/line-2/gw-9/cam0/verdict"
    assert cfg.sinks.mqtt.broker.port == 1883
