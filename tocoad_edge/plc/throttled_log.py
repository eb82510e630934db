"""Log a repeated warning at most ``burst`` times per interval, then say how many were held back.

A PLC that writes a wrong register every scan cycle (10 ms) must not fill the disk with the same line.
"""
from __future__ import annotations

import logging
import threading
import time


class ThrottledLog:
    def __init__(self, logger: logging.Logger, interval_s: float = 1.0, burst: int = 10):
        self._logger = logger
        self._interval_s = interval_s
        self._burst = burst
        self._lock = threading.Lock()
        self._window_start = -float("inf")
        self._in_window = 0
        self._held_back = 0

    def warning(self, msg: str, *args: object) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._window_start >= self._interval_s:
                self._window_start, self._in_window = now, 0
            if self._in_window >= self._burst:
                self._held_back += 1
                return
            self._in_window += 1
            held, self._held_back = self._held_back, 0
        if held:
            msg += " (%d similar messages held back)"
            args = (*args, held)
        self._logger.warning(msg, *args)
