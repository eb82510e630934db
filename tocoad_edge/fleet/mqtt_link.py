"""One MQTT connection of a gateway (paho-mqtt): QoS 1, TLS, user/password, a retained birth and a last will,
reconnect with capped exponential backoff, subscriptions renewed on every reconnect.

The last will (``offline``, retained) is published by the broker when the gateway vanishes without saying goodbye;
the birth (``online`` with the model id, retained) is published on every (re)connect and whenever it changes, so a
dashboard always finds the current state of every gateway by subscribing to ``{root}/+/+/status``.
"""
from __future__ import annotations

import logging
import ssl
import threading
from typing import Callable

from ..errors import ConfigError, ResourceError
from .config import BrokerConfig

log = logging.getLogger("tocoad_edge.fleet")

QOS = 1


def _paho():
    try:
        import paho.mqtt.client as mqtt
    except ImportError as exc:
        raise ResourceError("MQTT needs the 'paho-mqtt' package", got=str(exc),
                            fix="pip install 'tocoad-edge[fleet]'") from None
    return mqtt


def make_client(cfg: BrokerConfig, client_id: str, *, clean_session: bool):
    """A paho client (MQTT 3.1.1) with the credentials, TLS and reconnect backoff of ``cfg``; not yet connected."""
    mqtt = _paho()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session,
                    protocol=mqtt.MQTTv311)
    if cfg.username is not None:
        c.username_pw_set(cfg.username, cfg.resolved_password())
    if cfg.tls:
        try:
            c.tls_set(ca_certs=cfg.ca_file, certfile=cfg.cert_file, keyfile=cfg.key_file,
                      cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError("cannot set up TLS for the broker connection", got=str(exc),
                              fix="check broker.ca_file / cert_file / key_file are readable PEM files") from None
    c.reconnect_delay_set(min_delay=cfg.reconnect_initial_s, max_delay=cfg.reconnect_max_s)  # type: ignore[arg-type]
    return c


class MqttLink:
    def __init__(self, cfg: BrokerConfig, client_id: str, *, will: tuple[str, bytes] | None = None,
                 max_inflight: int = 100):
        self.cfg = cfg
        self.client_id = client_id
        self.connected = threading.Event()
        self.connects = 0
        self.last_error: str | None = None
        self._birth: tuple[str, bytes] | None = None
        self._subscriptions: dict[str, Callable] = {}
        self._lock = threading.Lock()
        c = make_client(cfg, client_id, clean_session=True)
        if will is not None:
            c.will_set(will[0], will[1], qos=QOS, retain=True)
        c.max_inflight_messages_set(max_inflight)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        self.client = c

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self) -> "MqttLink":
        """Connect in the background; paho keeps reconnecting (with backoff) while the broker is away."""
        self.client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive_s)
        self.client.loop_start()
        return self

    def wait_connected(self, timeout: float) -> bool:
        return self.connected.wait(timeout)

    def stop(self, goodbye: tuple[str, bytes] | None = None, timeout: float = 2.0) -> None:
        """Publish ``goodbye`` (retained, e.g. an explicit offline) when connected, then disconnect."""
        if goodbye is not None and self.connected.is_set():
            info = self.client.publish(goodbye[0], goodbye[1], qos=QOS, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                pass
        self.client.disconnect()
        self.client.loop_stop()

    # -- messages ------------------------------------------------------------------------------------
    def publish(self, topic: str, payload: bytes, *, retain: bool = False):
        """QoS 1. Returns paho's ``MQTTMessageInfo`` (``is_published()`` once the broker has acknowledged it)."""
        return self.client.publish(topic, payload, qos=QOS, retain=retain)

    def set_birth(self, topic: str, payload: bytes) -> None:
        """The retained status published now (if connected) and after every reconnect."""
        with self._lock:
            self._birth = (topic, payload)
        if self.connected.is_set():
            self.client.publish(topic, payload, qos=QOS, retain=True)

    def subscribe(self, topic_filter: str, callback: Callable[[str, bytes], None]) -> None:
        """``callback(topic, payload)`` for each message matching ``topic_filter`` (renewed on reconnect)."""
        def on_message(_client, _userdata, msg, callback=callback):
            try:
                callback(msg.topic, msg.payload)
            except Exception:   # noqa: BLE001 — a failing handler must not kill paho's network thread
                log.exception("handler for %s failed", msg.topic)

        with self._lock:
            self._subscriptions[topic_filter] = on_message
        self.client.message_callback_add(topic_filter, on_message)
        if self.connected.is_set():
            self.client.subscribe(topic_filter, qos=QOS)

    def unsubscribe(self, topic_filter: str) -> None:
        with self._lock:
            self._subscriptions.pop(topic_filter, None)
        self.client.message_callback_remove(topic_filter)
        self.client.unsubscribe(topic_filter)

    # -- paho callbacks (paho's network thread) --------------------------------------------------------
    def _on_connect(self, client, _userdata, _flags, reason_code, _properties) -> None:
        if reason_code.is_failure:
            self.last_error = f"broker refused the connection: {reason_code}"
            log.error("MQTT %s:%d: %s", self.cfg.host, self.cfg.port, self.last_error)
            return
        with self._lock:
            birth, subs = self._birth, list(self._subscriptions)
        for topic_filter in subs:
            client.subscribe(topic_filter, qos=QOS)
        if birth is not None:
            client.publish(birth[0], birth[1], qos=QOS, retain=True)
        self.connects += 1
        self.connected.set()
        log.info("MQTT connected to %s:%d as %s", self.cfg.host, self.cfg.port, self.client_id)

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _properties) -> None:
        if self.connected.is_set():
            log.warning("MQTT disconnected from %s:%d (%s); reconnecting", self.cfg.host, self.cfg.port, reason_code)
        self.connected.clear()
