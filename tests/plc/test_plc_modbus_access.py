"""Modbus access limits with a real pymodbus client on 127.0.0.1: a client outside ``allowed_clients`` is
disconnected before any request is served (and cannot trigger); one inside cycles; with ``unit_id`` set,
requests to another unit id get an exception and change nothing."""
from __future__ import annotations

import pytest

pytest.importorskip("pymodbus", reason="the plc extra is not installed (pip install 'tocoad-edge[plc]')")

from pymodbus.client import ModbusTcpClient  # noqa: E402
from pymodbus.exceptions import ConnectionException, ModbusIOException  # noqa: E402

from plc_helpers import CYCLE_DEADLINE_S, make_gateway  # noqa: E402
from tocoad_edge.errors import ConfigError  # noqa: E402
from tocoad_edge.plc import ModbusConfig, ModbusServer, load_gateway_config  # noqa: E402
from tocoad_edge.plc import modbus_map as M  # noqa: E402
from tocoad_edge.plc.cycle_check import modbus_cycles  # noqa: E402
from tocoad_edge.plc.simulation import expected_score  # noqa: E402


def test_a_client_outside_the_allow_list_is_disconnected_and_cannot_trigger() -> None:
    gateway, _, _ = make_gateway(deadline_s=CYCLE_DEADLINE_S)
    with gateway, ModbusServer(gateway.handshake, ModbusConfig(port=0, allowed_clients=("10.20.0.0/16",))) as srv:
        assert gateway.handshake.wait_for(lambda s: s.ready, 5.0) is not None
        client = ModbusTcpClient("127.0.0.1", port=srv.port, timeout=2, retries=0)
        try:
            client.connect()
            try:        # the connection is closed before the request is read: no answer, or a reset
                served = not client.write_register(M.TRIGGER, 1).isError()
            except (ConnectionException, ModbusIOException, OSError):
                served = False
            assert not served
        finally:
            client.close()
        snap = gateway.snapshot()
        assert srv.refused_connections >= 1 and snap.trigger_count == 0 and not snap.trigger
        assert not srv.allows("127.0.0.1") and srv.allows("10.20.3.4") and not srv.allows("not an address")


def test_a_client_inside_the_allow_list_cycles() -> None:
    gateway, _, _ = make_gateway(deadline_s=CYCLE_DEADLINE_S)
    config = ModbusConfig(port=0, allowed_clients=("192.168.0.10", "127.0.0.0/8"), unit_id=7)
    with gateway, ModbusServer(gateway.handshake, config) as srv:
        report = modbus_cycles("127.0.0.1", srv.port, 5, score_of=expected_score, device_id=7)
        assert report.problems == [] and report.cycles == 5 and srv.refused_connections == 0


def test_another_unit_id_gets_an_exception_and_changes_nothing() -> None:
    gateway, _, _ = make_gateway(deadline_s=CYCLE_DEADLINE_S)
    with gateway, ModbusServer(gateway.handshake, ModbusConfig(port=0, unit_id=7)) as srv:
        assert gateway.handshake.wait_for(lambda s: s.ready, 5.0) is not None
        client = ModbusTcpClient("127.0.0.1", port=srv.port, timeout=2, retries=0)
        try:
            client.connect()
            reply = client.write_register(M.TRIGGER, 1, device_id=1)
            assert reply.isError() and reply.exception_code == 0x0A     # gateway path unavailable
            assert not client.read_holding_registers(M.READY, count=1, device_id=7).isError()
        finally:
            client.close()
        snap = gateway.snapshot()
        assert snap.trigger_count == 0 and not snap.trigger and snap.writes_rejected == 1


def test_bad_allow_list_and_unit_id_are_config_errors(tmp_path) -> None:
    path = tmp_path / "gw.yaml"
    path.write_text("source: {uri: simulated}\ndetector: {bundle: b/}\nmodbus:\n  allowed_clients: [10.0.0.300]\n")
    with pytest.raises(ConfigError, match=r"modbus.allowed_clients\[0\]"):
        load_gateway_config(path)
    path.write_text("source: {uri: simulated}\ndetector: {bundle: b/}\nmodbus: {unit_id: 300}\n")
    with pytest.raises(ConfigError, match="modbus.unit_id"):
        load_gateway_config(path)
