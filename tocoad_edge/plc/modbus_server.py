"""Modbus TCP server (pymodbus ≥ 3.16 ``SimDevice`` API) for the handshake; register map in ``modbus_map``.

Every request passes through one callback: reads are served from one handshake snapshot (so a block
read is consistent), writes are checked against the map first. A malformed write — a read-only or
unknown register, a value other than 0/1, an unsupported function — gets a Modbus exception response,
is logged and counted (``writes_rejected``), and leaves the handshake untouched.

Modbus has no authentication. ``allowed_clients`` (addresses / networks) closes any other connection at
once, before a request is read, and ``unit_id`` answers one unit id only (others get exception 0x0A);
neither replaces network segmentation (docs/plc.md, Security).
"""
from __future__ import annotations

import ipaddress
import logging
from typing import Any

from ..errors import ResourceError
from . import modbus_map as regmap
from .config import ModbusConfig
from .handshake import Handshake
from .loop_thread import LoopThread
from .snapshot import Snapshot
from .throttled_log import ThrottledLog

log = logging.getLogger("tocoad_edge.plc.modbus")

READ_FUNCTIONS = {3, 4}         # read holding registers, read input registers (same map)
WRITE_FUNCTIONS = {6, 16}       # write single register, write multiple registers
OTHER_WRITES = {5, 15, 22, 23}  # coil writes, mask write, read/write multiple: refused, counted as rejected writes


def _import_pymodbus() -> Any:
    try:
        import pymodbus
        from pymodbus.constants import ExcCodes
        from pymodbus.server import ModbusTcpServer
        from pymodbus.simulator import DataType, SimData, SimDevice
    except ImportError as exc:
        raise ResourceError("the Modbus TCP transport needs pymodbus >= 3.16",
                            got=f"{type(exc).__name__}: {exc}",
                            fix="pip install 'tocoad-edge[plc]'  (or: pip install 'pymodbus>=3.16,<4')") from None
    return pymodbus, ExcCodes, ModbusTcpServer, DataType, SimData, SimDevice


class ModbusServer:
    """Serve ``handshake`` over Modbus TCP. ``start()`` binds (``port`` 0: any free port, see ``.port``)."""

    def __init__(self, handshake: Handshake, config: ModbusConfig | None = None):
        self.handshake = handshake
        self.config = config or ModbusConfig()
        self.port: int | None = None
        self._loop = LoopThread("tocoad-plc-modbus")
        self._server: Any = None
        self._exc: Any = None
        self._cache: tuple[Snapshot | None, list[int]] = (None, [])
        self._rejections = ThrottledLog(log)
        self._allowed = [ipaddress.ip_network(a, strict=False) for a in self.config.allowed_clients]
        self.refused_connections = 0

    def allows(self, address: str) -> bool:
        """True when ``address`` may connect (no allow-list: everyone)."""
        if not self._allowed:
            return True
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self._allowed)

    def start(self) -> "ModbusServer":
        if self._server is not None:
            return self
        self._loop.start()
        try:
            self._loop.run(self._serve(), timeout=30.0)
        except BaseException:
            self._loop.stop()
            raise
        log.info("Modbus TCP server listening on %s:%d (register map v%d)", self.config.host, self.port,
                 self.config.map_version)
        return self

    def stop(self) -> None:
        if self._server is not None:
            try:
                self._loop.run(self._server.shutdown(), timeout=5.0)
            except Exception:
                log.exception("Modbus server shutdown failed")
            self._server = None
        self._loop.stop()

    def __enter__(self) -> "ModbusServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _serve(self) -> None:
        _, ExcCodes, ModbusTcpServer, DataType, SimData, SimDevice = _import_pymodbus()
        self._exc = ExcCodes
        # one block over the whole address space, so every request reaches _action (and is logged if refused)
        devices = [SimDevice(id=self.config.unit_id, simdata=[SimData(0, count=65536, datatype=DataType.REGISTERS)],
                             action=self._action)]
        if self.config.unit_id:         # id 0 catches every other unit id: refused, never served
            devices.append(SimDevice(id=0, simdata=[SimData(0, count=65536, datatype=DataType.REGISTERS)],
                                     action=self._other_unit))
        server = ModbusTcpServer(devices, address=(self.config.host, self.config.port))
        if self._allowed:
            self._guard(server)
        try:
            await server.serve_forever(background=True)
        except (RuntimeError, OSError) as exc:
            raise ResourceError(f"cannot listen for Modbus TCP on {self.config.host}:{self.config.port}",
                                got=str(exc), fix="choose a free port (modbus.port) or stop the program using it; "
                                "ports below 1024 need root or CAP_NET_BIND_SERVICE") from None
        self._server = server
        self.port = server.transport.sockets[0].getsockname()[1]

    def _guard(self, server: Any) -> None:
        """Close connections from addresses outside ``allowed_clients`` as they are made (before any request)."""
        make_handler = server.callback_new_connection

        def new_connection() -> Any:
            handler = make_handler()
            accept = handler.connection_made

            def connection_made(transport: Any) -> None:
                peer = transport.get_extra_info("peername") or ("?",)
                if not self.allows(str(peer[0])):
                    self.refused_connections += 1
                    self._rejections.warning("Modbus connection from %s refused: not in modbus.allowed_clients %s",
                                             peer[0], list(self.config.allowed_clients))
                    transport.abort()
                    server.active_connections.pop(handler.unique_id, None)    # never served: forget it
                    return
                accept(transport)

            handler.connection_made = connection_made
            return handler

        server.callback_new_connection = new_connection

    def _registers(self) -> list[int]:
        snap = self.handshake.snapshot()
        cached_snap, regs = self._cache
        if snap is not cached_snap:
            regs = regmap.render(snap, self.config.score_scale, self.config.map_version)
            self._cache = (snap, regs)
        return regs

    def _refuse(self, rejection: regmap.Rejection, count_it: bool) -> Any:
        self._rejections.warning("Modbus request refused: %s", rejection)
        if count_it:
            self.handshake.count_rejected_write()
        return getattr(self._exc, rejection.exception)

    async def _other_unit(self, function_code: int, start_address: int, address: int, count: int,
                          registers: list[int], values: list[int] | list[bool] | None) -> Any:
        is_write = values is not None or function_code in WRITE_FUNCTIONS | OTHER_WRITES
        return self._refuse(regmap.Rejection(
            "GATEWAY_PATH_UNAVIABLE", "a request for another unit id", f"unit id {self.config.unit_id} "
            "(modbus.unit_id)", "another unit id"), is_write)

    async def _action(self, function_code: int, start_address: int, address: int, count: int,
                      registers: list[int], values: list[int] | list[bool] | None) -> Any:
        if values is None:
            if function_code not in READ_FUNCTIONS | WRITE_FUNCTIONS:   # writes are read back for the reply
                return self._refuse(regmap.Rejection(
                    "ILLEGAL_FUNCTION", f"function code {function_code} is not served",
                    "3/4 (read registers), 6/16 (write registers)", str(function_code)),
                    function_code in OTHER_WRITES)
            rejection = regmap.check_read(address, count)
            if rejection is not None:
                return self._refuse(rejection, False)
            regs = self._registers()
            offset = address - start_address
            registers[offset:offset + count] = regs[address:address + count]
            return None
        if function_code not in WRITE_FUNCTIONS:
            return self._refuse(regmap.Rejection(
                "ILLEGAL_FUNCTION", f"function code {function_code} is not served",
                "6 or 16 (write registers)", str(function_code)), True)
        ints = [int(v) for v in values]
        rejection = regmap.check_write(address, ints)
        if rejection is not None:
            return self._refuse(rejection, True)
        for offset, value in enumerate(ints):
            if address + offset == regmap.TRIGGER:
                self.handshake.write_trigger(value == 1)
            else:
                self.handshake.write_ack(value == 1)
        return None
