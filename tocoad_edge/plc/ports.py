"""The two things a gateway plugs into: a frame source and a detector, in the stream's and the runtime's terms.

* A source has ``read(timeout)`` returning a ``tocoad_edge.stream.ReadResult``: ``OK`` with a
  ``Frame(id, timestamp, monotonic, image)``, or ``TIMEOUT`` / ``END_OF_STREAM`` / ``ERROR`` (``error`` says
  why). ``tocoad_edge.stream.open_source`` sources and ``SimulatedCamera`` both return it.
* A detector is a ``tocoad_edge.runtime.Predictor``: ``predict(frame)`` returning a ``Prediction``.

``grab`` and ``judge`` turn these into the handshake's terms and never raise: a failing source or detector, or
one returning the wrong type, becomes an explicit status the watchdog and the PLC can see.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from ..errors import SourceError
from ..runtime.prediction import Predictor
from ..stream.frame import ReadResult, ReadStatus
from .signals import Fault, Result
from .snapshot import Outcome

log = logging.getLogger("tocoad_edge.plc")

OK, TIMEOUT, ERROR = "ok", "timeout", "error"

@runtime_checkable
class FrameSource(Protocol):
    def read(self, timeout: float) -> ReadResult: ...


@runtime_checkable
class ClosableSource(FrameSource, Protocol):
    """A source that holds a camera or a file open until ``close()`` (``open_source`` and ``SimulatedCamera``)."""
    def close(self) -> object: ...     # what it returns (stream sources: their statistics) is not used


@dataclass(frozen=True)
class Grab:
    frame: np.ndarray | None
    frame_id: int | None
    status: str                     # "ok", "timeout" or "error"
    detail: str = ""                # the source's reason, when it gave one
    captured: float | None = None   # time.monotonic() at capture


def to_grab(result: ReadResult) -> Grab:
    """One ``read()`` result in the handshake's terms; anything but a ``ReadResult`` is a ``SourceError``."""
    if not isinstance(result, ReadResult):
        raise SourceError("the gateway's source returned the wrong type from read()",
                          expected="a tocoad_edge.stream.ReadResult", got=type(result).__name__,
                          fix="return ReadResult(ReadStatus.OK, Frame(id, time.time(), time.monotonic(), image)) "
                              "or ReadResult(ReadStatus.TIMEOUT), or use tocoad_edge.stream.open_source(uri)")
    if result.status is ReadStatus.OK:
        f = result.frame
        if f is None:
            raise SourceError("the gateway's source returned OK without a frame",
                              expected="ReadResult(ReadStatus.OK, Frame(...))", got="ReadResult(ReadStatus.OK, None)",
                              fix="return the frame with the OK status, or ReadResult(ReadStatus.TIMEOUT)")
        return Grab(f.image, f.id, OK, captured=f.monotonic)
    if result.status is ReadStatus.TIMEOUT:
        return Grab(None, None, TIMEOUT, result.error or "")   # a reason: the source knows why (e.g. reconnecting)
    # a finished file or a source that gave up: no frame will come for the PLC either
    return Grab(None, None, ERROR, result.error or result.status.value)


def grab(source: FrameSource, timeout: float) -> Grab:
    """Read one frame; a raising source becomes an ``error`` status with the message."""
    try:
        return to_grab(source.read(max(0.0, timeout)))
    except Exception as exc:  # noqa: BLE001 - the source's failure is data for the handshake, not a gateway crash
        return Grab(None, None, ERROR, f"{type(exc).__name__}: {exc}")


def judge(detector: Predictor, frame: np.ndarray, frame_id: int) -> Outcome:
    """Run the detector on one frame; a raise, a result that is not a Prediction or a non-finite score becomes an
    Error outcome."""
    try:
        pred = detector.predict(frame)
        score, raw, anomalous = float(pred.score), float(pred.raw_score), bool(pred.is_anomalous)
        review = bool(getattr(pred, "is_review", False))       # detectors without a review band never say it
    except Exception as exc:  # noqa: BLE001 - the detector's failure is an Error outcome, not a gateway crash
        log.error("detector failed on frame %d: %s: %s", frame_id, type(exc).__name__, exc)
        return Outcome(Result.ERROR, frame_id=frame_id, fault=Fault.INFERENCE_ERROR)
    if not math.isfinite(score):
        log.error("detector returned a non-finite score (%r) on frame %d", score, frame_id)
        return Outcome(Result.ERROR, frame_id=frame_id, fault=Fault.INFERENCE_ERROR)
    result = Result.NG if anomalous else Result.REVIEW if review else Result.OK
    return Outcome(result, score=score, raw_score=raw, frame_id=frame_id)
