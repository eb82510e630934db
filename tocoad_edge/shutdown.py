"""Graceful shutdown for long-running programs (camera streams, the PLC gateway): SIGINT / SIGTERM set an event
the main loop watches, and the previous handlers come back when the block ends."""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event | None = None) -> Iterator[threading.Event]:
    """Yield an event that SIGINT or SIGTERM sets; restore the previous handlers on exit (main thread only)."""
    stop = stop if stop is not None else threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
