"""The MQTT topic tree of a plant: where verdicts, status, commands and bundles live.

    {root}/{line}/{gateway}/status                 retained: {"state": "online", model_id, bundle_sha256} while
                                                   connected; the broker publishes the last will
                                                   {"state": "offline"} (retained) when the gateway vanishes
    {root}/{line}/{gateway}/{camera}/verdict       QoS 1, JSON verdict with a per-camera sequence number
    {root}/{line}/{gateway}/{camera}/image/{seq}   QoS 1, JPEG of an NG frame (the verdict with that seq)
    {root}/{line}/{gateway}/rollout                QoS 1 retained: the last rollout / rollback report
    {root}/cmd/{line}/{gateway}                    QoS 1 commands; line and gateway may be globs (line-3/*)
    {root}/bundles/{sha256}/meta                   retained: size, chunk count, chunk size, model id
    {root}/bundles/{sha256}/chunk/{i}              retained: the bundle archive's bytes, in chunks

Plain JSON, not Sparkplug B: Sparkplug B fixes protobuf payloads of typed metrics and a host-application state
machine; verdicts with images and bundle transfers fit it badly, and every MES, historian and dashboard reads
JSON without a protobuf decoder. The hierarchy follows Sparkplug's (group = line, edge node = gateway, device =
camera), and so does the birth/death pattern (retained online + last-will offline).
"""
from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from ..errors import ConfigError

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_GLOB = re.compile(r"^[A-Za-z0-9_.*?\[\]-]+$")


def check_name(what: str, value: str, *, glob: bool = False) -> str:
    """A topic level: letters, digits, ``_ . -`` (and ``* ? [ ]`` for a glob); never MQTT's ``+ # /``."""
    if not isinstance(value, str) or not (_GLOB if glob else _NAME).match(value):
        allowed = "letters, digits, '_', '.', '-'" + (" and the globs '*', '?', '[…]'" if glob else "")
        raise ConfigError(f"{what} is not a valid MQTT topic level", expected=f"one or more of {allowed}",
                          got=repr(value), fix=f"rename the {what} (no '/', '+', '#' or spaces)")
    return value


@dataclass(frozen=True)
class GatewayTopics:
    root: str
    line: str
    gateway: str

    def __post_init__(self) -> None:
        for what in ("root", "line", "gateway"):
            check_name(what, getattr(self, what))

    @property
    def base(self) -> str:
        return f"{self.root}/{self.line}/{self.gateway}"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def rollout(self) -> str:
        return f"{self.base}/rollout"

    def verdict(self, camera: str) -> str:
        return f"{self.base}/{check_name('camera', camera)}/verdict"

    def image(self, camera: str, seq: int) -> str:
        return f"{self.base}/{check_name('camera', camera)}/image/{int(seq)}"

    @property
    def commands(self) -> str:
        """The subscription a gateway makes: every command; ``targets`` picks its own."""
        return f"{self.root}/cmd/#"

    def targets(self, topic: str) -> bool:
        """Whether a command published on ``topic`` (``{root}/cmd/{line-glob}/{gateway-glob}``) is for us."""
        parts = topic.split("/")
        if len(parts) != 4 or parts[0] != self.root or parts[1] != "cmd":
            return False
        return fnmatch.fnmatchcase(self.line, parts[2]) and fnmatch.fnmatchcase(self.gateway, parts[3])


def command_topic(root: str, target: str) -> str:
    """``line-3/*`` → ``{root}/cmd/line-3/*``; a bare line means all its gateways."""
    parts = target.split("/")
    if len(parts) == 1:
        parts.append("*")
    if len(parts) != 2:
        raise ConfigError("a rollout target is LINE or LINE/GATEWAY", expected="e.g. line-3/* or line-3/gw-2",
                          got=repr(target), fix="give one line (glob) and at most one gateway (glob)")
    for p in parts:
        check_name("target", p, glob=True)
    return f"{check_name('root', root)}/cmd/{parts[0]}/{parts[1]}"


def bundle_meta(root: str, sha256: str) -> str:
    return f"{root}/bundles/{sha256}/meta"


def bundle_chunk(root: str, sha256: str, index: int) -> str:
    return f"{root}/bundles/{sha256}/chunk/{int(index)}"


def bundle_all(root: str, sha256: str) -> str:
    return f"{root}/bundles/{sha256}/#"
