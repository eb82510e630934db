"""``tocoad-stream --config`` with a ``cameras:`` list: two bundles (two cameras share one), JSON lines and a real
Mosquitto carrying each camera's id and its own seq; the config mistakes a multi-camera file can hold."""
from __future__ import annotations

import json

import pytest
import yaml

from fleet_helpers import broker, collector, poll  # noqa: F401
from stream_support import write_video
from tocoad_edge.errors import ConfigError
from tocoad_edge.stream.app import build_parser, main, resolve_config


def _write(tmp_path, cfg: dict):
    path = tmp_path / "cameras.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def test_cameras_list_runs_through_tocoad_stream(tmp_path, broker, collector, tiny_bundle, capsys):
    videos = [write_video(tmp_path / f"v{i}.avi", 6 + i, size=(64, 64)) for i in range(3)]
    exact = {"bundle": str(tiny_bundle), "search": "exact", "threads": 1}
    cfg = {"detector": exact,
           "cameras": [{"id": "cam-a", "source": {"uri": str(videos[0])}},
                       {"id": "cam-b", "source": {"uri": str(videos[1])}},
                       # the same bundle opened another way: its own detector
                       {"id": "cam-c", "source": {"uri": str(videos[2])}, "detector": {**exact, "search": "hnsw"}}],
           "sinks": {"jsonl": str(tmp_path / "results.jsonl"),
                     "mqtt": {"line": "line-4", "gateway": "gw-1", "spool": str(tmp_path / "spool.sqlite"),
                              "broker": {"port": broker.port}}},
           "run": {"log_every_s": 0}}
    assert main(["--config", str(_write(tmp_path, cfg))]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["end_reason"] == "end_of_stream" and report["accounted"] is True
    assert {k: (v["captured"], v["processed"], v["dropped"]) for k, v in report["cameras"].items()} == {
        "cam-a": (6, 6, 0), "cam-b": (7, 7, 0), "cam-c": (8, 8, 0)}
    assert report["processed"] == 21 and report["fps_total"] > 0
    lines = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    for cam, n in (("cam-a", 6), ("cam-b", 7), ("cam-c", 8)):
        assert [r["frame_id"] for r in lines if r["camera"] == cam] == list(range(n))
    verdicts = poll(collector.snapshot, lambda v: len(v) >= 21)
    by_topic: dict[str, list[int]] = {}
    for v in verdicts:
        by_topic.setdefault(v["_topic"], []).append(v["seq"])
        assert v["_topic"] == f"tocoad/line-4/gw-1/{v['camera']}/verdict"
    assert by_topic == {"tocoad/line-4/gw-1/cam-a/verdict": list(range(1, 7)),
                        "tocoad/line-4/gw-1/cam-b/verdict": list(range(1, 8)),
                        "tocoad/line-4/gw-1/cam-c/verdict": list(range(1, 9))}


@pytest.mark.parametrize("change, args, message", [
    ({"source": {"uri": "testsrc://"}}, [], "either cameras: .* or source:"),
    ({}, ["--source", "testsrc://"], "either cameras: .* or source:"),
    ({"cameras": [{"id": "a"}, {"id": "a"}]}, [], "camera ids must be unique.*got: a"),
    ({"cameras": [{"id": "cam/1"}]}, [], "cameras\\[\\].id is not a valid MQTT topic level"),
    ({"cameras": [{"id": "a", "sorce": {}}]}, [], "unknown config key 'cameras\\[0\\].sorce'; did you mean 'source'"),
    ({"sinks": {"live_view": "127.0.0.1:8080"}}, [], "sinks.live_view shows one camera's pictures"),
    ({"run": {"pipelined": True}}, [], "run.pipelined"),
], ids=["source-too", "source-flag", "same-id", "bad-id", "typo", "live-view", "pipelined"])
def test_camera_config_mistakes_are_explained(tmp_path, change, args, message):
    cfg = {"cameras": [{"id": "a", "source": {"uri": "testsrc://"}}], **change}
    with pytest.raises(ConfigError, match=message):
        resolve_config(build_parser().parse_args(["--config", str(_write(tmp_path, cfg)), *args]))
