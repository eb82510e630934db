"""Reading HTTP MJPEG (multipart/x-mixed-replace) on the standard library only.

``MjpegReader`` reads an IP camera's MJPEG stream without GStreamer or FFmpeg (socket timeouts, so a stalled
camera raises instead of hanging). Serving one is ``liveview_server`` (the live view, ``MjpegServer``).
"""
from __future__ import annotations

import base64
import http.client
import logging
import socket
import urllib.parse

import numpy as np

from ..errors import SourceError

log = logging.getLogger(__name__)

MAX_PART_BYTES = 64 * 1024 * 1024
_MAX_HEADER_LINES = 64


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ***."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


class MjpegReader:
    """Frames from an ``http(s)://`` MJPEG stream. ``grab()`` returns a BGR image or raises SourceError."""

    live = True
    nominal_fps = None   # MJPEG carries no frame rate

    def __init__(self, url: str, *, timeout_s: float = 5.0):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SourceError("not an HTTP MJPEG URL", expected="http://host[:port]/path",
                              got=redact_url(url))
        self.url = url
        self.description = f"MJPEG stream {redact_url(url)}"
        self.timeout_s = timeout_s
        self._parts = parts
        self._conn: http.client.HTTPConnection | None = None
        self._resp: http.client.HTTPResponse | None = None
        self._boundary = b""
        self._at_part_headers = False   # True when the boundary line was already consumed

    # -- connection -------------------------------------------------------------------------------
    def open(self) -> None:
        p = self._parts
        cls = http.client.HTTPSConnection if p.scheme == "https" else http.client.HTTPConnection
        conn = cls(p.hostname, p.port, timeout=self.timeout_s)
        headers = {"Accept": "multipart/x-mixed-replace, image/jpeg", "Connection": "close"}
        if p.username is not None:
            token = f"{urllib.parse.unquote(p.username)}:{urllib.parse.unquote(p.password or '')}"
            headers["Authorization"] = "Basic " + base64.b64encode(token.encode()).decode()
        path = (p.path or "/") + (f"?{p.query}" if p.query else "")
        try:
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise SourceError(f"cannot connect to {self.description}", got=f"{type(exc).__name__}: {exc}",
                              fix="check the camera is powered, the address and port, and the network") from None
        if resp.status != 200:
            conn.close()
            raise SourceError(f"{self.description} answered HTTP {resp.status} {resp.reason}",
                              expected="HTTP 200 with a multipart/x-mixed-replace body",
                              got=f"HTTP {resp.status}",
                              fix="check the path (and user:password@ in the URL if the camera needs a login)")
        ctype = resp.getheader("Content-Type", "")
        boundary = self._boundary_from(ctype)
        if boundary is None:
            conn.close()
            raise SourceError(f"{self.description} is not an MJPEG stream",
                              expected="Content-Type: multipart/x-mixed-replace; boundary=…", got=ctype or "none",
                              fix="use the camera's MJPEG URL (often /video, /mjpg/video.mjpg or /stream)")
        self._conn, self._resp, self._boundary = conn, resp, boundary
        self._at_part_headers = False

    @staticmethod
    def _boundary_from(content_type: str) -> bytes | None:
        main, _, params = content_type.partition(";")
        if not main.strip().lower().startswith("multipart/"):
            return None
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "boundary" and value.strip():
                value = value.strip().strip('"')
                return value[2:].encode("latin-1") if value.startswith("--") else value.encode("latin-1")
        return None

    def interrupt(self) -> None:
        """Unblock a ``grab`` waiting on the socket (called from another thread at close)."""
        conn = self._conn
        if conn is not None and conn.sock is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = self._resp = None

    # -- parsing ----------------------------------------------------------------------------------
    def _readline(self) -> bytes:
        assert self._resp is not None
        try:
            line = self._resp.readline(65537)
        except (OSError, http.client.HTTPException, ValueError, AttributeError) as exc:
            # ValueError / AttributeError: the response was closed under us by interrupt()/close()
            raise SourceError(f"{self.description} stopped sending", got=f"{type(exc).__name__}: {exc}",
                              fix="the source reconnects by itself; check the camera if this repeats") from None
        if not line:
            raise SourceError(f"{self.description} closed the connection", got="end of the HTTP body",
                              fix="the source reconnects by itself; check the camera if this repeats")
        return line

    def _is_boundary(self, line: bytes) -> bool:
        s = line.strip()
        return s in (b"--" + self._boundary, self._boundary, b"--" + self._boundary + b"--")

    def _read_part(self) -> bytes:
        if not self._at_part_headers:
            for _ in range(_MAX_HEADER_LINES):
                if self._is_boundary(self._readline()):
                    break
            else:
                raise SourceError(f"{self.description}: no multipart boundary found",
                                  expected=f"a line '--{self._boundary.decode('latin-1')}'", got="other data")
        self._at_part_headers = False
        headers: dict[str, str] = {}
        for _ in range(_MAX_HEADER_LINES):
            line = self._readline()
            if line in (b"\r\n", b"\n"):
                break
            key, _, value = line.decode("latin-1").partition(":")
            headers[key.strip().lower()] = value.strip()
        length = headers.get("content-length")
        if length is not None and length.isdigit():
            n = int(length)
            if n > MAX_PART_BYTES:
                raise SourceError(f"{self.description}: a part is too large", expected=f"<= {MAX_PART_BYTES} bytes",
                                  got=f"{n} bytes")
            try:
                data = self._resp.read(n) if self._resp is not None else b""
            except (OSError, http.client.HTTPException, ValueError, AttributeError) as exc:
                raise SourceError(f"{self.description} stopped sending", got=f"{type(exc).__name__}: {exc}") from None
            if len(data) != n:
                raise SourceError(f"{self.description} closed the connection inside a frame",
                                  expected=f"{n} bytes", got=f"{len(data)} bytes")
            return data
        # no Content-Length: the part ends at the next boundary line
        chunks: list[bytes] = []
        size = 0
        while True:
            line = self._readline()
            if self._is_boundary(line):
                self._at_part_headers = True
                break
            chunks.append(line)
            size += len(line)
            if size > MAX_PART_BYTES:
                raise SourceError(f"{self.description}: a part is too large", expected=f"<= {MAX_PART_BYTES} bytes",
                                  got=f"more than {MAX_PART_BYTES} bytes")
        data = b"".join(chunks)
        return data[:-2] if data.endswith(b"\r\n") else data.rstrip(b"\n")

    def grab(self) -> np.ndarray:
        import cv2

        if self._resp is None:
            raise SourceError(f"{self.description} is not connected", fix="call open() first")
        for _ in range(8):   # tolerate a few undecodable parts before calling the stream broken
            data = self._read_part()
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if image is not None:
                return image
            log.warning("%s: skipped a part that is not a decodable JPEG (%d bytes)", self.description, len(data))
        raise SourceError(f"{self.description} sends parts that are not JPEG images",
                          expected="image/jpeg parts", got="8 undecodable parts in a row")
