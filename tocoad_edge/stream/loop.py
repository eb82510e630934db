"""``run_stream``: read → predict → sinks, accounting every frame (``processed + dropped == captured``)."""
from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal

import numpy as np

from ..errors import ConfigError, TocoadError
from ..runtime.prediction import Prediction, Predictor
from .capture import Source
from .frame import Frame, ReadStatus
from .overlay import draw_overlay
from .sinks.base import Sink, StopStream

log = logging.getLogger(__name__)


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
    review: int = 0             # frames in the bundle's review band (neither OK nor NG)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Telemetry:
    """Counters and rates of one run; thread-safe, so the live view can read it from its own thread."""

    def __init__(self, source: Source, latency_window: int = 100_000, fps_window_s: float = 2.0):
        self.source = source
        self.started = time.monotonic()
        self.processed = 0
        self.ng = 0
        self.review = 0
        self._dropped: dict[str, int] = {}   # frames read from the source but not processed, by reason
        self._lock = threading.Lock()
        self._latencies: collections.deque[float] = collections.deque(maxlen=latency_window)
        self._done_times: collections.deque[float] = collections.deque(maxlen=4096)
        self._fps_window_s = fps_window_s

    def record(self, latency_ms: float, ng: bool, review: bool = False) -> None:
        with self._lock:
            self.processed += 1
            self.ng += int(ng)
            self.review += int(review)
            self._latencies.append(latency_ms)
            self._done_times.append(time.monotonic())

    def record_drop(self, reason: str) -> None:
        with self._lock:
            self._dropped[reason] = self._dropped.get(reason, 0) + 1

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
        # Our counters first, the source's after: a frame is counted captured before it can be processed, so
        # this order keeps captured >= processed even when a frame finishes while the snapshot is taken.
        with self._lock:
            processed, ng, review, dropped_here = self.processed, self.ng, self.review, dict(self._dropped)
        s = self.source.stats()
        lat = self.latencies(recent)
        p50, p99 = (float(v) for v in np.percentile(lat, [50, 99])) if lat.size else (None, None)
        dropped_by_reason = dict(s.dropped_by_reason)
        for reason, n in dropped_here.items():
            dropped_by_reason[reason] = dropped_by_reason.get(reason, 0) + n
        # Frames read but not yet finished are neither processed nor dropped (mid-run only).
        return StreamStats(s.captured, processed, s.dropped + sum(dropped_here.values()), dropped_by_reason, ng,
                           self.fps(), p50, p99, time.monotonic() - self.started, s.state, s.disconnects,
                           s.reconnects, s.last_error, review)


@dataclass
class StreamResult:
    """One processed frame, as the sinks see it."""

    frame: Frame
    prediction: Prediction
    latency_ms: float
    telemetry: Telemetry
    fps: float
    _overlay: np.ndarray | None = field(default=None, repr=False)
    camera: str | None = None       # the camera's id when one process serves several (stream/multicam.py)

    def overlay(self) -> np.ndarray:
        """The frame with heat map, score, verdict, FPS and latency (drawn once, shared by the sinks)."""
        if self._overlay is None:
            p = self.prediction
            self._overlay = draw_overlay(self.frame.image, p.anomaly_map, score=p.score,
                                         decision=p.decision, fps=self.fps, latency_ms=self.latency_ms)
        return self._overlay


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


def run_stream(detector: Predictor, source: Source, sinks: Iterable[Sink] = (), *,
               max_frames: int | None = None, duration_s: float | None = None, read_timeout_s: float = 0.5,
               on_error: Literal["skip", "stop"] = "skip", stop_event: threading.Event | None = None,
               log_every_s: float | None = 10.0, pipelined: bool = False) -> StreamReport:
    """Run ``detector.predict`` on ``source``'s frames and hand each result to every sink.

    Stops at the end of the stream, after ``max_frames`` frames, after ``duration_s`` seconds, when
    ``stop_event`` is set, when a sink asks to (raises ``StopStream``), or when the source fails for good.
    A frame the detector raises a TocoadError on is logged and counted as dropped (``on_error="skip"``) or ends
    the run (``"stop"``, re-raising). ``pipelined``: use ``detector.predict_stream`` (backbone of the next frame
    overlaps the search of this one) where the detector has it. The source and the sinks are closed in every case.
    """
    sinks = list(sinks)
    runner = _Runner(detector, source, sinks, max_frames, duration_s, read_timeout_s, on_error, stop_event,
                     log_every_s)
    try:
        for sink in sinks:
            if not isinstance(sink, Sink):
                raise ConfigError("run_stream got a sink without the Sink methods", expected="write(result), "
                                  "idle(telemetry) and close()", got=type(sink).__name__,
                                  fix="subclass tocoad_edge.stream.sinks.Sink (idle and close default to no-ops)")
        source.start()   # no-op when open_source already started it
        if pipelined and hasattr(detector, "predict_stream"):
            runner.run_pipelined()
        else:
            runner.run_sequential()
    finally:
        source.close()
        for sink in runner.sinks:
            try:
                sink.close()
            except Exception:   # noqa: BLE001 — one failing sink must not keep the others open
                log.exception("closing sink %r failed", sink)
    return final_report(runner.telemetry, runner.end_reason or "stopped")


def final_report(telemetry: Telemetry, end_reason: str) -> StreamReport:
    """The report of a finished run (its source closed, so every frame is processed or dropped)."""
    stats = telemetry.snapshot(recent=None)
    lat = telemetry.latencies()
    report = StreamReport(stats, end_reason, float(lat.mean()) if lat.size else None,
                          stats.latency_ms_p50, stats.latency_ms_p99, stats.processed / max(1e-9, stats.elapsed_s))
    if not report.consistent:   # a bug, never expected: say it loudly
        log.error("frame accounting is off: processed %d + dropped %d != captured %d", stats.processed,
                  stats.dropped, stats.captured)
    return report


class _Runner:
    """The state of one ``run_stream``: when to stop, and what happens to each frame."""

    def __init__(self, detector, source, sinks, max_frames, duration_s, read_timeout_s, on_error, stop_event,
                 log_every_s):
        self.detector, self.source, self.sinks = detector, source, sinks
        self.max_frames, self.read_timeout_s, self.on_error = max_frames, read_timeout_s, on_error
        self.stop_event, self.log_every_s = stop_event, log_every_s
        self.telemetry = Telemetry(source)
        self.deadline = None if duration_s is None else time.monotonic() + duration_s
        self.next_log = time.monotonic() + log_every_s if log_every_s else None
        self.end_reason: str | None = None
        self.pulled = 0
        self.stop_asked = False     # a sink raised StopStream

    def next_frame(self) -> Frame | None:
        """The next frame to process, or None (with ``end_reason`` set) when the run should end."""
        while True:
            now = time.monotonic()
            self.end_reason = stop_reason(self.stop_event, self.stop_asked, self.deadline, now)
            if self.end_reason is None and self.max_frames is not None and self.pulled >= self.max_frames:
                self.end_reason = "max_frames"
            if self.end_reason is not None:
                return None
            if self.next_log is not None and now >= self.next_log:
                _log_progress(self.telemetry.snapshot())
                self.next_log = now + self.log_every_s
            wait = self.read_timeout_s if self.deadline is None else min(self.read_timeout_s, self.deadline - now)
            result = self.source.read(max(0.0, wait))
            if result.status is ReadStatus.OK:
                self.pulled += 1
                return result.frame
            if result.status is ReadStatus.TIMEOUT:
                for sink in self.sinks:
                    sink.idle(self.telemetry)
                continue
            if result.status is ReadStatus.END_OF_STREAM:
                self.end_reason = "end_of_stream"
            else:
                self.end_reason = "source_error"
                log.error("source failed for good: %s", result.error)
            return None

    def done(self, frame: Frame, prediction: Prediction) -> None:
        latency_ms = (time.monotonic() - frame.monotonic) * 1000.0
        decision = prediction.decision
        self.telemetry.record(latency_ms, decision == "NG", decision == "REVIEW")
        item = StreamResult(frame, prediction, latency_ms, self.telemetry, self.telemetry.fps())
        self.stop_asked |= write_to_sinks(self.sinks, item)

    def failed(self, frame: Frame, exc: TocoadError) -> None:
        self.telemetry.record_drop("detector_error")
        if self.on_error == "stop":
            self.end_reason = "detector_error"
            raise exc
        log.error("frame %d skipped: %s", frame.id, exc)

    def run_sequential(self) -> None:
        while (frame := self.next_frame()) is not None:
            try:
                prediction = self.detector.predict(frame.image)
            except TocoadError as exc:
                self.failed(frame, exc)
                continue
            self.done(frame, prediction)

    def run_pipelined(self) -> None:
        while self.end_reason is None:
            in_flight: collections.deque[Frame] = collections.deque()

            def images(in_flight=in_flight):
                while (frame := self.next_frame()) is not None:
                    in_flight.append(frame)
                    yield frame.image

            try:
                for prediction in self.detector.predict_stream(images()):
                    self.done(in_flight.popleft(), prediction)
                return
            except TocoadError as exc:
                # predict_stream raises in order, on the oldest frame in flight, and ends; frames it had
                # already taken are lost with it. Count them, then start a new pipeline on the same source.
                failed = in_flight.popleft()
                for _ in range(len(in_flight)):
                    self.telemetry.record_drop("pipeline_restart")
                self.failed(failed, exc)


def stop_reason(stop_event: threading.Event | None, stop_asked: bool, deadline: float | None,
                now: float) -> str | None:
    """Why a run ends before its source does: ``stopped`` (the stop event, or a sink's ``StopStream``), ``duration``
    (the deadline passed), else None."""
    if (stop_event is not None and stop_event.is_set()) or stop_asked:
        return "stopped"
    if deadline is not None and now >= deadline:
        return "duration"
    return None


def write_to_sinks(sinks: list[Sink], item: StreamResult) -> bool:
    """Hand ``item`` to every sink; True when one of them asked to stop (``StopStream``; the others still got it)."""
    stop_asked = False
    for sink in sinks:
        try:
            sink.write(item)
        except StopStream as stop:
            log.info("%s asked to stop: %s", type(sink).__name__, stop)
            stop_asked = True
    return stop_asked


def _log_progress(s: StreamStats) -> None:
    p99 = f"{s.latency_ms_p99:.0f}" if s.latency_ms_p99 is not None else "-"
    log.info("captured %d, processed %d, dropped %d, NG %d, REVIEW %d, %.1f FPS, p99 %s ms, source %s", s.captured,
             s.processed, s.dropped, s.ng, s.review, s.fps, p99, s.source_state)
