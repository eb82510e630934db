"""Live view: an HTTP server with the overlay as an MJPEG stream and a page with score trend, FPS, latency
and frame counts. Meant for a headless Jetson: open ``http://<device>:<port>/`` in a browser.

Routes: ``/`` (the page, ``stream/static/index.html``), ``/stream.mjpg``, ``/snapshot.jpg``, ``/stats.json``.
It binds 127.0.0.1 unless told otherwise. Any other address needs ``auth`` (a token or a password file,
``LiveViewAuth``): every route then answers 401 without it. At most ``max_clients`` connections are served
at once (the rest get 503), each with a ``timeout_s`` socket timeout; see ``liveview_server``.
"""
from __future__ import annotations

import collections
import json
import threading
import time
from pathlib import Path

import cv2

from ...errors import ConfigError
from ..liveview_auth import LiveViewAuth
from ..liveview_server import HttpServer, MjpegBroadcaster, mjpeg_route, send_bytes

STATIC = Path(__file__).resolve().parent.parent / "static"
LOOPBACK = ("127.0.0.1", "::1", "localhost")


class LiveViewSink:
    def __init__(self, host: str = "127.0.0.1", port: int = 8080, *, max_fps: float = 15.0,
                 history: int = 300, jpeg_quality: int = 80, max_width: int = 1280,
                 auth: LiveViewAuth | None = None, max_clients: int = 8, timeout_s: float = 10.0):
        if auth is None and host not in LOOPBACK:
            raise ConfigError(f"the live view would serve {host}:{port} without a login",
                              expected="a token or a password file when binding an address other than 127.0.0.1",
                              got="no live_view_token_file and no live_view_users",
                              fix="set sinks.live_view_token_file (or sinks.live_view_users), or bind 127.0.0.1 "
                                  "and reach it through an SSH tunnel")
        self.broadcaster = MjpegBroadcaster()
        self.max_fps = max_fps
        self.jpeg_quality = jpeg_quality
        self.max_width = max_width
        self._lock = threading.Lock()
        self._scores: collections.deque[tuple[int, float, str]] = collections.deque(maxlen=history)
        self._telemetry = None
        self._stats: dict = {}
        self._stats_at = 0.0
        self._last_publish = 0.0
        self._page = (STATIC / "index.html").read_bytes()
        self.server = HttpServer({"/": self._index, "/index.html": self._index,
                                  "/stream.mjpg": mjpeg_route(self.broadcaster),
                                  "/snapshot.jpg": self._snapshot, "/stats.json": self._stats_route}, host, port,
                                 auth=auth, max_clients=max_clients, timeout_s=timeout_s)
        self.server.start()

    @property
    def url(self) -> str:
        return self.server.url + "/"

    # -- sink -------------------------------------------------------------------------------------
    def write(self, result) -> None:
        p = result.prediction
        with self._lock:
            self._scores.append((result.frame.id, float(p.score), p.decision))
            self._telemetry = result.telemetry
        now = time.monotonic()
        if self.max_fps and now - self._last_publish < 1.0 / self.max_fps:
            return
        self._last_publish = now
        image = result.overlay()
        if image.shape[1] > self.max_width:
            scale = self.max_width / image.shape[1]
            image = cv2.resize(image, (self.max_width, int(image.shape[0] * scale)), interpolation=cv2.INTER_AREA)
        ok, jpg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if ok:
            self.broadcaster.publish(jpg.tobytes())

    def idle(self, telemetry) -> None:
        with self._lock:
            self._telemetry = telemetry

    def close(self) -> None:
        self.server.stop()

    # -- routes -----------------------------------------------------------------------------------
    def _index(self, handler, server) -> None:
        send_bytes(handler, self._page, "text/html; charset=utf-8")

    def _snapshot(self, handler, server) -> None:
        _, jpeg = self.broadcaster.latest()
        if jpeg is None:
            handler.send_error(503, "no frame yet")
            return
        send_bytes(handler, jpeg, "image/jpeg")

    def stats(self) -> dict:
        """What ``/stats.json`` serves (recomputed at most twice a second)."""
        with self._lock:
            telemetry = self._telemetry
            scores = list(self._scores)
            if time.monotonic() - self._stats_at < 0.5 and self._stats:
                return {**self._stats, "scores": scores}
        stats = telemetry.snapshot().as_dict() if telemetry is not None else {}
        with self._lock:
            self._stats, self._stats_at = stats, time.monotonic()
        return {**stats, "scores": scores}

    def _stats_route(self, handler, server) -> None:
        send_bytes(handler, json.dumps(self.stats()).encode(), "application/json")
