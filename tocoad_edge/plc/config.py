"""Gateway configuration: frozen dataclasses read from YAML with ``safe_load`` only (strict, did-you-mean).

See ``docs/plc.md`` for every key. ``load_gateway_config(path)`` is what ``examples/plc_gateway.py`` uses.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from ..errors import ConfigError
from ..runtime.options import DetectorOptions
from ..typed_config import from_dict, load_yaml, require


@dataclass(frozen=True)
class HandshakeConfig:
    mode: Literal["triggered", "free_run"] = "triggered"
    deadline_s: float = 1.0             # trigger → result (and camera silence) limit; past it: Error, no heartbeat
    probe_interval_s: float = 0.1       # how often an idle or faulted gateway checks the camera (and model)
    heartbeat_interval_s: float = 0.1   # heartbeat period while healthy
    fresh_frames: bool = True           # triggered: judge only a frame captured after the trigger (when stamped)

    def __post_init__(self) -> None:
        require(0.01 <= self.deadline_s <= 3600.0, "handshake.deadline_s", "a number of seconds in [0.01, 3600]",
                self.deadline_s)
        require(0.001 <= self.probe_interval_s <= self.deadline_s, "handshake.probe_interval_s",
                f"a number of seconds in [0.001, deadline_s = {self.deadline_s}]", self.probe_interval_s)
        require(0.01 <= self.heartbeat_interval_s <= 60.0, "handshake.heartbeat_interval_s",
                "a number of seconds in [0.01, 60]", self.heartbeat_interval_s)


@dataclass(frozen=True)
class ModbusConfig:
    host: str = "127.0.0.1"             # 0.0.0.0 to accept the PLC from the network
    port: int = 5020                    # 502 is standard (needs root or CAP_NET_BIND_SERVICE); 0: any free port
    score_scale: int = 1000             # score register = round(score × score_scale), saturating at 0 and 65535
    allowed_clients: tuple[str, ...] = ()   # client addresses / networks (10.0.0.5, 10.0.0.0/24); empty: any
    unit_id: int = 0                    # the one unit id served (1-247); 0: answer every unit id
    map_version: int = 1                # 1: result 0-3, REVIEW reads as NG (2); 2: result 4 = REVIEW

    def __post_init__(self) -> None:
        require(self.map_version in (1, 2), "modbus.map_version", "1 (result 0-3, REVIEW reported as NG) or 2 "
                "(result 4 = REVIEW)", self.map_version)
        require(0 <= self.unit_id <= 247, "modbus.unit_id", "0 (any) or a unit id in [1, 247]", self.unit_id)
        for i, entry in enumerate(self.allowed_clients):
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                require(False, f"modbus.allowed_clients[{i}]", "an IP address or network, e.g. 10.0.0.5 or "
                        "10.0.0.0/24", entry)
        require(0 <= self.port <= 65535, "modbus.port", "an integer in [0, 65535]", self.port)
        require(1 <= self.score_scale <= 65535, "modbus.score_scale", "an integer in [1, 65535]", self.score_scale)
        require(bool(self.host.strip()), "modbus.host", "an address such as 0.0.0.0 or 127.0.0.1", self.host)


OpcUaPolicy = Literal["Basic256Sha256", "Aes128Sha256RsaOaep", "Aes256Sha256RsaPss"]
OPCUA_POLICIES: tuple[OpcUaPolicy, ...] = get_args(OpcUaPolicy)   # all of them, in this order
OPCUA_ROLES = ("operator", "viewer")       # operator: may write Trigger and Ack; viewer: reads only


@dataclass(frozen=True)
class OpcUaSecurityConfig:
    """OPC UA security. The default is signed and encrypted; "none" only when a config says so (with a warning)."""
    mode: Literal["sign_and_encrypt", "sign", "none"] = "sign_and_encrypt"
    policies: tuple[OpcUaPolicy, ...] = OPCUA_POLICIES
    certificate: Path | None = None     # server certificate (DER or PEM): tocoad-plc-security make-cert
    private_key: Path | None = None     # its private key (PEM)
    trusted_clients: Path | None = None  # folder of client certificates (DER or PEM) allowed to connect
    users: Path | None = None           # password file: name:role:hash, roles operator / viewer

    def __post_init__(self) -> None:
        require(len(self.policies) > 0, "opcua.security.policies", f"one or more of {list(OPCUA_POLICIES)}",
                self.policies)

    def check_files(self) -> None:
        """Refuse a secured config whose files are missing, before anything listens."""
        if self.mode == "none":
            return
        fixes = {"certificate": "tocoad-plc-security make-cert --out pki/ (then set opcua.security.certificate)",
                 "private_key": "tocoad-plc-security make-cert --out pki/ (then set opcua.security.private_key)",
                 "trusted_clients": "a folder holding the PLC's client certificate (DER or PEM)",
                 "users": "tocoad-plc-security add-user pki/users.txt plc --role operator"}
        for key, fix in fixes.items():
            path = getattr(self, key)
            kind = "folder" if key == "trusted_clients" else "file"
            exists = path is not None and (path.is_dir() if kind == "folder" else path.is_file())
            if not exists:
                raise ConfigError(f"opcua.security.{key} is {'not set' if path is None else 'missing'} "
                                  f"(security mode {self.mode})", expected=f"an existing {kind}",
                                  got=str(path) if path is not None else "nothing",
                                  fix=f"{fix}; or, on an isolated test bench only, opcua.security.mode: none")


@dataclass(frozen=True)
class OpcUaConfig:
    host: str = "127.0.0.1"
    port: int = 4840                    # 0: any free port
    path: str = "/tocoad/"              # endpoint: opc.tcp://host:port/path
    namespace_uri: str = "urn:tocoad-edge:plc"
    object_name: str = "Gateway"        # the object under Objects that holds the node set
    security: OpcUaSecurityConfig = field(default_factory=OpcUaSecurityConfig)

    def __post_init__(self) -> None:
        require(0 <= self.port <= 65535, "opcua.port", "an integer in [0, 65535]", self.port)
        require(self.path.startswith("/"), "opcua.path", "a path starting with '/'", self.path)
        require(bool(self.namespace_uri.strip()), "opcua.namespace_uri", "a non-empty URI", self.namespace_uri)
        require(self.object_name.isidentifier(), "opcua.object_name", "a plain identifier", self.object_name)


@dataclass(frozen=True)
class SourceConfig:
    # tocoad_edge.stream.open_source: 0, /dev/video0, rtsp://…, a folder; or simulated
    uri: str
    options: dict[str, str | int | float | bool | None] = field(default_factory=dict)   # SourceOptions keys


# The detector: section is the runtime's DetectorOptions, the same type as the stream app's detector: section.
DetectorConfig = DetectorOptions    # the name this module exported before; kept for embedding programs


@dataclass(frozen=True)
class GatewayConfig:
    source: SourceConfig
    detector: DetectorOptions
    transport: Literal["modbus", "opcua"] = "modbus"
    handshake: HandshakeConfig = field(default_factory=HandshakeConfig)
    modbus: ModbusConfig = field(default_factory=ModbusConfig)
    opcua: OpcUaConfig = field(default_factory=OpcUaConfig)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


def gateway_bundle(cfg: GatewayConfig) -> Path:
    """``detector.bundle``: optional in DetectorOptions (the stream app takes it as a flag), required here."""
    if cfg.detector.bundle is None:
        raise ConfigError("missing config key 'detector.bundle'", expected="a bundle folder written by tocoad-export",
                          got="none", fix="add 'detector.bundle' to the config")
    return cfg.detector.bundle


def load_gateway_config(path: str | Path) -> GatewayConfig:
    """Read a gateway YAML file strictly: unknown keys, wrong types and out-of-range values are errors.

    ``source.options`` are checked against ``tocoad_edge.stream.SourceOptions`` here too, so a typo fails
    at load time with a did-you-mean, before the bundle or the camera is opened.
    """
    cfg = from_dict(GatewayConfig, load_yaml(path))
    gateway_bundle(cfg)     # refused at load time, before anything is opened
    if cfg.transport == "opcua":
        cfg.opcua.security.check_files()
    if cfg.source.options and cfg.source.uri != "simulated":
        try:
            from ..stream.options import SourceOptions
        except ImportError:     # checked again by open_source, which then says what is missing
            return cfg
        from_dict(SourceOptions, dict(cfg.source.options), "source.options")
    return cfg
