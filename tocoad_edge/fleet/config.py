"""Configuration of the fleet parts, as frozen dataclasses read strictly from YAML (``typed_config.from_dict``)."""
from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass, field
from typing import Literal

from ..errors import ConfigError
from ..typed_config import require
from .spool import SpoolLimits
from .topics import GatewayTopics, check_name


@dataclass(frozen=True)
class BrokerConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    password_env: str | None = None     # read the password from this environment variable (keeps it out of YAML)
    tls: bool = False
    ca_file: str | None = None          # CA bundle for the broker's certificate (default: the system's)
    cert_file: str | None = None        # client certificate (mutual TLS)
    key_file: str | None = None
    keepalive_s: int = 30
    reconnect_initial_s: float = 0.5
    reconnect_max_s: float = 5.0

    def __post_init__(self) -> None:
        require(0 < self.port < 65536, "broker.port", "1..65535", self.port)
        require(self.keepalive_s >= 5, "broker.keepalive_s", "an integer >= 5", self.keepalive_s)
        require(0 < self.reconnect_initial_s <= self.reconnect_max_s, "broker.reconnect_initial_s",
                "> 0 and <= reconnect_max_s", self.reconnect_initial_s)
        if (self.cert_file is None) != (self.key_file is None):
            raise ConfigError("a client certificate needs its key (and the other way round)",
                              expected="both broker.cert_file and broker.key_file, or neither",
                              got=f"cert_file={self.cert_file!r}, key_file={self.key_file!r}",
                              fix="set both for mutual TLS, or remove the one given")

    def resolved_password(self) -> str | None:
        if self.password_env is None:
            return self.password
        value = os.environ.get(self.password_env)
        if value is None:
            raise ConfigError(f"environment variable {self.password_env} (broker.password_env) is not set",
                              fix=f"export {self.password_env}=... before starting, or remove broker.password_env")
        return value


def broker_from_url(url: str, **overrides) -> BrokerConfig:
    """``mqtt://[user[:password]@]host[:port]`` or ``mqtts://…`` (TLS, port 8883 by default)."""
    parts = urllib.parse.urlsplit(url if "://" in url else f"mqtt://{url}")
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ConfigError("a broker address is mqtt://HOST[:PORT] or mqtts://HOST[:PORT]",
                          expected="e.g. mqtt://127.0.0.1:1883 or mqtts://user@broker.plant:8883", got=repr(url),
                          fix="give the broker's host and port")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError("the broker port is not a number", got=repr(url), fix="e.g. mqtt://host:1883") from None
    tls = parts.scheme == "mqtts"
    kwargs = dict(host=parts.hostname, port=port or (8883 if tls else 1883), tls=tls,
                  username=urllib.parse.unquote(parts.username) if parts.username else None,
                  password=urllib.parse.unquote(parts.password) if parts.password else None)
    kwargs.update({k: v for k, v in overrides.items() if v is not None})
    return BrokerConfig(**kwargs)


@dataclass(frozen=True)
class MqttSinkConfig:
    """``sinks.mqtt`` of the stream app (YAML only)."""
    line: str
    gateway: str
    spool: str                          # SQLite file of the store-and-forward queue
    root: str = "tocoad"
    camera: str = "cam0"
    broker: BrokerConfig = field(default_factory=BrokerConfig)
    spool_max_mb: float = 256.0         # verdicts + images; past it images are dropped, oldest first
    spool_max_verdicts: int = 1_000_000  # hard cap: past it verdicts are dropped (on_full says which)
    on_full: Literal["drop_oldest", "drop_newest"] = "drop_oldest"
    durability: Literal["normal", "full"] = "normal"
    ng_images: bool = True              # attach a JPEG of each NG frame
    image_max_kb: float = 256.0         # JPEGs are re-encoded smaller, or left out, to fit
    window: int = 100                   # verdicts in flight before waiting for the broker's acknowledgements
    drain_s: float = 5.0                # at close, wait this long for the spool to empty

    def __post_init__(self) -> None:
        GatewayTopics(self.root, self.line, self.gateway)     # checks that each is a valid topic level
        check_name("camera", self.camera)
        require(self.spool_max_mb > 0, "sinks.mqtt.spool_max_mb", "a number > 0", self.spool_max_mb)
        require(self.image_max_kb > 0, "sinks.mqtt.image_max_kb", "a number > 0", self.image_max_kb)
        require(self.window >= 1, "sinks.mqtt.window", "an integer >= 1", self.window)
        require(self.drain_s >= 0, "sinks.mqtt.drain_s", "a number >= 0", self.drain_s)
        self.limits()

    @property
    def topics(self) -> GatewayTopics:
        return GatewayTopics(self.root, self.line, self.gateway)

    def limits(self) -> SpoolLimits:
        return SpoolLimits(max_bytes=int(self.spool_max_mb * (1 << 20)), max_verdicts=self.spool_max_verdicts,
                           on_full=self.on_full, durability=self.durability)
