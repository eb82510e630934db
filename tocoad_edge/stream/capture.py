"""``Source``: a capture thread that keeps a bounded buffer filled, reconnects, and counts every frame."""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import cv2

from ..errors import SourceError
from .backoff import Backoff
from .buffer import FrameBuffer
from .frame import Frame, ReadResult, ReadStatus
from .grabbers import Grabber
from .options import SourceOptions

log = logging.getLogger(__name__)

STARTING, STREAMING, RECONNECTING, ENDED, FAILED, CLOSED = (
    "starting", "streaming", "reconnecting", "ended", "failed", "closed")


@dataclass(frozen=True)
class SourceStats:
    captured: int          # frames the capture thread got from the device
    delivered: int         # frames handed out by read()
    dropped: int           # frames pushed out of the buffer or left unread at close
    dropped_by_reason: dict[str, int] = field(default_factory=dict)
    disconnects: int = 0   # times the stream broke
    reconnects: int = 0    # times it came back
    state: str = STARTING
    last_error: str | None = None
    buffer_high_water: int = 0


class Source:
    """Use ``open_source(uri, options)`` to make one. ``read(timeout)`` never blocks longer than ``timeout``."""

    def __init__(self, uri: str, kind: str, grabber: Grabber, options: SourceOptions):
        self.uri = uri
        self.kind = kind
        self.options = options
        self._grabber = grabber
        policy = options.drop_policy
        if policy == "auto":   # a file played in real time behaves like a camera
            policy = "latest" if grabber.live or options.realtime else "block"
        self.drop_policy = policy
        self._buffer = FrameBuffer(options.buffer_size, policy)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._state = STARTING
        self._last_error: str | None = None
        self._disconnects = 0
        self._reconnects = 0
        self._next_id = 0
        self._thread: threading.Thread | None = None
        self._opened = False

    # -- public -----------------------------------------------------------------------------------
    @property
    def description(self) -> str:
        return self._grabber.description

    @property
    def nominal_fps(self) -> float | None:
        return self.options.fps or self._grabber.nominal_fps

    @property
    def state(self) -> str:
        with self._lock:
            return self._state

    def start(self) -> "Source":
        """Connect (raising SourceError now if ``require_initial_connection``) and start capturing."""
        if self._thread is not None:
            return self
        if self.options.require_initial_connection:
            self._grabber.open()
            self._opened = True
            self._set_state(STREAMING)
        self._thread = threading.Thread(target=self._capture_loop, name=f"capture-{self.kind}", daemon=True)
        self._thread.start()
        return self

    def add_listener(self, callback) -> None:
        """``callback()`` whenever a frame is buffered (a multi-camera scheduler waits on one event for all)."""
        self._buffer.add_listener(callback)

    def read(self, timeout: float = 1.0) -> ReadResult:
        frame = self._buffer.get(timeout)
        if frame is not None:
            return ReadResult(ReadStatus.OK, frame)
        with self._lock:
            state, error = self._state, self._last_error
        if state == ENDED:
            return ReadResult(ReadStatus.END_OF_STREAM)
        if state in (FAILED, CLOSED):
            return ReadResult(ReadStatus.ERROR, error=error or f"source {state}")
        return ReadResult(ReadStatus.TIMEOUT, error=error if state == RECONNECTING else None)

    def stats(self) -> SourceStats:
        c = self._buffer.counters()
        with self._lock:
            return SourceStats(c.captured, c.delivered, c.dropped, c.dropped_by_reason, self._disconnects,
                               self._reconnects, self._state, self._last_error, c.high_water)

    def close(self, timeout: float = 5.0) -> SourceStats:
        """Stop capturing; frames still buffered count as dropped. Returns the final counters."""
        self._stop.set()
        interrupt = getattr(self._grabber, "interrupt", None)
        if interrupt is not None:
            interrupt()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("%s: the capture thread is still blocked in the backend after %.0f s; leaving it "
                            "(daemon thread)", self.description, timeout)
        elif self._opened:
            self._grabber.close()
        self._buffer.close()
        with self._lock:
            if self._state not in (ENDED, FAILED):
                self._state = CLOSED
        return self.stats()

    def __enter__(self) -> "Source":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self):
        """Frames until the end of the stream or a permanent error (timeouts are waited out)."""
        while True:
            result = self.read(1.0)
            if result.status is ReadStatus.OK:
                yield result.frame
            elif result.status is not ReadStatus.TIMEOUT:
                return

    # -- capture thread ---------------------------------------------------------------------------
    def _set_state(self, state: str, error: str | None = None) -> None:
        with self._lock:
            self._state = state
            if error is not None:
                self._last_error = error

    def _capture_loop(self) -> None:
        opts = self.options
        backoff = Backoff(opts.reconnect_initial_s, 2.0, opts.reconnect_max_s)
        failures_in_a_row = 0
        period = None
        if opts.realtime and not self._grabber.live:
            fps = self.nominal_fps
            period = 1.0 / fps if fps else None
        next_due = time.monotonic()
        try:
            while not self._stop.is_set():
                if not self._opened:
                    try:
                        self._grabber.open()
                    except SourceError as exc:
                        if not self._retry_after(exc, backoff, failures_in_a_row):
                            return
                        failures_in_a_row += 1
                        continue
                    self._opened = True
                    if self.state != STARTING:
                        with self._lock:
                            self._reconnects += 1
                        log.info("%s: reconnected", self.description)
                    self._set_state(STREAMING)
                if not self._buffer.wait_for_room(self._stop):
                    return
                try:
                    image = self._grabber.grab()
                except (SourceError, cv2.error, OSError) as exc:
                    if self._stop.is_set():
                        return
                    self._grabber.close()
                    self._opened = False
                    with self._lock:
                        self._disconnects += 1
                    err = exc if isinstance(exc, SourceError) else SourceError(
                        f"reading {self.description} failed", got=f"{type(exc).__name__}: {exc}")
                    if not self._retry_after(err, backoff, failures_in_a_row):
                        return
                    failures_in_a_row += 1
                    continue
                if image is None:
                    self._set_state(ENDED)
                    return
                failures_in_a_row = 0
                backoff.reset()
                if period is not None:
                    next_due = max(next_due + period, time.monotonic())
                    if self._stop.wait(max(0.0, next_due - time.monotonic())):
                        return
                frame = Frame(self._next_id, time.time(), time.monotonic(), image)
                self._next_id += 1
                self._buffer.put(frame, self._stop)
        except Exception as exc:   # a bug in a backend or grabber: fail visibly (ERROR), never hang on TIMEOUT
            log.exception("%s: the capture thread failed", self.description)
            self._set_state(FAILED, f"capture thread failed: {type(exc).__name__}: {exc}")
        finally:
            if self._opened:
                self._grabber.close()
                self._opened = False
            self._buffer.finish()

    def _retry_after(self, exc: SourceError, backoff: Backoff, failures_in_a_row: int) -> bool:
        """Wait the next backoff delay; False when reconnecting is off, used up, or the source is closing."""
        opts = self.options
        if not opts.reconnect or (opts.max_reconnects is not None and failures_in_a_row >= opts.max_reconnects):
            log.error("%s: giving up: %s", self.description, exc)
            self._set_state(FAILED, str(exc))
            return False
        delay = backoff.next_delay()
        log.warning("%s: %s; retrying in %.1f s", self.description, exc.message, delay)
        self._set_state(RECONNECTING, str(exc))
        return not self._stop.wait(delay)
