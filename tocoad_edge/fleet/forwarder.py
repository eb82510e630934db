"""The background thread that empties the spool into the broker, oldest first, so the inspection loop never
waits on the network.

A window of verdicts (and their images) is published at QoS 1; a verdict leaves the spool only when the broker
has acknowledged it and every verdict before it (acks are taken as a prefix, so a replay never delivers a later
verdict before an earlier one). On a disconnect the window is dropped and replayed from the spool after the
reconnect: verdicts the broker had but had not acknowledged arrive twice, with the same ``seq``.
"""
from __future__ import annotations

import logging
import threading
import time

from .mqtt_link import MqttLink
from .spool import Spool
from .topics import GatewayTopics

log = logging.getLogger("tocoad_edge.fleet")


class Forwarder:
    def __init__(self, spool: Spool, link: MqttLink, topics: GatewayTopics, *, window: int = 100,
                 ack_timeout_s: float = 10.0):
        self.spool, self.link, self.topics = spool, link, topics
        self.window, self.ack_timeout_s = window, ack_timeout_s
        self.published = 0            # verdicts acknowledged by the broker (this process)
        self.replays = 0              # windows given up (disconnect / timeout) and sent again
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tocoad-mqtt-forwarder", daemon=True)

    def start(self) -> "Forwarder":
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def drain(self, timeout_s: float) -> bool:
        """Wait until the spool is empty (True) or ``timeout_s`` has passed (False)."""
        deadline = time.monotonic() + timeout_s
        while len(self.spool) and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.02)
        return len(self.spool) == 0

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=self.ack_timeout_s + 5)

    # -- the thread -----------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            if not self.link.connected.wait(0.2):
                continue
            batch = self.spool.peek(self.window)
            if not batch:
                self._wake.wait(0.2)
                self._wake.clear()
                continue
            try:
                acked = self._send(batch)
            except Exception:   # noqa: BLE001 — the forwarder must outlive any one bad batch; it retries
                log.exception("publishing a batch of verdicts failed; retrying")
                acked = []
                time.sleep(0.5)
            if acked:
                self.spool.ack(acked)
                self.published += len(acked)
            if len(acked) < len(batch):
                self.replays += 1

    def _send(self, batch) -> list[int]:
        pending = []
        for e in batch:
            infos = []
            if e.image is not None:
                infos.append(self.link.publish(self.topics.image(e.camera, e.seq), e.image))
            infos.append(self.link.publish(self.topics.verdict(e.camera), e.payload))
            pending.append((e.id, infos))
        acked: list[int] = []
        deadline = time.monotonic() + self.ack_timeout_s
        for entry_id, infos in pending:
            for info in infos:
                try:
                    while not info.is_published():
                        if self._stop.is_set() or not self.link.connected.is_set() or time.monotonic() > deadline:
                            return acked
                        info.wait_for_publish(0.05)
                except (RuntimeError, ValueError):   # paho: not queued (no connection); replayed after reconnect
                    return acked
            acked.append(entry_id)
        return acked
