"""The consumer side (an MES adapter, a historian, a test): subscribe to verdicts and keep each one once.

Uses a persistent session (fixed client id, ``clean_session=False``) so verdicts published while the consumer is
briefly away are queued by the broker, and ``verdict.Deduplicator`` to drop the repeats at-least-once delivery
brings.
"""
from __future__ import annotations

import json
import threading

from .config import BrokerConfig
from .mqtt_link import QOS, make_client
from .verdict import Deduplicator


class VerdictCollector:
    def __init__(self, broker: BrokerConfig, client_id: str, topic_filter: str = "tocoad/+/+/+/verdict"):
        self.topic_filter = topic_filter
        self.dedup = Deduplicator()
        self.received = 0                       # messages, duplicates included
        self.verdicts: list[dict] = []          # each verdict once, in arrival order (+ "_topic")
        self.images: dict[tuple[str, int], bytes] = {}
        self.ready = threading.Event()
        self._lock = threading.Lock()
        c = make_client(broker, client_id, clean_session=False)
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        self.client = c
        self.broker = broker

    def start(self, timeout_s: float = 10.0) -> "VerdictCollector":
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=self.broker.keepalive_s)
        self.client.loop_start()
        self.ready.wait(timeout_s)
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def snapshot(self) -> list[dict]:
        with self._lock:
            return list(self.verdicts)

    def _on_connect(self, client, _userdata, _flags, reason_code, _properties) -> None:
        if not reason_code.is_failure:
            image_filter = self.topic_filter.rsplit("/", 1)[0] + "/image/+"
            client.subscribe([(self.topic_filter, QOS), (image_filter, QOS)])
            self.ready.set()

    def _on_message(self, _client, _userdata, msg) -> None:
        if "/image/" in msg.topic:
            camera, seq = msg.topic.split("/")[-3], int(msg.topic.rsplit("/", 1)[1])
            with self._lock:
                self.images[(camera, seq)] = msg.payload
            return
        record = json.loads(msg.payload)
        record["_topic"] = msg.topic
        with self._lock:
            self.received += 1
            if self.dedup.accept(msg.topic, record["seq"]):
                self.verdicts.append(record)
