"""REVIEW end to end: a real bundle with a review band written by ``write_decision`` so that three known frames fall
in OK, REVIEW and NG, driven through ``predict``, the stream (JSON lines, overlays, NG-frame saver, live view, the
MQTT verdict record), a real Modbus TCP client (map version 2, and 1 unchanged) and a real OPC UA client; and a new
decision taken by a serving gateway on SIGHUP."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import time
import urllib.request

import cv2
import numpy as np
import pytest

from tocoad_edge.bundle.decision import write_decision
from tocoad_edge.data import load_dataset, read_image
from tocoad_edge.decision_reload import reload_decision_on_sighup
from tocoad_edge.fleet.verdict import verdict_record
from tocoad_edge.plc import (Gateway, HandshakeConfig, ModbusConfig, ModbusServer, OpcUaConfig, OpcUaSecurityConfig,
                             OpcUaServer, Result, bundle_hash)
from tocoad_edge.plc import modbus_map as M
from tocoad_edge.plc.cycle_check import modbus_cycles, opcua_cycles
from tocoad_edge.runtime import Detector
from tocoad_edge.runtime.hot_swap import HotSwapDetector
from tocoad_edge.stream import Frame, ReadResult, ReadStatus, open_source, run_stream
from tocoad_edge.stream.overlay import NG_COLOUR, REVIEW_COLOUR
from tocoad_edge.stream.sinks import JsonLinesSink, LiveViewSink, NgFrameSaver, Sink

EXPECTED = ["OK", "REVIEW", "NG"]          # frame i of FRAMES (and frame id i mod 3 at the PLC)


@pytest.fixture(scope="module")
def banded(tmp_path_factory, tiny_bundle, sample_dataset):
    """(bundle, frames): the lowest-, a middle- and the highest-scoring test image, and thresholds half way
    between their raw scores, so that they are OK, REVIEW and NG."""
    bundle = shutil.copytree(tiny_bundle, tmp_path_factory.mktemp("review") / "bundle")
    images = [read_image(t.path) for t in load_dataset(sample_dataset, require_train=False, require_test=True).test]
    with Detector.open(bundle, search="exact") as det:
        raw = np.array([det.predict(img).raw_score for img in images])
    order = np.argsort(raw)
    low, mid, high = order[0], order[len(order) // 2], order[-1]
    review_t, ng_t = (raw[low] + raw[mid]) / 2, (raw[mid] + raw[high]) / 2
    write_decision(bundle, float(ng_t), float(review_t), {"policy": "manual", "why": "review e2e test"})
    return bundle, [images[low], images[mid], images[high]]


class Frames:
    """A camera serving the frames in turn, each with its running number as frame id (capture time: now)."""

    def __init__(self, images):
        self.images, self.next_id = images, 0

    def read(self, timeout: float) -> ReadResult:
        i, self.next_id = self.next_id, self.next_id + 1
        return ReadResult(ReadStatus.OK, Frame(i, time.time(), time.monotonic(), self.images[i % len(self.images)]))


def _gateway(detector, frames) -> Gateway:
    # probes every 5 s only: cycles take consecutive frames, and the checks below still go by frame id
    return Gateway(Frames(frames), detector, HandshakeConfig(deadline_s=5.0, probe_interval_s=5.0))


def test_predict_gives_ok_review_ng(banded):
    bundle, frames = banded
    with Detector.open(bundle, search="exact") as det:
        preds = [det.predict(f) for f in frames]
    assert [p.decision for p in preds] == EXPECTED
    assert [p.is_review for p in preds] == [False, True, False]
    assert preds[1].score < 1.0 < preds[2].score             # REVIEW lies below the NG threshold (score 1.0)


class Collect(Sink):
    """Keeps what the sinks see (to build the MQTT verdict record from the same results) and, at the last frame,
    reads the live view over HTTP while it still serves (run_stream closes every sink at the end)."""

    def __init__(self, live: LiveViewSink, last: int):
        self.live, self.last = live, last
        self.results, self.stats, self.page = [], None, ""

    def write(self, result) -> None:
        self.results.append(result)
        if result.frame.id == self.last:
            with urllib.request.urlopen(self.live.url + "stats.json", timeout=10) as reply:
                self.stats = json.loads(reply.read())
            with urllib.request.urlopen(self.live.url, timeout=10) as reply:
                self.page = reply.read().decode()


def test_review_flows_through_the_stream(banded, tmp_path):
    bundle, frames = banded
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:03d}.png"), f)                   # lossless: the same pixels as predict saw
    live = LiveViewSink(host="127.0.0.1", port=0, max_fps=0)
    collect = Collect(live, last=len(frames) - 1)
    sinks = [JsonLinesSink(tmp_path / "results.jsonl"), NgFrameSaver(tmp_path / "saved"), live, collect]
    with Detector.open(bundle, search="exact") as det:
        report = run_stream(det, open_source(str(folder)), sinks, log_every_s=None)     # closes the sinks
    stats, page = collect.stats, collect.page
    lines = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [r["decision"] for r in lines] == EXPECTED
    assert (report.stats.ng, report.stats.review, report.stats.processed) == (1, 1, 3)
    # live view: the REVIEW count and each frame's verdict in the trend; the page shows the count
    assert stats["review"] == 1 and stats["ng"] == 1 and [s[2] for s in stats["scores"]] == EXPECTED
    assert 'id="review"' in page
    # the saver keeps NG and REVIEW frames, each record saying which
    saved = sorted(json.loads(p.read_text())["decision"] for p in (tmp_path / "saved").glob("*.json"))
    assert saved == ["NG", "REVIEW"]
    # overlays: REVIEW in amber, NG in red (the border colour, read back from the saved JPEGs)
    for p in (tmp_path / "saved").glob("*.json"):
        overlay = cv2.imread(str(p.with_name(p.name[:-5] + "_overlay.jpg")))
        corner = overlay[overlay.shape[0] // 2, 0].astype(int)
        colour = REVIEW_COLOUR if json.loads(p.read_text())["decision"] == "REVIEW" else NG_COLOUR
        assert np.abs(corner - np.array(colour)).max() < 40
    # the MQTT verdict carries the decision
    records = [verdict_record(r, "cam1", "m", "sha") for r in collect.results]
    assert [r["decision"] for r in records] == EXPECTED


def test_review_reaches_a_modbus_client_in_map_version_2_and_reads_ng_in_map_version_1(banded):
    bundle, frames = banded
    codes = {"OK": 1, "REVIEW": 4, "NG": 2}
    with Detector.open(bundle, search="exact") as det:
        gateway = _gateway(det, frames)
        with gateway:
            with ModbusServer(gateway.handshake, ModbusConfig(port=0, map_version=2)) as server:
                v2 = modbus_cycles("127.0.0.1", server.port, 6)
                regs = _read_registers(server.port)
            with ModbusServer(gateway.handshake, ModbusConfig(port=0)) as server:
                v1 = modbus_cycles("127.0.0.1", server.port, 6)
                regs_v1 = _read_registers(server.port)
    assert v2.problems == [] and v1.problems == []
    assert [codes[EXPECTED[f % 3]] for f in v2.frame_ids] == v2.results and 4 in v2.results
    assert [min(codes[EXPECTED[f % 3]], 2) for f in v1.frame_ids] == v1.results and 4 not in v1.results
    assert 1 in v1.results and 2 in v1.results
    assert (regs[M.VERSION], regs_v1[M.VERSION]) == (2, 1)


def _read_registers(port: int) -> list[int]:
    from pymodbus.client import ModbusTcpClient

    client = ModbusTcpClient("127.0.0.1", port=port, timeout=10)
    assert client.connect()
    try:
        reply = client.read_holding_registers(0, count=M.SIZE, device_id=1)
        assert not reply.isError()
        return reply.registers
    finally:
        client.close()


def test_review_reaches_an_opcua_client_as_result_4_and_result_text_review(banded):
    bundle, frames = banded
    with Detector.open(bundle, search="exact") as det:
        gateway = _gateway(det, frames)
        with gateway, OpcUaServer(gateway.handshake, OpcUaConfig(
                host="127.0.0.1", port=0, security=OpcUaSecurityConfig(mode="none"))) as server:
            report = opcua_cycles(server.endpoint, server.node_id, 5)
            text, frame_id, result = asyncio.run(_read(server, ("ResultText", "FrameId", "Result")))
    assert report.problems == []
    assert [{"OK": 1, "REVIEW": 4, "NG": 2}[EXPECTED[f % 3]] for f in report.frame_ids] == report.results
    assert 4 in report.results
    assert (text, result) == (EXPECTED[frame_id % 3], int(Result[EXPECTED[frame_id % 3]]))


async def _read(server, names):
    """The values as they stand after the last Ack (status Uncertain then: the verdict of a finished cycle)."""
    from asyncua import Client

    async with Client(server.endpoint, timeout=10) as client:
        values = [await client.get_node(server.node_id(n)).read_data_value(raise_on_bad_status=False) for n in names]
    return [v.Value.Value for v in values]


def test_sighup_gives_a_serving_gateway_the_new_decision(banded, tmp_path):
    bundle = shutil.copytree(banded[0], tmp_path / "bundle")
    frames = banded[1]
    detector = HotSwapDetector.open(bundle, search="exact")      # reload_decision goes to the model serving
    gateway = _gateway(detector, frames)

    def reloaded(_record):
        gateway.handshake.set_identity(detector.model_id, bundle_hash(bundle))

    try:
        with gateway, ModbusServer(gateway.handshake, ModbusConfig(port=0, map_version=2)) as server, \
                reload_decision_on_sighup(detector, reloaded) as attempted:
            before = modbus_cycles("127.0.0.1", server.port, 3)
            old_hash = M.decode_text(_read_registers(server.port), M.BUNDLE_HASH, M.BUNDLE_HASH_REGS)
            low = min(detector.predict(f).raw_score for f in frames)
            write_decision(bundle, low / 2, None, {"policy": "manual", "why": "everything NG now"})
            os.kill(os.getpid(), signal.SIGHUP)
            assert attempted.wait(10)
            after = modbus_cycles("127.0.0.1", server.port, 3)
            new_hash = M.decode_text(_read_registers(server.port), M.BUNDLE_HASH, M.BUNDLE_HASH_REGS)
    finally:
        detector.close()
    assert sorted(before.results) == [1, 2, 4] and after.results == [2, 2, 2]
    assert new_hash == bundle_hash(bundle)[:16] != old_hash
    assert detector.detector.manifest.decision["why"] == "everything NG now"


def test_an_unknown_map_version_is_refused_with_the_choices(tmp_path):
    from tocoad_edge.errors import ConfigError
    from tocoad_edge.plc import load_gateway_config

    cfg = tmp_path / "gateway.yaml"
    cfg.write_text("source: {uri: simulated}\ndetector: {bundle: b}\nmodbus: {map_version: 3}\n")
    with pytest.raises(ConfigError, match=r"modbus\.map_version.*1 \(result 0-3, REVIEW reported as NG\) or 2"):
        load_gateway_config(cfg)
