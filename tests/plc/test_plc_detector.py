"""The gateway with the real runtime Detector (tiny bundle), and the tocoad-plc app (plc/app.py) from a YAML file."""
from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("pymodbus", reason="the plc extra is not installed (pip install 'tocoad-edge[plc]')")

from tocoad_edge.data import read_image  # noqa: E402
from tocoad_edge.errors import ConfigError  # noqa: E402
from tocoad_edge.plc import Gateway, HandshakeConfig, ModbusConfig, ModbusServer, bundle_hash  # noqa: E402
from tocoad_edge.plc import app  # noqa: E402
from tocoad_edge.plc import modbus_map as M  # noqa: E402
from tocoad_edge.plc.cycle_check import modbus_cycles  # noqa: E402
from tocoad_edge.runtime import Detector  # noqa: E402
from tocoad_edge.stream import Frame, ReadResult, ReadStatus  # noqa: E402


class ImageListSource:
    """Test double for a camera: serves the given images in a loop, each with its position as frame id."""

    def __init__(self, images: list[np.ndarray]):
        self.images = images
        self.next_id = 0

    def read(self, timeout: float) -> ReadResult:
        frame_id = self.next_id
        self.next_id += 1
        image = self.images[frame_id % len(self.images)]
        return ReadResult(ReadStatus.OK, Frame(frame_id, time.time(), time.monotonic(), image))


@pytest.fixture(scope="module")
def images(sample_dataset) -> list[np.ndarray]:
    test = sample_dataset / "test"
    paths = sorted((test / "good").iterdir())[:3] + sorted(p for d in sorted(test.iterdir()) if d.name != "good"
                                                          for p in sorted(d.iterdir())[:1])
    return [read_image(p) for p in paths]


def test_real_detector_verdicts_reach_the_plc_unchanged(tiny_bundle, images) -> None:
    with Detector.open(tiny_bundle, search="exact") as reference:
        expected = [reference.predict(img) for img in images]
    with Detector.open(tiny_bundle, search="exact") as det:
        gateway = Gateway(ImageListSource(images), det, HandshakeConfig(deadline_s=5.0, probe_interval_s=0.5))
        with gateway, ModbusServer(gateway.handshake, ModbusConfig(port=0)) as server:
            report = modbus_cycles("127.0.0.1", server.port, 12)
            snap = gateway.snapshot()
    print("\n" + report.summary())
    assert report.problems == [] and report.cycles == 12
    for frame_id, result, score in zip(report.frame_ids, report.results, report.scores):
        pred = expected[frame_id % len(images)]
        assert result == (2 if pred.is_anomalous else 1)
        assert score == M.scale_score(pred.score, 1000) / 1000
    assert snap.model_id == det.manifest.model_id and snap.model_id
    assert snap.bundle_hash == bundle_hash(tiny_bundle)


def test_app_runs_from_yaml(tiny_bundle, tmp_path) -> None:
    cfg_file = tmp_path / "gateway.yaml"
    cfg_file.write_text(f"""
source: {{uri: 'testsrc://?width=96&height=96', options: {{fps: 30}}}}   # a real stream source: a test pattern
detector: {{bundle: "{tiny_bundle}"}}
transport: modbus
handshake: {{deadline_s: 5.0}}
modbus: {{host: 127.0.0.1, port: 0}}
""")
    cfg = app.load_gateway_config(cfg_file)
    gateway, transport, detector = app.build(cfg)
    try:
        with gateway, transport:
            report = modbus_cycles("127.0.0.1", transport.port, 10)
            snap = gateway.snapshot()
    finally:
        detector.close()
        gateway.source.close()
    assert report.problems == [] and report.seqs == list(range(1, 11))
    assert snap.model_id == detector.manifest.model_id
    assert app.main([str(cfg_file), "--print-config"]) == 0


def test_app_refuses_a_bad_config_with_a_fix(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("source: {uri: '0'}\ndetector: {bundle: b}\ntransport: profinet\n")
    assert app.main([str(bad)]) == 2
    err = capsys.readouterr().err
    assert "transport" in err and "expected" in err and "modbus" in err


@pytest.mark.parametrize("text, match", [
    ("source: {uri: '0'}\ndetector: {bundle: b}\nhandshake: {deadline_s: -1}\n", "deadline_s"),
    ("source: {uri: '0', options: {fsp: 30}}\ndetector: {bundle: b}\n", "source.options.fsp.*did you mean 'fps'"),
    ("source: {uri: '0'}\ndetector: {bundle: b, serach: exact}\n", "detector.serach.*did you mean 'search'"),
    ("source: {uri: '0'}\ndetector: {backend: onnxrt}\n", "missing config key 'detector.bundle'"),
])
def test_app_config_errors_name_the_key(tmp_path, text, match) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError, match=match):
        app.load_gateway_config(bad)


def test_app_main_runs_for_a_duration_and_reports(tiny_bundle, tmp_path, caplog) -> None:
    import logging

    cfg_file = tmp_path / "gateway.yaml"
    cfg_file.write_text(f"""
source: {{uri: simulated}}
detector: {{bundle: "{tiny_bundle}"}}
transport: opcua
opcua: {{host: 127.0.0.1, port: 0, security: {{mode: none}}}}
""")
    caplog.set_level(logging.INFO)
    assert app.main([str(cfg_file), "--duration", "0.5"]) == 0
    messages = [r.getMessage() for r in caplog.records]
    assert any("PLC gateway up: opcua opc.tcp://127.0.0.1:" in m for m in messages)
    assert any(m.startswith("stopping: 0 triggers") for m in messages)
