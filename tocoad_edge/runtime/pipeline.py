"""Pipelined streaming: a worker thread runs the backbone on frame t+1 while frame t is searched and scored.

Bounded queues keep memory flat; results come out in input order; every frame yields one result.
"""
from __future__ import annotations

import queue
import threading
from typing import Iterable, Iterator

_DONE = object()


def pipelined_predictions(detector, frames: Iterable, depth: int = 2) -> Iterator:
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def producer() -> None:
        try:
            for i, frame in enumerate(frames):
                if stop.is_set():
                    return
                try:
                    item = (i, detector.embed(frame), None)
                except Exception as exc:  # noqa: BLE001 - handed to the consumer, raised in order
                    item = (i, None, exc)
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
        finally:
            while not stop.is_set():
                try:
                    q.put(_DONE, timeout=0.1)
                    break
                except queue.Full:
                    continue

    worker = threading.Thread(target=producer, name="tocoad-backbone", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                break
            i, embedded, exc = item
            if exc is not None:
                raise exc
            emb, hw, timings = embedded
            yield detector.score(emb, hw, timings, frame_id=i)
    finally:
        stop.set()
        worker.join(timeout=5.0)
