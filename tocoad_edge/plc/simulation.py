"""Stand-ins for a camera and a model, to commission a PLC program and to test the handshake.

They are not an inspection: ``SimulatedCamera`` makes flat grey frames whose value encodes the frame id,
and ``FrameMeanDetector`` scores a frame by its mean grey value, so a client can check that every result
belongs to the frame it names. Both can be made to fail the ways real ones do (unplugged camera, hung
driver, crashing or hanging model) so the watchdog and recovery can be exercised without hardware.
"""
from __future__ import annotations

import threading
import time

import numpy as np

from ..runtime.prediction import Prediction
from ..stream.frame import Frame, ReadResult, ReadStatus


def expected_score(frame_id: int) -> float:
    """The score ``FrameMeanDetector`` gives to the frame ``SimulatedCamera`` made with this id."""
    return (frame_id % 251) / 100.0


class SimulatedCamera:
    """A frame source with ``read(timeout)`` → ``ReadResult``, like ``tocoad_edge.stream`` sources. Frames are
    ``shape`` uint8, every pixel ``frame_id % 251``.

    ``unplug()``: reads wait their timeout and return TIMEOUT (a camera that stopped delivering).
    ``hang()``: reads block, ignoring their timeout, until ``plug()`` (a driver call that never returns).
    ``plug()``: back to normal.
    """

    def __init__(self, shape: tuple[int, ...] = (8, 8, 3), frame_interval_s: float = 0.0):
        self.shape = shape
        self.frame_interval_s = frame_interval_s
        self._next_id = 0
        self._lock = threading.Lock()
        self._present = threading.Event()
        self._present.set()
        self._hung = False
        self.reads = 0

    def plug(self) -> None:
        self._hung = False
        self._present.set()

    def unplug(self) -> None:
        self._present.clear()

    def hang(self) -> None:
        self._hung = True
        self._present.clear()

    def close(self) -> None:
        """Nothing to release (a stream source's close stops its capture thread)."""

    def read(self, timeout: float) -> ReadResult:
        self.reads += 1
        if self._hung:
            self._present.wait()            # ignores the timeout, like a stuck driver
        elif not self._present.wait(timeout):
            return ReadResult(ReadStatus.TIMEOUT)
        if self.frame_interval_s:
            time.sleep(self.frame_interval_s)
        with self._lock:
            frame_id = self._next_id
            self._next_id += 1
        image = np.full(self.shape, frame_id % 251, dtype=np.uint8)
        return ReadResult(ReadStatus.OK, Frame(frame_id, time.time(), time.monotonic(), image))


class FrameMeanDetector:
    """``predict(frame)``: score = mean grey value / 100, NG above 1.0. Not an anomaly detector.

    ``fail()``: predict raises (a broken backend). ``hang()``: predict blocks until ``heal()``.
    """

    model_id = "simulated-frame-mean"

    def __init__(self, delay_s: float = 0.0):
        self.delay_s = delay_s
        self._healthy = threading.Event()
        self._healthy.set()
        self._failing = False
        self.calls = 0

    def fail(self) -> None:
        self._failing = True

    def hang(self) -> None:
        self._healthy.clear()

    def heal(self) -> None:
        self._failing = False
        self._healthy.set()

    def predict(self, frame: np.ndarray) -> Prediction:
        self.calls += 1
        self._healthy.wait()
        if self._failing:
            raise RuntimeError("simulated detector failure")
        if self.delay_s:
            time.sleep(self.delay_s)
        score = float(np.round(frame.mean())) / 100.0
        # a flat map at the frame's score: the frames are flat, and the stream's overlay needs a map
        amap = np.full(frame.shape[:2], score, dtype=np.float32)
        return Prediction(score=score, raw_score=score, is_anomalous=score > 1.0, anomaly_map=amap)
