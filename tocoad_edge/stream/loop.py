"""``run_stream``: read → predict → sinks, accounting every frame (``processed + dropped == captured``)."""
from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Protocol

import numpy as np

from ..errors import TocoadError
from .frame import Frame, ReadStatus
from .overlay import draw_overlay
from .source import Source

log = logging.getLogger(__name__)


class Prediction(Protocol):
    score: float
    raw_score: float
    is_anomalous: bool
    decision: str
    anomaly_map: np.ndarray
    timings_ms: dict[str, float]


class DetectorLike(Protocol):
    def predict(self, frame: np.ndarray) -> Prediction: ...


@dataclass(frozen=True)
class StreamStats:
    captured: int
    processed: int
    dropped: int
    dropped_by_reason: dict[str, int]
    ng: int
    fps: float                  # processed frames per second over the last few seconds
    latency_ms_p50: float | None   # capture → prediction, over the recent frames
    latency_ms_p99: float | None
    elapsed_s: float
    source_state: str
    disconnects: int
    reconnects: int
    last_error: str | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Telemetry:
    """Counters and rates of one run; thread-safe, so the live view can read it from its own thread."""

    def __init__(self, source: Source, latency_window: int = 100_000, fps_window_s: float = 2.0):
        self.source = source
        self.started = time.monotonic()
        self.processed = 0
        self.failed = 0
        self.ng = 0
        self._lock = threading.Lock()
        self._latencies: collections.deque[float] = collections.deque(maxlen=latency_window)
        self._done_times: collections.deque[float] = collections.deque(maxlen=4096)
        self._fps_window_s = fps_window_s

    def record(self, latency_ms: float, ng: bool) -> None:
        with self._lock:
            self.processed += 1
            self.ng += int(ng)
            self._latencies.append(latency_ms)
            self._done_times.append(time.monotonic())

    def record_failure(self) -> None:
        with self._lock:
            self.failed += 1

    def fps(self) -> float:
        with self._lock:
            now = time.monotonic()
            times = [t for t in self._done_times if now - t <= self._fps_window_s]
        if len(times) < 2:
            return 0.0
        return (len(times) - 1) / max(1e-6, times[-1] - times[0])

    def latencies(self, recent: int | None = None) -> np.ndarray:
        with self._lock:
            values = list(self._latencies)
        return np.asarray(values[-recent:] if recent else values, dtype=np.float64)

    def snapshot(self, recent: int | None = 1000) -> StreamStats:
        s = self.source.stats()
        lat = self.latencies(recent)
        p50, p99 = (float(v) for v in np.percentile(lat, [50, 99])) if lat.size else (None, None)
        with self._lock:
            processed, failed, ng = self.processed, self.failed, self.ng
        dropped_by_reason = dict(s.dropped_by_reason)
        if failed:
            dropped_by_reason["detector_error"] = failed
        # Frames read but not yet finished are neither processed nor dropped: at most one, mid-run.
        return StreamStats(s.captured, processed, s.dropped + failed, dropped_by_reason, ng, self.fps(), p50, p99,
                           time.monotonic() - self.started, s.state, s.disconnects, s.reconnects, s.last_error)


@dataclass
class StreamResult:
    """One processed frame, as the sinks see it."""

    frame: Frame
    prediction: Prediction
    latency_ms: float
    telemetry: Telemetry
    fps: float
    _overlay: np.ndarray | None = field(default=None, repr=False)

    def overlay(self) -> np.ndarray:
        """The frame with heat map, score, verdict, FPS and latency (drawn once, shared by the sinks)."""
        if self._overlay is None:
            p = self.prediction
            self._overlay = draw_overlay(self.frame.image, getattr(p, "anomaly_map", None), score=p.score,
                                         decision=p.decision, fps=self.fps, latency_ms=self.latency_ms)
        return self._overlay


class Sink(Protocol):
    def write(self, result: StreamResult) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class StreamReport:
    stats: StreamStats
    end_reason: str              # "end_of_stream", "max_frames", "duration", "stopped", "source_error"
    latency_ms_mean: float | None
    latency_ms_p50: float | None
    latency_ms_p99: float | None
    fps_overall: float           # processed / elapsed

    @property
    def consistent(self) -> bool:
        return self.stats.processed + self.stats.dropped == self.stats.captured


def run_stream(detector: DetectorLike, source: Source, sinks: Iterable[Sink] = (), *,
               max_frames: int | None = None, duration_s: float | None = None, read_timeout_s: float = 0.5,
               on_error: Literal["skip", "stop"] = "skip", stop_event: threading.Event | None = None,
               log_every_s: float | None = 10.0) -> StreamReport:
    """Run ``detector.predict`` on ``source``'s frames and hand each result to every sink.

    Stops at the end of the stream, after ``max_frames`` processed frames, after ``duration_s`` seconds, when
    ``stop_event`` is set, when a sink asks to (``sink.stop_requested``), or when the source fails for good.
    A frame the detector raises on is logged and counted as dropped (``on_error="skip"``) or ends the run
    (``"stop"``, re-raising). The source and the sinks are closed in every case.
    """
    sinks = list(sinks)
    telemetry = Telemetry(source)
    deadline = None if duration_s is None else time.monotonic() + duration_s
    next_log = time.monotonic() + log_every_s if log_every_s else None
    end_reason = "stopped"
    try:
        source.start()   # no-op when open_source already started it
        while True:
            if stop_event is not None and stop_event.is_set():
                end_reason = "stopped"
                break
            if any(getattr(s, "stop_requested", False) for s in sinks):
                end_reason = "stopped"
                break
            if deadline is not None and time.monotonic() >= deadline:
                end_reason = "duration"
                break
            if max_frames is not None and telemetry.processed + telemetry.failed >= max_frames:
                end_reason = "max_frames"
                break
            if next_log is not None and time.monotonic() >= next_log:
                _log_progress(telemetry.snapshot())
                next_log = time.monotonic() + log_every_s
            wait = read_timeout_s if deadline is None else max(0.0, min(read_timeout_s, deadline - time.monotonic()))
            result = source.read(wait)
            if result.status is ReadStatus.TIMEOUT:
                for sink in sinks:
                    idle = getattr(sink, "idle", None)
                    if idle is not None:
                        idle(telemetry)
                continue
            if result.status is ReadStatus.END_OF_STREAM:
                end_reason = "end_of_stream"
                break
            if result.status is ReadStatus.ERROR:
                end_reason = "source_error"
                log.error("source failed for good: %s", result.error)
                break
            frame = result.frame
            assert frame is not None
            try:
                prediction = detector.predict(frame.image)
            except TocoadError as exc:
                telemetry.record_failure()
                if on_error == "stop":
                    raise
                log.error("frame %d skipped: %s", frame.id, exc)
                continue
            latency_ms = (time.monotonic() - frame.monotonic) * 1000.0
            telemetry.record(latency_ms, prediction.decision == "NG")
            item = StreamResult(frame, prediction, latency_ms, telemetry, telemetry.fps())
            for sink in sinks:
                sink.write(item)
    finally:
        source.close()
        for sink in sinks:
            try:
                sink.close()
            except Exception:   # noqa: BLE001 — one failing sink must not keep the others open
                log.exception("closing sink %r failed", sink)
    stats = telemetry.snapshot(recent=None)
    lat = telemetry.latencies()
    report = StreamReport(stats, end_reason, float(lat.mean()) if lat.size else None, stats.latency_ms_p50,
                          stats.latency_ms_p99, stats.processed / max(1e-9, stats.elapsed_s))
    if not report.consistent:   # a bug, never expected: say it loudly
        log.error("frame accounting is off: processed %d + dropped %d != captured %d", stats.processed,
                  stats.dropped, stats.captured)
    return report


def _log_progress(s: StreamStats) -> None:
    p99 = f"{s.latency_ms_p99:.0f}" if s.latency_ms_p99 is not None else "-"
    log.info("captured %d, processed %d, dropped %d, NG %d, %.1f FPS, p99 %s ms, source %s", s.captured,
             s.processed, s.dropped, s.ng, s.fps, p99, s.source_state)
