"""The watchdog: a thread of its own, so a camera or detector call that hangs cannot silence it.

It sleeps until the handshake's next expiry (a cycle's trigger time + deadline, or the last good frame
+ deadline), so an Error comes about a millisecond after the deadline, not a polling period later; it
also wakes every ``deadline / 20`` to pick up new cycles, and advances the heartbeat, which the
handshake holds still while a fault is active. Recovery needs no restart: the worker's next good probe
clears the fault.
"""
from __future__ import annotations

import logging
import threading

from .handshake import Handshake

log = logging.getLogger("tocoad_edge.plc")

_PAST = 1e-4       # wake just after the expiry, so "now - start > deadline" holds


class Watchdog:
    def __init__(self, handshake: Handshake, heartbeat_interval_s: float = 0.1):
        self._handshake = handshake
        self._heartbeat_interval_s = heartbeat_interval_s
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
        hs = self._handshake
        next_beat = hs.now() + self._heartbeat_interval_s
        while True:
            now = hs.now()
            tick_s = max(0.002, min(self._heartbeat_interval_s, hs.deadline_s / 20.0))   # the deadline may change
            wake = min(now + tick_s, next_beat)
            expiry = hs.next_expiry()
            if expiry is not None:
                wake = min(wake, expiry + _PAST)
            if self._stop.wait(max(0.0, wake - now)):
                return
            try:
                hs.check_deadlines()
                now = hs.now()
                if now >= next_beat:
                    hs.beat()
                    next_beat += self._heartbeat_interval_s
                    if next_beat <= now:          # fell behind (a stalled machine): do not burst
                        next_beat = now + self._heartbeat_interval_s
            except Exception:  # the watchdog must outlive any bug it could trip over
                log.exception("watchdog tick failed")
