"""``run_cameras``: several cameras through one process, one detector per bundle, batched inference.

Each camera keeps its own capture thread, bounded buffer and counters (a ``Source`` from ``open_source``); one
scheduler thread takes the next frame of every camera that has one, and hands the frames of cameras sharing a
detector to it in one ``predict_batch`` call (one backend call when the bundle's model has a batch axis:
``tocoad-export bundle --dynamic-batch``; a batch-1 model runs them one by one). So:

* a camera's frames are processed in capture order (one reader, one frame per camera per round);
* a slow, silent or dead camera never stalls the others: its buffer is read without waiting (``read(0)``), and the
  scheduler waits on one event that every camera's capture thread sets when it buffers a frame;
* every camera keeps the accounting of ``run_stream``: captured = processed + dropped, per camera;
* the sinks get each result with its camera's id (``StreamResult.camera``; JSON lines and MQTT carry it).
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Literal, Sequence

import numpy as np

from ..errors import ConfigError, TocoadError
from ..runtime.prediction import Prediction, Predictor
from .capture import Source
from .frame import Frame, ReadStatus
from .loop import StreamReport, StreamResult, Telemetry, final_report, stop_reason, write_to_sinks
from .sinks.base import Sink

log = logging.getLogger(__name__)


@dataclass
class Camera:
    """One camera of a multi-camera run: its id (in every result), its source, and the detector of its bundle
    (cameras on the same bundle pass the same detector object and are batched together)."""

    id: str
    source: Source
    detector: Predictor


@dataclass(frozen=True)
class MultiCamReport:
    cameras: dict[str, StreamReport]   # per camera, as run_stream reports one
    end_reason: str                    # "end_of_stream", "max_frames", "duration", "stopped", "source_error"
    elapsed_s: float
    batches: int                       # backend batches (predict_batch calls with more than one frame)
    batched_frames: int                # frames scored in those batches
    latency_ms_p50: float | None       # over every camera's frames
    latency_ms_p99: float | None

    @property
    def processed(self) -> int:
        return sum(r.stats.processed for r in self.cameras.values())

    @property
    def fps_total(self) -> float:
        return self.processed / max(1e-9, self.elapsed_s)

    @property
    def consistent(self) -> bool:
        return all(r.consistent for r in self.cameras.values())


@dataclass
class _CameraState:
    camera: Camera
    telemetry: Telemetry
    pulled: int = 0
    end_reason: str | None = None
    latencies: list[float] = field(default_factory=list)


def run_cameras(cameras: Sequence[Camera], sinks: Iterable[Sink] = (), *, max_frames: int | None = None,
                duration_s: float | None = None, on_error: Literal["skip", "stop"] = "skip",
                stop_event: threading.Event | None = None, log_every_s: float | None = 10.0, batch: bool = True,
                idle_s: float = 0.5) -> MultiCamReport:
    """Run every camera until it ends (end of stream, failed for good, ``max_frames`` frames of its own), or all
    of them until ``duration_s``, ``stop_event`` or a sink's ``StopStream``. ``batch=False`` scores frame by frame
    (for comparison). Sources and sinks are closed in every case; the report has each camera's ``StreamReport``."""
    cameras = list(cameras)
    ids = [c.id for c in cameras]
    if not cameras:
        raise ConfigError("run_cameras needs at least one camera", expected="a list of Camera(id, source, detector)",
                          got="an empty list")
    if len(set(ids)) != len(ids):
        raise ConfigError("camera ids must be unique", expected="one id per camera",
                          got=", ".join(sorted({i for i in ids if ids.count(i) > 1})), fix="rename the repeated ids")
    sinks = list(sinks)
    sched = _Scheduler(cameras, sinks, max_frames, duration_s, on_error, stop_event, log_every_s, batch, idle_s)
    try:
        for sink in sinks:
            if not isinstance(sink, Sink):
                raise ConfigError("run_cameras got a sink without the Sink methods",
                                  expected="write(result), idle(telemetry) and close()", got=type(sink).__name__,
                                  fix="subclass tocoad_edge.stream.sinks.Sink")
        sched.run()
    finally:
        for state in sched.states:
            state.camera.source.close()
        for sink in sinks:
            try:
                sink.close()
            except Exception:   # noqa: BLE001 — one failing sink must not keep the others open
                log.exception("closing sink %r failed", sink)
    reports = {s.camera.id: final_report(s.telemetry, s.end_reason or sched.end_reason or "stopped")
               for s in sched.states}
    lat = np.asarray([v for s in sched.states for v in s.latencies], dtype=np.float64)
    p50, p99 = (float(v) for v in np.percentile(lat, [50, 99])) if lat.size else (None, None)
    return MultiCamReport(reports, sched.overall_reason(), time.monotonic() - sched.started, sched.batches,
                          sched.batched_frames, p50, p99)


class _Scheduler:
    def __init__(self, cameras: list[Camera], sinks: list[Sink], max_frames: int | None, duration_s: float | None,
                 on_error: str, stop_event: threading.Event | None, log_every_s: float | None, batch: bool,
                 idle_s: float) -> None:
        self.states = [_CameraState(c, Telemetry(c.source)) for c in cameras]
        self.sinks, self.max_frames, self.on_error = sinks, max_frames, on_error
        self.stop_event, self.log_every_s, self.batch, self.idle_s = stop_event, log_every_s, batch, idle_s
        self.started = time.monotonic()
        self.deadline = None if duration_s is None else self.started + duration_s
        self.next_log = self.started + log_every_s if log_every_s else None
        self.end_reason: str | None = None     # the whole run's, when it ended before every camera did
        self.stop_asked = False
        self.batches = self.batched_frames = 0
        self.wake = threading.Event()

    def overall_reason(self) -> str:
        if self.end_reason is not None:
            return self.end_reason
        reasons = {s.end_reason for s in self.states}
        if reasons == {"source_error"}:
            return "source_error"                # every camera failed for good
        return "max_frames" if reasons <= {"max_frames", "source_error"} else "end_of_stream"

    def run(self) -> None:
        for state in self.states:
            state.camera.source.add_listener(self.wake.set)
            state.camera.source.start()          # no-op when already started
        while True:
            now = time.monotonic()
            self.end_reason = stop_reason(self.stop_event, self.stop_asked, self.deadline, now)
            active = [s for s in self.states if s.end_reason is None]
            if self.end_reason is not None or not active:
                return
            if self.next_log is not None and self.log_every_s and now >= self.next_log:
                for s in active:
                    log.info("camera %s: %s", s.camera.id, _progress(s.telemetry))
                self.next_log = now + self.log_every_s
            self.wake.clear()                    # cleared before reading: a frame buffered from now on sets it
            ready = [(s, frame) for s in active if (frame := self._take(s)) is not None]
            if ready:
                self._process(ready)
                continue
            wait = self.idle_s if self.deadline is None else max(0.0, min(self.idle_s, self.deadline - now))
            if not self.wake.wait(wait):
                for s in active:
                    for sink in self.sinks:
                        sink.idle(s.telemetry)

    def _take(self, s: _CameraState) -> Frame | None:
        """The camera's next frame, without waiting; ends the camera on end of stream, failure or its max_frames."""
        if self.max_frames is not None and s.pulled >= self.max_frames:
            self._end(s, "max_frames")
            return None
        result = s.camera.source.read(0.0)
        if result.status is ReadStatus.OK:
            s.pulled += 1
            return result.frame
        if result.status is ReadStatus.END_OF_STREAM:
            self._end(s, "end_of_stream")
        elif result.status is ReadStatus.ERROR:
            log.error("camera %s failed for good: %s", s.camera.id, result.error)
            self._end(s, "source_error")
        return None

    def _end(self, s: _CameraState, reason: str) -> None:
        s.end_reason = reason
        s.camera.source.close()                  # stop capturing now; unread frames count as dropped
        log.info("camera %s ended: %s", s.camera.id, reason)

    def _process(self, ready: list[tuple[_CameraState, Frame]]) -> None:
        groups: dict[int, list[tuple[_CameraState, Frame]]] = {}
        for item in ready:                       # cameras sharing a detector share a batch
            groups.setdefault(id(item[0].camera.detector), []).append(item)
        for items in groups.values():
            detector = items[0][0].camera.detector
            predict_batch = getattr(detector, "predict_batch", None)
            if self.batch and predict_batch is not None and len(items) > 1:
                try:
                    predictions = predict_batch([f.image for _, f in items], [f.id for _, f in items])
                except TocoadError as exc:
                    log.warning("a batch of %d frames failed (%s); scoring them one by one", len(items), exc)
                else:
                    self.batches += 1
                    self.batched_frames += len(items)
                    for (s, frame), prediction in zip(items, predictions):
                        self._done(s, frame, prediction)
                    continue
            for s, frame in items:               # batch-1 detectors, batching off, or a batch with a bad frame
                try:
                    prediction = detector.predict(frame.image)
                except TocoadError as exc:
                    self._failed(s, frame, exc)
                    continue
                self._done(s, frame, prediction)

    def _done(self, s: _CameraState, frame: Frame, prediction: Prediction) -> None:
        latency_ms = (time.monotonic() - frame.monotonic) * 1000.0
        s.telemetry.record(latency_ms, prediction.decision == "NG")
        s.latencies.append(latency_ms)
        item = StreamResult(frame, prediction, latency_ms, s.telemetry, s.telemetry.fps(), camera=s.camera.id)
        self.stop_asked |= write_to_sinks(self.sinks, item)

    def _failed(self, s: _CameraState, frame: Frame, exc: TocoadError) -> None:
        s.telemetry.record_drop("detector_error")
        if self.on_error == "stop":
            self.end_reason = "detector_error"
            raise exc
        log.error("camera %s: frame %d skipped: %s", s.camera.id, frame.id, exc)


def _progress(t: Telemetry) -> str:
    s = t.snapshot()
    return (f"captured {s.captured}, processed {s.processed}, dropped {s.dropped}, NG {s.ng}, {s.fps:.1f} FPS, "
            f"source {s.source_state}")


def report_dict(report: MultiCamReport, camera_dict: Callable[[StreamReport], dict[str, Any]]) -> dict[str, Any]:
    """The JSON summary ``tocoad-stream`` prints for a multi-camera run; ``camera_dict`` formats one camera's."""
    def r(v: float | None) -> float | None:
        return None if v is None else round(v, 2)

    return {"end_reason": report.end_reason, "cameras": {k: camera_dict(v) for k, v in report.cameras.items()},
            "processed": report.processed, "fps_total": r(report.fps_total), "latency_ms_p50": r(report.latency_ms_p50),
            "latency_ms_p99": r(report.latency_ms_p99), "batches": report.batches,
            "batched_frames": report.batched_frames, "elapsed_s": r(report.elapsed_s), "accounted": report.consistent}
