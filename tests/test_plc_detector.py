"""The gateway with the real runtime Detector (tiny bundle), and examples/plc_gateway.py from a YAML file."""
from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pymodbus", reason="the plc extra is not installed (pip install 'tocoad-edge[plc]')")

from tocoad_edge.data import read_image  # noqa: E402
from tocoad_edge.errors import ConfigError  # noqa: E402
from tocoad_edge.plc import Gateway, HandshakeConfig, ModbusConfig, ModbusServer, bundle_hash  # noqa: E402
from tocoad_edge.plc import modbus_map as M  # noqa: E402
from tocoad_edge.plc.cycle_check import modbus_cycles  # noqa: E402
from tocoad_edge.runtime import Detector  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "plc_gateway.py"


@dataclass(frozen=True)
class ListedFrame:
    image: np.ndarray
    frame_id: int


class ImageListSource:
    """Test double for a camera: serves the given images in a loop, each with its position as frame id."""

    def __init__(self, images: list[np.ndarray]):
        self.images = images
        self.next_id = 0

    def read(self, timeout: float) -> ListedFrame:
        frame_id = self.next_id
        self.next_id += 1
        return ListedFrame(self.images[frame_id % len(self.images)], frame_id)


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


def _load_example():
    spec = importlib.util.spec_from_file_location("plc_gateway_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_example_runs_from_yaml(tiny_bundle, tmp_path) -> None:
    example = _load_example()
    cfg_file = tmp_path / "gateway.yaml"
    pytest.importorskip("tocoad_edge.stream", reason="camera sources are not available")
    cfg_file.write_text(f"""
source: {{uri: 'testsrc://?width=96&height=96', options: {{fps: 30}}}}   # a real stream source: a test pattern
detector: {{bundle: "{tiny_bundle}"}}
transport: modbus
handshake: {{deadline_s: 5.0}}
modbus: {{host: 127.0.0.1, port: 0}}
""")
    cfg = example.load_gateway_config(cfg_file)
    gateway, transport, detector = example.build(cfg)
    try:
        with gateway, transport:
            report = modbus_cycles("127.0.0.1", transport.port, 10)
            snap = gateway.snapshot()
    finally:
        detector.close()
        close = getattr(gateway.source, "close", None)
        if close is not None:
            close()
    assert report.problems == [] and report.seqs == list(range(1, 11))
    assert snap.model_id == detector.manifest.model_id
    assert example.main([str(cfg_file), "--print-config"]) == 0


def test_example_refuses_a_bad_config_with_a_fix(tmp_path, capsys) -> None:
    example = _load_example()
    bad = tmp_path / "bad.yaml"
    bad.write_text("source: {uri: '0'}\ndetector: {bundle: b}\ntransport: profinet\n")
    assert example.main([str(bad)]) == 2
    err = capsys.readouterr().err
    assert "transport" in err and "expected" in err and "modbus" in err
    bad.write_text("source: {uri: '0'}\ndetector: {bundle: b}\nhandshake: {deadline_s: -1}\n")
    with pytest.raises(ConfigError, match="deadline_s"):
        example.load_gateway_config(bad)
    if importlib.util.find_spec("tocoad_edge.stream") is not None:
        bad.write_text("source: {uri: '0', options: {fsp: 30}}\ndetector: {bundle: b}\n")
        with pytest.raises(ConfigError, match="source.options.fsp.*did you mean 'fps'"):
            example.load_gateway_config(bad)


def test_example_main_runs_for_a_duration_and_reports(tiny_bundle, tmp_path, caplog) -> None:
    import logging

    example = _load_example()
    cfg_file = tmp_path / "gateway.yaml"
    cfg_file.write_text(f"""
source: {{uri: simulated}}
detector: {{bundle: "{tiny_bundle}"}}
transport: opcua
opcua: {{host: 127.0.0.1, port: 0}}
""")
    caplog.set_level(logging.INFO)
    assert example.main([str(cfg_file), "--duration", "0.5"]) == 0
    messages = [r.getMessage() for r in caplog.records]
    assert any("PLC gateway up: opcua opc.tcp://127.0.0.1:" in m for m in messages)
    assert any(m.startswith("stopping: 0 triggers") for m in messages)
