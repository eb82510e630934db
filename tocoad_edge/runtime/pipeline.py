"""Pipelined streaming: a worker thread runs preprocessing + backbone on frame t+1 while the caller's
thread searches and scores frame t.

- Bounded and just in time: the worker takes a frame from the source only when fewer than ``depth`` frames
  are in flight between the stages (being embedded or waiting for the search). With ``depth=1`` it embeds
  frame t+1 while frame t is searched, which is all the overlap two stages can use, and no frame waits
  longer than one search; a slow consumer slows the producer instead of queueing frames without limit, and
  a live source is read when a frame can be used, not early. A larger depth absorbs stage-time jitter at
  the price of latency (each extra frame in flight adds about one search time).
- Ordered, nothing lost: one result per input frame, in input order. A frame that fails (e.g. an
  ``InputError`` for a 16-bit frame) surfaces at its own position: ``errors="raise"`` raises it there
  after every earlier result was yielded (the detector stays usable); ``errors="yield"`` yields a
  ``FrameFailure`` in its place and goes on with the next frame.
- Timed: every ``Prediction.timings_ms`` has the stage times (preprocess, backbone, search,
  postprocess, total) plus ``queue_wait`` (time the embedded frame waited for the search stage) and
  ``latency`` (start of its preprocessing → result ready).

Size the thread pools for the overlap: two stages on two cores want one ONNX Runtime thread and one
search thread (``Detector.open(..., threads=1, search_threads=1)``); more threads per stage on top of
the pipeline oversubscribe the cores and make the tail latency worse (see docs/performance.md).
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, Iterable, Iterator, Protocol, Tuple, Union

import numpy as np

from .arrays import Float32Array
from .prediction import Prediction

ERROR_POLICIES = ("raise", "yield")
DEFAULT_DEPTH = 1          # frames in flight between the stages: one overlaps the backbone of t+1 with search of t


@dataclass(frozen=True)
class FrameFailure:
    """Stands in for the result of a frame that could not be scored (``errors="yield"``)."""
    frame_id: int
    error: BaseException
    timings_ms: dict[str, float] = field(default_factory=dict)
    is_failure: bool = True


# ``Detector.embed``'s result: patch embeddings [h·w, D], the frame's (height, width), stage times in ms
Embedded = Tuple[Float32Array, Tuple[int, int], Dict[str, float]]
# one frame between the stages: (frame id, embedded or the frame's error, t_start, t_ready, fatal);
# None on the queue ends the stream
_Item = Tuple[int, Union[Embedded, Exception], float, float, bool]


class Stages(Protocol):
    """What the pipeline needs of a detector: its two halves (``Detector.embed`` and ``Detector.score``)."""

    def embed(self, frame: np.ndarray) -> Embedded: ...

    def score(self, embeddings: Float32Array, frame_hw: tuple[int, int], timings: dict[str, float],
              frame_id: int | None = None) -> Prediction: ...


def _put(q: queue.Queue[_Item | None], item: _Item | None, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False


def pipelined_predictions(detector: Stages, frames: Iterable[np.ndarray], depth: int = DEFAULT_DEPTH,
                          errors: str = "raise") -> Iterator[Prediction | FrameFailure]:
    if errors not in ERROR_POLICIES:
        from ..errors import ConfigError

        raise ConfigError(f"unknown error policy '{errors}'", expected=f"one of {list(ERROR_POLICIES)}", got=errors)
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        from ..errors import ConfigError

        raise ConfigError("predict_stream depth must be a positive integer (frames in flight between the stages)",
                          expected="an integer >= 1", got=repr(depth))
    q: queue.Queue[_Item | None] = queue.Queue(maxsize=depth + 1)      # + 1: room for the end marker
    slots = threading.Semaphore(depth)                   # frames in flight between the stages
    stop = threading.Event()

    def producer() -> None:
        i = 0
        it = iter(frames)
        try:
            while not stop.is_set():
                if not slots.acquire(timeout=0.05):
                    continue
                t0 = time.perf_counter()
                try:
                    frame = next(it)
                except StopIteration:
                    break
                except Exception as exc:  # noqa: BLE001 - the source failed: surfaces in order, ends the stream
                    _put(q, (i, exc, t0, time.perf_counter(), True), stop)
                    return
                t0 = time.perf_counter()
                item: _Item
                try:
                    item = (i, detector.embed(frame), t0, time.perf_counter(), False)
                except Exception as exc:  # noqa: BLE001 - handed to the consumer, surfaced in order
                    item = (i, exc, t0, time.perf_counter(), False)
                if not _put(q, item, stop):
                    return
                i += 1
        finally:
            _put(q, None, stop)

    worker = threading.Thread(target=producer, name="tocoad-backbone", daemon=True)
    worker.start()
    try:
        while True:
            got = q.get()
            if got is None:
                break
            slots.release()                              # the worker may read and embed the next frame
            i, embedded, t_start, t_ready, fatal = got
            t_take = time.perf_counter()
            if isinstance(embedded, Exception):
                if errors == "raise" or fatal:
                    raise embedded
                yield FrameFailure(frame_id=i, error=embedded,
                                   timings_ms={"latency": (time.perf_counter() - t_start) * 1e3})
                continue
            emb, hw, timings = embedded
            pred = detector.score(emb, hw, timings, frame_id=i)
            pred.timings_ms["queue_wait"] = (t_take - t_ready) * 1e3
            pred.timings_ms["latency"] = (time.perf_counter() - t_start) * 1e3
            yield pred
    finally:
        stop.set()
        worker.join(timeout=10.0)
