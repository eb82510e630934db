"""What docs/plc.md promises matches the code; the plc package stays free of torch and training code."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tocoad_edge.plc import Fault, Mode, Phase, Quality, Result, Snapshot
from tocoad_edge.plc import modbus_map as M
from tocoad_edge.plc.opcua_nodes import NODES, verdict_status
from tocoad_edge.plc.ports import ERROR, OK, TIMEOUT, grab, to_grab
from tocoad_edge.stream import Frame, ReadResult, ReadStatus

DOC = (Path(__file__).resolve().parents[2] / "docs" / "plc.md").read_text(encoding="utf-8")


def snapshot(**changes) -> Snapshot:
    base = dict(version=1, mode=Mode.TRIGGERED, running=True, trigger=False, ack=False, ready=True, busy=False,
                done=False, phase=Phase.IDLE, result=Result.NONE, quality=Quality.UNCERTAIN, fault=Fault.NONE,
                fault_detail="",
                score=0.0, raw_score=0.0, frame_id=0, result_seq=0, latency_ms=0.0, heartbeat=0, trigger_count=0,
                triggers_ignored=0, writes_rejected=0, late_results=0, model_id="", bundle_hash="")
    base.update(changes)
    return Snapshot(**base)


def test_register_table_in_the_docs_matches_the_map() -> None:
    rows = {}
    for line in DOC.splitlines():
        m = re.match(r"\|\s*(\d+)(?:–(\d+))?\s*\|\s*4\d{4}\s*\|\s*`(\w+)`\s*\|\s*(RW|R)\s*\|", line)
        if m:
            first, last = int(m.group(1)), int(m.group(2) or m.group(1))
            rows[m.group(3)] = (first, last - first + 1, m.group(4))
    expected = {name: (addr, width, access) for addr, width, name, access in M.REGISTER_TABLE}
    assert rows == expected
    assert f"map version {M.MAP_VERSION}" in DOC and f"0–{M.SIZE - 1}" in DOC


def test_node_table_in_the_docs_lists_every_node() -> None:
    documented = set()
    for line in DOC.splitlines():
        if line.startswith("| `") and ("| R" in line or "| RW" in line):
            documented |= set(re.findall(r"`(\w+)`", line.split("|")[1]))
    assert documented == {spec.name for spec in NODES}
    for spec in NODES:
        if spec.verdict:
            assert f"`{spec.name}`" in DOC.split("Status codes of the verdict nodes")[1].split("\n\n")[0]


def test_render_encodes_every_field() -> None:
    snap = snapshot(done=True, result=Result.NG, quality=Quality.GOOD, score=1.2345, frame_id=70000,
                    result_seq=65537, latency_ms=12.3456, heartbeat=70000, model_id="line3-tile", bundle_hash="f" * 64,
                    phase=Phase.DONE, ready=False)
    regs = M.render(snap, 1000)
    assert len(regs) == M.SIZE and all(0 <= r <= 0xFFFF for r in regs)
    assert (regs[M.DONE], regs[M.RESULT], regs[M.QUALITY], regs[M.PHASE]) == (1, 2, 0, 2)
    assert regs[M.SCORE] == 1234 or regs[M.SCORE] == 1235
    assert M.decode_u32(regs, M.FRAME_ID) == 70000 and M.decode_u32(regs, M.RESULT_SEQ) == 65537
    assert M.decode_u32(regs, M.LATENCY_US) == 12346
    assert regs[M.HEARTBEAT] == 70000 & 0xFFFF
    assert M.decode_text(regs, M.MODEL_ID, M.MODEL_ID_REGS) == "line3-tile"
    assert M.decode_text(regs, M.BUNDLE_HASH, M.BUNDLE_HASH_REGS) == "f" * 16
    assert M.scale_score(-0.5, 1000) == 0 and M.scale_score(1e9, 1000) == 0xFFFF


def test_write_checks_name_the_register_and_the_fix() -> None:
    assert M.check_write(M.TRIGGER, [1, 0]) is None
    r = M.check_write(M.DONE, [1])
    assert r.exception == "ILLEGAL_ADDRESS" and "read-only" in str(r) and "register 0 (trigger)" in str(r)
    r = M.check_write(M.ACK, [2])
    assert r.exception == "ILLEGAL_VALUE" and "expected: 0 or 1" in str(r) and "got: 2" in str(r)
    assert M.check_write(M.ACK, [0, 0]).exception == "ILLEGAL_ADDRESS"
    assert M.check_read(0, M.SIZE) is None and M.check_read(M.SIZE, 1) is not None


def test_verdict_status_is_never_good_for_a_stale_or_faulted_result() -> None:
    assert verdict_status(snapshot(quality=Quality.GOOD, done=True, result_seq=3)) == "Good"
    assert verdict_status(snapshot(quality=Quality.UNCERTAIN, result_seq=0)) == "UncertainInitialValue"
    assert verdict_status(snapshot(quality=Quality.UNCERTAIN, result_seq=3)) == "UncertainLastUsableValue"
    assert verdict_status(snapshot(quality=Quality.BAD, fault=Fault.CAMERA_TIMEOUT)) == "BadSensorFailure"
    assert verdict_status(snapshot(quality=Quality.BAD, fault=Fault.INFERENCE_TIMEOUT)) == "BadDeviceFailure"
    assert verdict_status(snapshot(quality=Quality.BAD, running=False, fault=Fault.STOPPED)) == "BadShutdown"


def test_stream_read_results_become_grabs() -> None:
    image = np.zeros((4, 4, 3), np.uint8)
    g = to_grab(ReadResult(ReadStatus.OK, Frame(id=17, timestamp=0.0, monotonic=12.5, image=image)))
    assert (g.status, g.frame_id, g.captured) == (OK, 17, 12.5) and g.frame is image
    assert to_grab(ReadResult(ReadStatus.TIMEOUT)) == to_grab(ReadResult(ReadStatus.TIMEOUT, error=None))
    assert to_grab(ReadResult(ReadStatus.TIMEOUT)).status == TIMEOUT
    g = to_grab(ReadResult(ReadStatus.TIMEOUT, error="reconnecting: refused"))
    assert (g.status, g.detail) == (TIMEOUT, "reconnecting: refused")
    g = to_grab(ReadResult(ReadStatus.ERROR, error="connection refused"))
    assert (g.status, g.detail) == (ERROR, "connection refused")
    g = to_grab(ReadResult(ReadStatus.END_OF_STREAM))
    assert (g.status, g.detail) == (ERROR, "end_of_stream")


class _ArraySource:
    """Test double: a source that returns a bare frame, the old duck-typed shape that is no longer read."""

    def read(self, timeout: float) -> np.ndarray:
        return np.zeros((2, 2, 3), np.uint8)


def test_a_read_of_the_wrong_type_is_a_clear_error() -> None:
    from tocoad_edge.errors import SourceError

    with pytest.raises(SourceError) as err:
        to_grab(np.zeros((2, 2, 3), np.uint8))
    assert err.value.expected == "a tocoad_edge.stream.ReadResult" and err.value.got == "ndarray"
    assert "open_source" in err.value.fix
    g = grab(_ArraySource(), 0.1)          # inside the gateway loop the same error is a camera error, not a crash
    assert g.status == ERROR and g.detail.startswith("SourceError: the gateway's source returned the wrong type")


def test_an_ok_read_without_a_frame_is_a_clear_error() -> None:
    from tocoad_edge.errors import SourceError

    with pytest.raises(SourceError) as err:
        to_grab(ReadResult(ReadStatus.OK))
    assert err.value.got == "ReadResult(ReadStatus.OK, None)" and "TIMEOUT" in err.value.fix


def test_plc_imports_without_torch_or_training_code() -> None:
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import tocoad_edge.plc, tocoad_edge.plc.gateway, tocoad_edge.plc.simulation, tocoad_edge.plc.cycle_check\n"
        "import tocoad_edge.plc.modbus_map, tocoad_edge.plc.opcua_nodes, tocoad_edge.plc.config\n"
        "for m in ('tocoad_edge.plc.modbus_server', 'tocoad_edge.plc.opcua_server'):\n"
        "    __import__(m)\n"
        "bad = [m for m in sys.modules if m.split('.')[0:2] in (['tocoad_edge', 'train'], ['tocoad_edge', 'export'],"
        " ['tocoad_edge', 'calibration'], ['tocoad_edge', 'models'])]\n"
        "assert not bad, bad\n"
        "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_plc_package_does_not_load_the_transports_until_asked() -> None:
    code = ("import sys; import tocoad_edge.plc\n"
            "print('pymodbus' in sys.modules, 'asyncua' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False False"


def test_missing_transport_library_is_a_clear_error(monkeypatch) -> None:
    from tocoad_edge.errors import ResourceError
    from tocoad_edge.plc import modbus_server

    monkeypatch.setitem(sys.modules, "pymodbus", None)
    with pytest.raises(ResourceError, match="pymodbus") as err:
        modbus_server._import_pymodbus()
    assert "pip install" in str(err.value)


def test_every_config_key_is_documented() -> None:
    import dataclasses

    from tocoad_edge.plc import config

    documented = set()
    table = DOC.split("### Config keys")[1].split("\n\n")[1]
    for row in table.splitlines()[2:]:
        names = re.findall(r"`([\w.]+)`", row.split("|")[1])
        prefix = names[0].rsplit(".", 1)[0] + "." if "." in names[0] else ""
        documented |= {names[0]} | {prefix + n for n in names[1:]}
    expected = set()
    for f in dataclasses.fields(config.GatewayConfig):
        section = {"source": config.SourceConfig, "detector": config.DetectorOptions,
                   "handshake": config.HandshakeConfig, "modbus": config.ModbusConfig,
                   "opcua": config.OpcUaConfig}.get(f.name)
        if section is not None:
            expected |= {f"{f.name}.{sub.name}" for sub in dataclasses.fields(section)}
        else:
            expected.add(f.name)
    assert documented == expected
