"""The watchdog: a thread of its own, so a camera or detector call that hangs cannot silence it.

Every tick it asks the handshake to answer Error for a cycle past the deadline (and to fault when the
camera has been silent that long), and advances the heartbeat, which the handshake holds still while a
fault is active. Recovery needs no restart: the worker's next good probe clears the fault.
"""
from __future__ import annotations

import logging
import threading

from .handshake import Handshake

log = logging.getLogger("tocoad_edge.plc")


class Watchdog:
    def __init__(self, handshake: Handshake, heartbeat_interval_s: float = 0.1):
        self._handshake = handshake
        self._heartbeat_interval_s = heartbeat_interval_s
        # check often enough that an Error comes within ~5 % of the deadline
        self._tick_s = max(0.002, min(heartbeat_interval_s, handshake.deadline_s / 20.0))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="tocoad-plc-watchdog", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        ticks_per_beat = max(1, round(self._heartbeat_interval_s / self._tick_s))
        tick = 0
        while not self._stop.wait(self._tick_s):
            try:
                self._handshake.check_deadlines()
                tick += 1
                if tick % ticks_per_beat == 0:
                    self._handshake.beat()
            except Exception:  # the watchdog must outlive any bug it could trip over
                log.exception("watchdog tick failed")
