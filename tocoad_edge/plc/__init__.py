"""PLC gateway: one trigger/result handshake, served over Modbus TCP (pymodbus) or OPC UA (asyncua).

    from tocoad_edge.plc import Gateway, HandshakeConfig, ModbusServer, ModbusConfig

The transports import pymodbus / asyncua only when used (``pip install tocoad-edge[plc]``).
See ``docs/plc.md`` for the register map, the node set and the handshake timing.
"""
from __future__ import annotations

from typing import Any

from .config import (DetectorConfig, GatewayConfig, HandshakeConfig, ModbusConfig, OpcUaConfig, OpcUaSecurityConfig,
                     SourceConfig, load_gateway_config)
from .gateway import Gateway, bundle_hash
from .handshake import Cycle, Handshake
from .signals import Fault, Mode, Phase, Quality, Result, Stage
from .snapshot import Outcome, Snapshot

__all__ = [
    "Cycle", "DetectorConfig", "Fault", "Gateway", "GatewayConfig", "Handshake", "HandshakeConfig", "Mode",
    "ModbusConfig", "ModbusServer", "OpcUaConfig", "OpcUaSecurityConfig", "OpcUaServer", "Outcome", "Phase", "Quality",
    "Result", "Snapshot", "SourceConfig", "Stage", "bundle_hash", "load_gateway_config",
]

_LAZY = {"ModbusServer": ".modbus_server", "OpcUaServer": ".opcua_server"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
