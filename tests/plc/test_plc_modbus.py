"""Modbus TCP: a real pymodbus client on 127.0.0.1 drives the gateway (simulated camera and detector)."""
from __future__ import annotations

import logging
import time

import pytest

pytest.importorskip("pymodbus", reason="the plc extra is not installed (pip install 'tocoad-edge[plc]')")

from pymodbus.client import ModbusTcpClient  # noqa: E402

from plc_helpers import CYCLE_DEADLINE_S, DEADLINE_S, HEARTBEAT_S, make_gateway, poll  # noqa: E402
from tocoad_edge.plc import ModbusConfig, ModbusServer  # noqa: E402
from tocoad_edge.plc import modbus_map as M  # noqa: E402
from tocoad_edge.plc.cycle_check import modbus_cycles  # noqa: E402
from tocoad_edge.plc.simulation import expected_score  # noqa: E402

ILLEGAL_FUNCTION, ILLEGAL_ADDRESS, ILLEGAL_VALUE = 1, 2, 3


@pytest.fixture
def rig():
    yield from _rig(DEADLINE_S)


@pytest.fixture
def cycle_rig():
    yield from _rig(CYCLE_DEADLINE_S)


def _rig(deadline_s: float):
    gateway, camera, detector = make_gateway(deadline_s=deadline_s)
    with gateway, ModbusServer(gateway.handshake, ModbusConfig(host="127.0.0.1", port=0)) as server:
        client = ModbusTcpClient("127.0.0.1", port=server.port, timeout=5)
        assert client.connect()
        try:
            yield gateway, camera, detector, server, client
        finally:
            client.close()


def regs(client: ModbusTcpClient) -> list[int]:
    reply = client.read_holding_registers(0, count=M.SIZE)
    assert not reply.isError(), reply
    return reply.registers


def ack_cycle(client: ModbusTcpClient) -> None:
    assert not client.write_registers(M.TRIGGER, [0, 1]).isError()
    poll(lambda: regs(client)[M.DONE], lambda d: d == 0)
    assert not client.write_register(M.ACK, 0).isError()


def test_1000_trigger_cycles_no_lost_duplicated_or_out_of_order_result(cycle_rig) -> None:
    gateway, _, _, server, _ = cycle_rig
    report = modbus_cycles("127.0.0.1", server.port, 1000, score_of=expected_score)
    print("\n" + report.summary())
    assert report.problems == []
    assert report.cycles == 1000
    assert report.seqs == list(range(1, 1001))
    assert all(b > a for a, b in zip(report.frame_ids, report.frame_ids[1:]))
    assert {1, 2} <= set(report.results)                # both verdicts went through the map
    snap = gateway.snapshot()
    assert (snap.trigger_count, snap.result_seq, snap.triggers_ignored, snap.late_results) == (1000, 1000, 0, 0)


def test_register_map_identity_and_read_limits(rig) -> None:
    gateway, _, _, _, client = rig
    r = regs(client)
    assert r[M.VERSION] == M.MAP_VERSION and r[M.READY] == 1 and r[M.MODE] == 0
    assert M.decode_text(r, M.MODEL_ID, M.MODEL_ID_REGS) == "simulated-frame-mean"
    assert M.decode_text(r, M.BUNDLE_HASH, M.BUNDLE_HASH_REGS) == "0123456789abcdef"
    assert r[M.SCORE_SCALE] == 1000
    assert client.read_holding_registers(M.SIZE - 1, count=2).exception_code == ILLEGAL_ADDRESS
    assert client.read_holding_registers(1000, count=1).exception_code == ILLEGAL_ADDRESS
    assert client.read_coils(0, count=1).exception_code == ILLEGAL_FUNCTION
    assert client.read_discrete_inputs(0, count=1).exception_code == ILLEGAL_FUNCTION
    assert not client.read_input_registers(M.READY, count=1).isError()   # FC 4 reads the same map
    assert client.read_holding_registers(M.READY, count=1, device_id=5).registers == [1]   # any unit id
    assert gateway.snapshot().writes_rejected == 0                          # reads are not writes


def test_other_write_functions_are_refused_and_counted(rig) -> None:
    gateway, _, _, _, client = rig
    assert client.mask_write_register(address=M.TRIGGER, and_mask=0xFFFF, or_mask=1).exception_code == ILLEGAL_FUNCTION
    assert client.readwrite_registers(read_address=M.READY, read_count=1, write_address=M.TRIGGER,
                                      values=[1]).exception_code == ILLEGAL_FUNCTION
    assert client.write_coils(0, [True]).exception_code == ILLEGAL_FUNCTION
    s = gateway.snapshot()
    assert (s.writes_rejected, s.trigger_count, s.trigger) == (3, 0, False)   # nothing reached the handshake


def test_malformed_writes_are_rejected_logged_and_leave_the_cycle_alone(cycle_rig, caplog) -> None:
    gateway, camera, detector, server, client = cycle_rig
    detector.delay_s = 0.01                               # keep each cycle Busy long enough to write into it
    bad_writes = [
        (lambda: client.write_register(M.DONE, 1), ILLEGAL_ADDRESS),             # read-only status register
        (lambda: client.write_register(M.TRIGGER, 7), ILLEGAL_VALUE),            # value out of range
        (lambda: client.write_register(5, 1), ILLEGAL_ADDRESS),                  # reserved register
        (lambda: client.write_register(4000, 1), ILLEGAL_ADDRESS),               # outside the map
        (lambda: client.write_registers(M.ACK, [0, 1]), ILLEGAL_ADDRESS),        # runs past Ack
        (lambda: client.write_registers(M.TRIGGER, [1, 2]), ILLEGAL_VALUE),      # Ack out of range
        (lambda: client.write_coil(0, True), ILLEGAL_FUNCTION),                  # coils are not served
    ]
    caplog.set_level(logging.WARNING, logger="tocoad_edge.plc.modbus")
    previous_seq = 0
    for i in range(3 * len(bad_writes)):
        write, code = bad_writes[i % len(bad_writes)]
        assert not client.write_register(M.TRIGGER, 1).isError()
        reply = write()                                   # lands while the cycle is Busy (or just Done)
        assert reply.isError() and reply.exception_code == code, (i, reply)
        r, _ = poll(lambda: regs(client), lambda r: r[M.DONE] == 1)
        seq, frame_id = M.decode_u32(r, M.RESULT_SEQ), M.decode_u32(r, M.FRAME_ID)
        assert seq == previous_seq + 1
        assert r[M.SCORE] == round(expected_score(frame_id) * 1000) and r[M.QUALITY] == 0
        previous_seq = seq
        ack_cycle(client)
        poll(lambda: regs(client)[M.READY], lambda x: x == 1)
    r = regs(client)
    assert r[M.WRITES_REJECTED] == 3 * len(bad_writes)
    assert r[M.TRIGGERS_IGNORED] == 0 and M.decode_u32(r, M.TRIGGER_COUNT) == previous_seq
    refused = [rec.getMessage() for rec in caplog.records if "refused" in rec.getMessage()]
    assert len(refused) >= len(bad_writes)
    assert any("read-only status register" in m for m in refused)
    assert any("value out of range" in m and "expected: 0 or 1" in m for m in refused)


def test_source_disappears_error_and_bad_within_the_deadline_then_ready_again(rig) -> None:
    gateway, camera, _, server, client = rig
    report = modbus_cycles("127.0.0.1", server.port, 5, score_of=expected_score)
    assert report.problems == []
    camera.unplug()
    unplugged = time.monotonic()
    r, waited = poll(lambda: regs(client), lambda r: r[M.RESULT] == 3)
    detect_s = time.monotonic() - unplugged
    print(f"\nmodbus: camera unplugged → result Error after {detect_s * 1000:.0f} ms "
          f"(deadline {DEADLINE_S * 1000:.0f} ms)")
    assert (r[M.READY], r[M.QUALITY], r[M.ERROR_CODE]) == (0, 2, 1)          # not ready, bad, camera timeout
    heartbeat = r[M.HEARTBEAT]
    time.sleep(4 * HEARTBEAT_S)
    assert regs(client)[M.HEARTBEAT] == heartbeat                             # heartbeat stopped
    # a trigger during the outage is answered at once with Error: nothing goes unanswered
    assert not client.write_register(M.TRIGGER, 1).isError()
    r, _ = poll(lambda: regs(client), lambda r: r[M.DONE] == 1)
    assert (r[M.RESULT], r[M.QUALITY], M.decode_u32(r, M.RESULT_SEQ)) == (3, 2, 6)
    ack_cycle(client)
    assert regs(client)[M.READY] == 0
    camera.plug()
    r, waited = poll(lambda: regs(client), lambda r: r[M.READY] == 1)
    print(f"modbus: camera back → Ready after {waited * 1000:.0f} ms")
    assert (r[M.ERROR_CODE], r[M.QUALITY]) == (0, 1)                          # healthy; last result not current
    poll(lambda: regs(client)[M.HEARTBEAT], lambda hb: hb != r[M.HEARTBEAT])   # heartbeat runs again
    again = modbus_cycles("127.0.0.1", server.port, 5, score_of=expected_score)
    assert again.problems == [] and again.seqs == [7, 8, 9, 10, 11]


def test_camera_read_that_never_returns_watchdog_answers_error(rig) -> None:
    gateway, camera, _, _, client = rig
    camera.hang()                                         # the next read blocks and ignores its timeout
    assert not client.write_register(M.TRIGGER, 1).isError()
    r, waited = poll(lambda: regs(client), lambda r: r[M.DONE] == 1)
    print(f"\nmodbus: hung camera → Error after {waited * 1000:.0f} ms (deadline {DEADLINE_S * 1000:.0f} ms)")
    assert (r[M.RESULT], r[M.QUALITY], r[M.ERROR_CODE]) == (3, 2, 1)
    ack_cycle(client)
    camera.plug()                                         # the blocked read returns; its frame is not published
    r, _ = poll(lambda: regs(client), lambda r: r[M.READY] == 1)
    assert M.decode_u32(r, M.RESULT_SEQ) == 1
    assert gateway.snapshot().late_results <= 1           # 1 when the hung read was the cycle's, 0 a probe's
    assert not client.write_register(M.TRIGGER, 1).isError()
    r, _ = poll(lambda: regs(client), lambda r: r[M.DONE] == 1)
    assert (r[M.RESULT] in (1, 2), r[M.QUALITY], M.decode_u32(r, M.RESULT_SEQ)) == (True, 0, 2)


@pytest.mark.parametrize("failure, code", [("fail", 3), ("hang", 4)])
def test_model_failure_gives_error_then_recovers_without_restart(rig, failure: str, code: int) -> None:
    gateway, _, detector, _, client = rig
    getattr(detector, failure)()
    assert not client.write_register(M.TRIGGER, 1).isError()
    r, waited = poll(lambda: regs(client), lambda r: r[M.DONE] == 1)
    print(f"\nmodbus: detector {failure} → Error code {r[M.ERROR_CODE]} after {waited * 1000:.0f} ms")
    assert (r[M.RESULT], r[M.QUALITY], r[M.ERROR_CODE], r[M.READY]) == (3, 2, code, 0)
    ack_cycle(client)
    assert regs(client)[M.READY] == 0                     # stays down while the model is broken
    detector.heal()
    r, _ = poll(lambda: regs(client), lambda r: r[M.READY] == 1)
    assert r[M.ERROR_CODE] == 0
    if failure == "hang":
        poll(lambda: gateway.snapshot().late_results, lambda n: n == 1)   # the hung predict's result: dropped
    assert not client.write_register(M.TRIGGER, 1).isError()
    r, _ = poll(lambda: regs(client), lambda r: r[M.DONE] == 1)
    assert r[M.RESULT] in (1, 2) and r[M.QUALITY] == 0 and M.decode_u32(r, M.RESULT_SEQ) == 2


def test_free_run_publishes_frames_with_their_ids() -> None:
    gateway, camera, _ = make_gateway(mode="free_run", frame_interval_s=0.002)
    published = []
    gateway.handshake.subscribe(lambda s: published.append((s.result_seq, s.frame_id)) if s.result_seq else None)
    with gateway, ModbusServer(gateway.handshake, ModbusConfig(port=0)) as server:
        client = ModbusTcpClient("127.0.0.1", port=server.port, timeout=5)
        assert client.connect()
        try:
            previous = 0
            for _ in range(20):
                r, _ = poll(lambda: regs(client), lambda r, after=previous: M.decode_u32(r, M.RESULT_SEQ) > after)
                seq, frame_id = M.decode_u32(r, M.RESULT_SEQ), M.decode_u32(r, M.FRAME_ID)
                assert (r[M.MODE], r[M.READY], r[M.DONE], r[M.QUALITY]) == (1, 1, 1, 0)
                assert r[M.SCORE] == round(expected_score(frame_id) * 1000)
                previous = seq
            assert client.write_register(M.TRIGGER, 1).isError() is False     # accepted, ignored
        finally:
            client.close()
    distinct = sorted(set(published))
    assert [s for s, _ in distinct] == list(range(1, len(distinct) + 1))     # every frame, in order
    assert [f for _, f in distinct] == list(range(distinct[0][1], distinct[0][1] + len(distinct)))


def test_a_port_in_use_is_a_clear_error(rig) -> None:
    from tocoad_edge.errors import ResourceError

    gateway, _, _, server, _ = rig
    with pytest.raises(ResourceError, match="cannot listen for Modbus TCP") as err:
        ModbusServer(gateway.handshake, ModbusConfig(host="127.0.0.1", port=server.port)).start()
    assert "choose a free port" in str(err.value)
