"""A fleet gateway process: camera → hot-swappable detector → MQTT verdicts, with rollouts from the broker.

One MQTT connection (one client id, one last will) carries the verdicts, the retained status and the rollout
commands and reports. After a rollout the gateway restarts on the bundle it served last (``state.json``).
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..runtime.options import DetectorOptions
from ..stream.app import RunSection, SourceSection, source_options
from . import status
from .config import MqttSinkConfig
from .mqtt_link import MqttLink
from .rollout import RolloutAgent, RolloutState
from .sink import MqttSink

log = logging.getLogger("tocoad_edge.fleet")


@dataclass(frozen=True)
class GatewayConfig:
    mqtt: MqttSinkConfig
    install_dir: str                       # rolled-out bundles and state.json
    source: SourceSection = field(default_factory=SourceSection)
    detector: DetectorOptions = field(default_factory=DetectorOptions)
    run: RunSection = field(default_factory=RunSection)
    public_key: str | None = None          # Ed25519 PEM: every bundle must be signed by it (tocoad-sign)


def first_bundle(cfg: GatewayConfig) -> str:
    """The bundle served last (after a rollout), else the configured one."""
    current = RolloutState(Path(cfg.install_dir)).current if Path(cfg.install_dir).is_dir() else None
    if current and Path(current).is_dir():
        return current
    if not cfg.detector.bundle:
        from ..errors import ConfigError

        raise ConfigError("no bundle given", fix="set detector.bundle in the gateway config")
    return str(cfg.detector.bundle)


def run_gateway(cfg: GatewayConfig, stop_event: threading.Event | None = None):
    from ..runtime.hot_swap import HotSwapDetector
    from ..stream.loop import run_stream
    from ..stream.sources import open_source

    d = cfg.detector
    slot = HotSwapDetector.open(first_bundle(cfg), backend=d.backend, precision=d.precision, search=d.search,
                                threads=d.threads, public_key=cfg.public_key)
    topics = cfg.mqtt.topics
    link = MqttLink(cfg.mqtt.broker, f"tocoad-{topics.line}-{topics.gateway}",
                    will=(topics.status, status.offline("connection lost")), max_inflight=cfg.mqtt.window)
    agent = None
    try:
        sink = MqttSink(cfg.mqtt, slot, link=link)
        agent = RolloutAgent(link, topics, slot, cfg.install_dir).start()
        link.start()
        source = open_source(cfg.source.uri, source_options(cfg.source))
        r = cfg.run
        return run_stream(slot, source, [sink], max_frames=r.max_frames, duration_s=r.duration_s,
                          on_error=r.on_error, stop_event=stop_event, log_every_s=r.log_every_s or None)
    finally:
        if agent is not None:
            agent.stop()
        link.stop(goodbye=(topics.status, status.offline("stopped")))
        slot.close()
