"""A real camera stream behind the gateway: an HTTP MJPEG server on 127.0.0.1, read by
``tocoad_edge.stream.open_source``, judged, served over Modbus TCP to a pymodbus client. The camera is
stopped and started again on the same port; the gateway says Error/Bad, then Ready, without a restart."""
from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("pymodbus", reason="the plc extra is not installed (pip install 'tocoad-edge[plc]')")

from pymodbus.client import ModbusTcpClient  # noqa: E402

from plc_helpers import poll  # noqa: E402
from stream_support import publish_moving_bar  # noqa: E402
from tocoad_edge.plc import Gateway, HandshakeConfig, ModbusConfig, ModbusServer  # noqa: E402
from tocoad_edge.plc import modbus_map as M  # noqa: E402
from tocoad_edge.plc.cycle_check import modbus_cycles  # noqa: E402
from tocoad_edge.plc.simulation import FrameMeanDetector  # noqa: E402
from tocoad_edge import stream  # noqa: E402
from tocoad_edge.stream.liveview_server import MjpegBroadcaster, MjpegServer  # noqa: E402

DEADLINE_S = 1.0


def test_mjpeg_camera_dies_and_comes_back_error_bad_then_ready() -> None:
    broadcaster = MjpegBroadcaster()
    stop_publishing = threading.Event()
    threading.Thread(target=publish_moving_bar,
                     args=(broadcaster, stop_publishing, (64, 48), 60), daemon=True).start()
    camera = MjpegServer(broadcaster).start()
    port = camera.port
    restarted = None
    source = stream.open_source(camera.stream_url, reconnect_initial_s=0.2, reconnect_max_s=0.5,
                                read_timeout_s=0.5)
    gateway = Gateway(source, FrameMeanDetector(), HandshakeConfig(deadline_s=DEADLINE_S, probe_interval_s=0.05))
    try:
        with gateway, ModbusServer(gateway.handshake, ModbusConfig(port=0)) as server:
            before = modbus_cycles("127.0.0.1", server.port, 20)
            assert before.problems == [] and before.seqs == list(range(1, 21))
            assert all(b > a for a, b in zip(before.frame_ids, before.frame_ids[1:]))   # the stream's own ids
            client = ModbusTcpClient("127.0.0.1", port=server.port, timeout=5)
            assert client.connect()
            regs = lambda: client.read_holding_registers(0, count=M.SIZE).registers  # noqa: E731
            camera.stop()                                                    # the camera dies
            down = time.monotonic()
            r, _ = poll(regs, lambda r: r[M.RESULT] == 3, limit_s=15)
            print(f"\nmjpeg camera stopped → Error/Bad after {(time.monotonic() - down) * 1000:.0f} ms "
                  f"(deadline {DEADLINE_S * 1000:.0f} ms), error code {r[M.ERROR_CODE]}")
            assert (r[M.READY], r[M.QUALITY]) == (0, 2) and r[M.ERROR_CODE] in (1, 2)
            snap = gateway.snapshot()
            assert snap.fault.is_camera
            if snap.fault.name == "CAMERA_ERROR":
                assert snap.fault_detail                                     # the stream said why
            time.sleep(1.0)                                                  # stays dead a while
            restarted = MjpegServer(broadcaster, port=port).start()          # comes back on the same address
            up = time.monotonic()
            r, _ = poll(regs, lambda r: r[M.READY] == 1, limit_s=20)
            print(f"mjpeg camera back → Ready after {(time.monotonic() - up) * 1000:.0f} ms")
            assert r[M.ERROR_CODE] == 0
            client.close()
            after = modbus_cycles("127.0.0.1", server.port, 10)
            assert after.problems == [] and after.seqs == list(range(21, 31))
            assert after.frame_ids[0] > before.frame_ids[-1]                 # ids keep counting across the outage
    finally:
        stop_publishing.set()
        source.close()
        if restarted is not None:
            restarted.stop()
