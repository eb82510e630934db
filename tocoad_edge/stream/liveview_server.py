"""Serving MJPEG over HTTP (standard library only): the live view's server, and an MJPEG camera of your own.

``MjpegBroadcaster`` holds the latest JPEG; ``HttpServer`` serves GET routes with

* a cap on concurrent clients (``max_clients``): one thread per client, never more; a client over the cap gets
  ``503`` with ``Retry-After`` from one small refusal thread, so a flood never blocks ``accept``;
* a socket timeout (``timeout_s``) on every client: one that sends its request slowly, or stops reading the
  stream, is dropped after that long and its slot freed;
* optional auth (``LiveViewAuth``): ``401`` with a ``WWW-Authenticate`` challenge before any route runs.

The inspection loop only ever calls ``MjpegBroadcaster.publish`` (replace the latest JPEG, wake the waiters):
each client's thread sends at its own pace and skips the frames it was too slow for, so a slow client can
never hold up ``write()``.
"""
from __future__ import annotations

import http.server
import logging
import queue
import re
import socket
import threading
import urllib.parse
from typing import Callable

from ..errors import ResourceError
from .liveview_auth import LiveViewAuth

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5
_REFUSAL_QUEUE = 64     # busy clients waiting for their 503; beyond this they are closed without one


class MjpegBroadcaster:
    """The latest JPEG, handed to any number of HTTP clients; each waits for the next one."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._jpeg: bytes | None = None
        self._seq = 0

    def publish(self, jpeg: bytes) -> None:
        with self._cond:
            self._jpeg = jpeg
            self._seq += 1
            self._cond.notify_all()

    def latest(self) -> tuple[int, bytes | None]:
        with self._cond:
            return self._seq, self._jpeg

    def wait_next(self, after_seq: int, timeout: float) -> tuple[int, bytes] | None:
        with self._cond:
            if not self._cond.wait_for(lambda: self._seq > after_seq and self._jpeg is not None, timeout):
                return None
            assert self._jpeg is not None
            return self._seq, self._jpeg


Route = Callable[[http.server.BaseHTTPRequestHandler, "HttpServer"], None]


class _BoundedServer(http.server.ThreadingHTTPServer):
    """ThreadingHTTPServer with at most ``max_clients`` handler threads; the rest are refused with a 503."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type, max_clients: int):
        self.max_clients = max_clients
        self.slots = threading.BoundedSemaphore(max_clients)
        self.refusals: queue.Queue[socket.socket | None] = queue.Queue(_REFUSAL_QUEUE)
        self.refused_busy = 0
        super().__init__(address, handler)

    def process_request(self, request, client_address) -> None:  # type: ignore[override]
        if not self.slots.acquire(blocking=False):
            self.refused_busy += 1
            log.warning("live view: refused %s: %d clients already connected (max_clients)", client_address[0],
                        self.max_clients)
            try:
                self.refusals.put_nowait(request)
            except queue.Full:
                self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:  # type: ignore[override]
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def refuse_loop(self) -> None:
        body = (f"503 the live view is busy: {self.max_clients} clients are connected, which is its limit "
                f"(live_view_max_clients). Retry in {RETRY_AFTER_S} s, or close another viewer.\n").encode()
        reply = (f"HTTP/1.0 503 Service Unavailable\r\nRetry-After: {RETRY_AFTER_S}\r\n"
                 f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
                 f"Connection: close\r\n\r\n").encode() + body
        while True:
            sock = self.refusals.get()
            if sock is None:
                return
            try:
                sock.settimeout(1.0)
                sock.recv(65536)            # read the request first: closing unread data would reset the reply
                sock.sendall(reply)
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            finally:
                sock.close()


class HttpServer:
    """A small threaded HTTP server with GET routes; ``stop()`` ends streaming responses too.

    ``max_clients`` concurrent clients (the rest get 503), ``timeout_s`` per socket operation, and ``auth``
    (None: open) checked before every route.
    """

    def __init__(self, routes: dict[str, Route], host: str = "127.0.0.1", port: int = 0, *,
                 auth: LiveViewAuth | None = None, max_clients: int = 8, timeout_s: float = 10.0):
        self.routes = routes
        self.auth = auth
        self.refused_auth = 0
        self.stopping = threading.Event()
        server_ref = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"
            timeout = timeout_s         # StreamRequestHandler sets it on the socket: reads and writes

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                url = urllib.parse.urlsplit(self.path)
                if server_ref.auth is not None and not server_ref.auth.allows(self.headers.get("Authorization"),
                                                                              url.query):
                    server_ref.refused_auth += 1
                    log.warning("live view: refused %s %s: no valid token or login", self.client_address[0],
                                url.path)
                    send_bytes(self, b"401 the live view needs a login: open /?token=<token> (the token in "
                                     b"sinks.live_view_token_file) or sign in with a user of sinks.live_view_users\n",
                               "text/plain; charset=utf-8", status=401,
                               headers={"WWW-Authenticate": server_ref.auth.challenge})
                    return
                route = server_ref.routes.get(url.path)
                if route is None:
                    self.send_error(404, "not found")
                    return
                try:
                    route(self, server_ref)
                except OSError:     # the client went away, or stopped reading for timeout_s
                    pass

            def log_message(self, fmt: str, *args) -> None:
                log.debug("%s %s", self.address_string(), re.sub(r"token=[^&\s\"]*", "token=***", fmt % args))

        try:
            self._server = _BoundedServer((host, port), Handler, max_clients)
        except OSError as exc:
            raise ResourceError(f"cannot listen on {host}:{port}", got=str(exc),
                                fix="choose another port (or 0 for any free port)") from None
        self._thread: threading.Thread | None = None
        self._refuser: threading.Thread | None = None

    @property
    def host(self) -> str:
        return self._server.server_address[0]

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def refused_busy(self) -> int:
        return self._server.refused_busy

    def start(self) -> "HttpServer":
        self._refuser = threading.Thread(target=self._server.refuse_loop, name=f"http-{self.port}-503", daemon=True)
        self._refuser.start()
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"http-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
        if self._refuser is not None:
            self._server.refusals.put(None)
            self._refuser.join(timeout=5)
        self._server.server_close()

    def __enter__(self) -> "HttpServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def send_bytes(handler: http.server.BaseHTTPRequestHandler, body: bytes, content_type: str, *, status: int = 200,
               headers: dict[str, str] | None = None) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.send_header("Cache-Control", "no-store")
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(body)


def mjpeg_route(broadcaster: MjpegBroadcaster, boundary: str = "frame") -> Route:
    """A route that streams every new JPEG of ``broadcaster`` until the client leaves or the server stops."""

    def route(handler: http.server.BaseHTTPRequestHandler, server: HttpServer) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={boundary}")
        handler.send_header("Cache-Control", "no-store")
        handler.end_headers()
        seq = 0
        while not server.stopping.is_set():
            item = broadcaster.wait_next(seq, timeout=0.25)
            if item is None:
                continue
            seq, jpeg = item        # the newest frame: those published while this client was sending are skipped
            handler.wfile.write(b"--" + boundary.encode() + b"\r\nContent-Type: image/jpeg\r\n"
                                + f"Content-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n")
            handler.wfile.flush()

    return route


class MjpegServer(HttpServer):
    """Serves ``broadcaster`` at ``path`` (an MJPEG camera of your own: tests, re-streaming)."""

    def __init__(self, broadcaster: MjpegBroadcaster, host: str = "127.0.0.1", port: int = 0,
                 path: str = "/stream.mjpg"):
        self.broadcaster = broadcaster
        self.path = path
        super().__init__({path: mjpeg_route(broadcaster)}, host, port)

    @property
    def stream_url(self) -> str:
        return self.url + self.path
