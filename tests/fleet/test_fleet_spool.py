"""The store-and-forward spool on a real SQLite file: sequence numbers across reopen, in-order replay, prefix
acks, and the bounds (images dropped oldest first, verdicts only at the hard cap, counters)."""
from __future__ import annotations

import json

import pytest

from tocoad_edge.errors import ConfigError, ResourceError
from tocoad_edge.fleet.config import MqttSinkConfig, broker_from_url
from tocoad_edge.fleet.spool import Spool, SpoolLimits
from tocoad_edge.fleet.topics import GatewayTopics, command_topic
from tocoad_edge.fleet.verdict import Deduplicator


def _records(spool, limit=1000):
    return [(e.camera, e.seq, json.loads(e.payload)) for e in spool.peek(limit)]


def test_seq_per_camera_survives_reopen_and_replay_is_in_order(tmp_path):
    path = tmp_path / "s.sqlite"
    s = Spool(path)
    assert [s.put("a", {"n": 1}), s.put("b", {"n": 2}), s.put("a", {"n": 3})] == [1, 1, 2]
    s.ack([s.peek(1)[0].id])
    s.close()
    s = Spool(path)                                     # a restart: the queue and the counters are still there
    assert s.put("a", {"n": 4}) == 3
    assert [(c, q, r["n"]) for c, q, r in _records(s)] == [("b", 1, 2), ("a", 2, 3), ("a", 3, 4)]
    assert all(r["seq"] == q for _, q, r in _records(s))
    assert s.counters() == {"enqueued": 4, "acked": 1, "dropped_images": 0, "dropped_verdicts": 0, "queued": 3,
                            "queued_bytes": s.bytes}
    assert s.disk_bytes() > 0 and (tmp_path / "s.sqlite-wal").exists()    # WAL mode
    s.close()


def test_images_are_dropped_oldest_first_before_any_verdict(tmp_path):
    s = Spool(tmp_path / "s.sqlite", SpoolLimits(max_bytes=10_000))
    for i in range(5):
        s.put("cam", {"i": i}, image=bytes(3000))
    entries = s.peek()
    assert len(entries) == 5                                             # every verdict kept
    kept = [e.image is not None for e in entries]
    assert kept == [False, False, True, True, True]                      # the oldest images went
    dropped = json.loads(entries[0].payload)
    assert dropped["image"] is False and dropped["image_dropped"] is True
    assert s.counters()["dropped_images"] == 2 and s.bytes <= 10_000
    for _ in range(5, 8):                                                # verdicts alone may pass max_bytes
        s.put("cam", {"pad": "x" * 4000})
    assert len(s) == 8 and s.counters()["dropped_verdicts"] == 0 and s.counters()["dropped_images"] == 5
    s.close()


@pytest.mark.parametrize("on_full, kept_seqs, put_result", [("drop_oldest", [2, 3, 4], 4),
                                                              ("drop_newest", [1, 2, 3], None)])
def test_hard_cap(tmp_path, on_full, kept_seqs, put_result):
    s = Spool(tmp_path / "s.sqlite", SpoolLimits(max_verdicts=3, on_full=on_full))
    for i in range(3):
        s.put("cam", {"i": i})
    assert s.put("cam", {"i": 3}) == put_result
    assert [q for _, q, _ in _records(s)] == kept_seqs
    assert s.counters()["dropped_verdicts"] == 1
    s.close()


def test_deduplicator_keeps_each_seq_once_and_counts_gaps():
    d = Deduplicator()
    arrivals = [1, 2, 3, 2, 3, 4, 6, 5, 7]                # a replay after a reconnect, then a dropped verdict
    kept = [q for q in arrivals if d.accept("t", q)]
    assert kept == [1, 2, 3, 4, 6, 7] and d.duplicates == 3 and d.gaps == 1


def test_bad_configuration_is_explained(tmp_path):
    with pytest.raises(ConfigError, match="spool.max_verdicts"):
        SpoolLimits(max_verdicts=0)
    with pytest.raises(ConfigError, match="not a valid MQTT topic level") as info:
        GatewayTopics("tocoad", "line/3", "gw")
    assert "line/3" in info.value.got and info.value.fix
    with pytest.raises(ConfigError, match="line is not a valid MQTT topic level"):   # checked at config load too
        MqttSinkConfig(line="line/3", gateway="gw", spool="s.sqlite")
    with pytest.raises(ConfigError, match="LINE or LINE/GATEWAY"):
        command_topic("tocoad", "a/b/c")
    with pytest.raises(ConfigError, match="mqtt://HOST"):
        broker_from_url("http://broker:1883")
    with pytest.raises(ConfigError, match="needs its key"):
        broker_from_url("mqtts://broker", cert_file="c.pem")
    with pytest.raises(ConfigError, match="sinks.mqtt.window"):
        MqttSinkConfig(line="l", gateway="g", spool="s.sqlite", window=0)
    (tmp_path / "bad.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(ResourceError, match="cannot open the verdict spool"):
        Spool(tmp_path / "bad.sqlite")


def test_topic_tree_and_targets():
    t = GatewayTopics("tocoad", "line-3", "gw-2")
    assert (t.status, t.verdict("cam1"), t.image("cam1", 7)) == (
        "tocoad/line-3/gw-2/status", "tocoad/line-3/gw-2/cam1/verdict", "tocoad/line-3/gw-2/cam1/image/7")
    assert command_topic("tocoad", "line-3/*") == "tocoad/cmd/line-3/*"
    assert command_topic("tocoad", "line-3") == "tocoad/cmd/line-3/*"
    assert t.targets("tocoad/cmd/line-3/*") and t.targets("tocoad/cmd/line-*/gw-2")
    assert not t.targets("tocoad/cmd/line-4/*") and not t.targets("tocoad/cmd/line-3/gw-1")
    assert not t.targets("other/cmd/line-3/*")
