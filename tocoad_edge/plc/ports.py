"""The two things a gateway plugs into: a frame source and a detector, as small protocols.

* A source has ``read(timeout)``. It may return a frame (an ``ndarray``), an object carrying one
  (``image`` or ``frame`` attribute, with ``frame_id`` / ``id`` when it has one; or a ``frame`` attribute
  that is such an object, as ``tocoad_edge.stream``'s ``ReadResult(status, frame=Frame(id, …, image))``),
  ``None`` on a timeout, or an object with a ``status`` and no frame (timeout, end of stream, error;
  ``error`` says why). ``tocoad_edge.stream`` sources and ``SimulatedCamera`` both fit; so does
  ``cv2.VideoCapture.read``'s ``(ok, frame)`` pair.
* A detector has ``predict(frame)`` returning an object with ``score``, ``raw_score`` and
  ``is_anomalous`` (or ``decision`` "OK"/"NG"), like ``tocoad_edge.runtime.Detector``.

``grab`` and ``judge`` turn whatever these return into the handshake's terms and never raise: a bad
return value becomes an explicit status the watchdog and the PLC can see.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .signals import Fault, Result
from .snapshot import Outcome

log = logging.getLogger("tocoad_edge.plc")

OK, TIMEOUT, ERROR = "ok", "timeout", "error"


@runtime_checkable
class FrameSource(Protocol):
    def read(self, timeout: float) -> Any: ...


@runtime_checkable
class Predictor(Protocol):
    def predict(self, frame: np.ndarray) -> Any: ...


@dataclass(frozen=True)
class Grab:
    frame: np.ndarray | None
    frame_id: int | None
    status: str                     # "ok", "timeout" or "error"
    detail: str = ""                # the source's reason, when it gave one
    captured: float | None = None   # time.monotonic() at capture, when the source stamps it


def _status_name(status: Any) -> str:
    name = getattr(status, "name", None) or getattr(status, "value", None) or status
    return str(name).lower()


def normalize_read(value: Any) -> Grab:
    """Turn one ``read()`` return value into a ``Grab``."""
    if value is None:
        return Grab(None, None, TIMEOUT)
    if isinstance(value, np.ndarray):
        return Grab(value, None, OK)
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], bool):   # cv2 style (ok, frame)
        ok, frame = value
        return Grab(frame, None, OK) if ok and isinstance(frame, np.ndarray) else Grab(None, None, ERROR,
                                                                                     "read() returned (False, ...)")
    carrier = value
    inner = getattr(value, "frame", None)               # tocoad_edge.stream: ReadResult(status, frame=Frame(...))
    if inner is not None and not isinstance(inner, np.ndarray) and hasattr(inner, "image"):
        carrier = inner
    frame = None
    for attr in ("image", "frame"):
        candidate = getattr(carrier, attr, None)
        if isinstance(candidate, np.ndarray):
            frame = candidate
            break
    if frame is not None:
        frame_id = None
        for attr in ("frame_id", "id", "index"):
            candidate = getattr(carrier, attr, None)
            if isinstance(candidate, (int, np.integer)) and not isinstance(candidate, bool):
                frame_id = int(candidate)
                break
        captured = getattr(carrier, "monotonic", None)
        if not isinstance(captured, (float, int)) or isinstance(captured, bool):
            captured = None
        return Grab(frame, frame_id, OK, captured=captured)
    if hasattr(value, "status"):
        name = _status_name(value.status)
        reason = str(getattr(value, "error", "") or getattr(value, "message", "") or getattr(value, "detail", "")
                     or "")
        if name == "ok":
            return Grab(None, None, ERROR, "read() reported status ok but carried no frame")
        if "timeout" in name:
            return Grab(None, None, TIMEOUT, reason)      # a reason: the source knows why (e.g. reconnecting)
        return Grab(None, None, ERROR, reason or name)
    return Grab(None, None, ERROR, f"read() returned {type(value).__name__}, which carries no frame "
                                   f"(expected an ndarray, an object with .image/.frame, None or a status)")


def grab(source: FrameSource, timeout: float) -> Grab:
    """Read one frame; a raising source becomes an ``error`` status with the message."""
    try:
        value = source.read(max(0.0, timeout))
    except Exception as exc:  # the source's failure is data for the handshake, not a crash of the gateway
        return Grab(None, None, ERROR, f"{type(exc).__name__}: {exc}")
    return normalize_read(value)


def judge(detector: Predictor, frame: np.ndarray, frame_id: int) -> Outcome:
    """Run the detector on one frame; a raise or a non-finite score becomes an Error outcome."""
    try:
        pred = detector.predict(frame)
        score = float(pred.score)
        raw = float(getattr(pred, "raw_score", score))
        anomalous = getattr(pred, "is_anomalous", None)
        if anomalous is None:
            anomalous = str(getattr(pred, "decision", "")).upper() == "NG"
    except Exception as exc:
        log.error("detector failed on frame %d: %s: %s", frame_id, type(exc).__name__, exc)
        return Outcome(Result.ERROR, frame_id=frame_id, fault=Fault.INFERENCE_ERROR)
    if not math.isfinite(score):
        log.error("detector returned a non-finite score (%r) on frame %d", score, frame_id)
        return Outcome(Result.ERROR, frame_id=frame_id, fault=Fault.INFERENCE_ERROR)
    return Outcome(Result.NG if anomalous else Result.OK, score=score, raw_score=raw, frame_id=frame_id)
