"""A bounded buffer between the capture thread and the consumer, with the frame accounting.

Every captured frame ends in exactly one of two counters: ``delivered`` (handed out by ``get``) or
``dropped`` (pushed out by a newer frame under the ``latest`` policy, or still unread at ``close``).
So once the buffer is closed, ``delivered + dropped == captured``.
"""
from __future__ import annotations

import collections
import threading
from dataclasses import dataclass, field
from typing import Literal

from .frame import Frame

DropPolicy = Literal["latest", "block"]


@dataclass(frozen=True)
class BufferCounters:
    captured: int
    delivered: int
    dropped: int
    dropped_by_reason: dict[str, int] = field(default_factory=dict)
    high_water: int = 0        # the most frames the buffer ever held at once (≤ capacity)


class FrameBuffer:
    """``latest``: a full buffer drops its oldest frame for the new one (live cameras: stay current).
    ``block``: the producer waits for room (files and folders: process every frame)."""

    def __init__(self, capacity: int = 1, policy: DropPolicy = "latest"):
        if capacity < 1:
            raise ValueError(f"buffer capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.policy = policy
        self._frames: collections.deque[Frame] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self._finished = False
        self._captured = 0
        self._delivered = 0
        self._dropped: dict[str, int] = {}
        self._high_water = 0
        self._listeners: list = []

    def add_listener(self, callback) -> None:
        """``callback()`` after every frame added (without arguments, on the producer's thread; keep it short, e.g.
        ``event.set``): lets one consumer wait for the first of several buffers instead of polling them."""
        with self._cond:
            self._listeners.append(callback)

    def _drop(self, reason: str, n: int = 1) -> None:
        if n:
            self._dropped[reason] = self._dropped.get(reason, 0) + n

    def wait_for_room(self, stop: threading.Event | None = None) -> bool:
        """``block`` policy: wait until a frame fits (call before grabbing, so a frame's capture time is not
        spent waiting here). False if the buffer closed or ``stop`` was set."""
        with self._cond:
            while self.policy == "block" and len(self._frames) >= self.capacity and not self._closed \
                    and not (stop is not None and stop.is_set()):
                self._cond.wait(0.05)
            return not self._closed and not (stop is not None and stop.is_set())

    def put(self, frame: Frame, stop: threading.Event | None = None) -> bool:
        """Add a captured frame. Returns False (the frame counted as dropped) if the buffer closed
        or ``stop`` was set while waiting for room."""
        with self._cond:
            self._captured += 1
            if self.policy == "block":
                while len(self._frames) >= self.capacity and not self._closed \
                        and not (stop is not None and stop.is_set()):
                    self._cond.wait(0.05)
            if self._closed or (stop is not None and stop.is_set()):
                self._drop("closed_before_read")
                return False
            while len(self._frames) >= self.capacity:
                self._frames.popleft()
                self._drop("overwritten")
            self._frames.append(frame)
            self._high_water = max(self._high_water, len(self._frames))
            self._cond.notify_all()
            listeners = list(self._listeners)
        for callback in listeners:
            callback()
        return True

    def get(self, timeout: float) -> Frame | None:
        """The oldest buffered frame, or None after ``timeout`` seconds (at once when closed or
        finished and empty)."""
        with self._cond:
            if not self._frames and not self._closed:
                self._cond.wait_for(lambda: self._frames or self._closed or self._finished,
                                    timeout=max(0.0, timeout))
            if not self._frames:
                return None
            frame = self._frames.popleft()
            self._delivered += 1
            self._cond.notify_all()
            return frame

    def __len__(self) -> int:
        with self._cond:
            return len(self._frames)

    def finish(self) -> None:
        """The producer will add no more frames (end of stream, or failed for good): readers stop
        waiting once the buffer is empty."""
        with self._cond:
            self._finished = True
            self._cond.notify_all()
            listeners = list(self._listeners)
        for callback in listeners:     # a waiting consumer learns of the end at once, not at its next timeout
            callback()

    def close(self) -> None:
        """Refuse further frames; frames still unread count as dropped."""
        with self._cond:
            self._closed = True
            self._drop("unread_at_close", len(self._frames))
            self._frames.clear()
            self._cond.notify_all()

    def counters(self) -> BufferCounters:
        with self._cond:
            return BufferCounters(self._captured, self._delivered, sum(self._dropped.values()),
                                  dict(self._dropped), self._high_water)
