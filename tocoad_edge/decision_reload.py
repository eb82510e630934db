"""SIGHUP → take a bundle's new decision (thresholds, review band) in a running program: ``tocoad-stream`` and
``tocoad-plc`` install it, so ``tocoad-threshold BUNDLE …`` followed by ``kill -HUP <pid>`` changes the verdicts
from the next frame without a restart (docs/decisions.md).

The handler only starts a thread: the reload reads the manifest (and checks its signature) off the signal handler,
so an error can never surface inside the frame the main thread was processing. A failed reload is logged and the
old decision stays.
"""
from __future__ import annotations

import contextlib
import logging
import signal
import threading
from typing import Any, Callable, Iterator

log = logging.getLogger("tocoad_edge.decision")


def reload_now(detector: Any, on_reloaded: Callable[[dict], None] | None = None) -> bool:
    """``detector.reload_decision()``; True when it took the new decision, False (logged) when it refused it."""
    from .errors import TocoadError

    try:
        record = detector.reload_decision()
    except (TocoadError, OSError, ValueError) as exc:
        log.error("decision reload refused, the old thresholds stay: %s", exc)
        return False
    log.warning("decision reloaded: policy %s", record.get("policy", "unknown"))
    if on_reloaded is not None:
        on_reloaded(record)
    return True


@contextlib.contextmanager
def reload_decision_on_sighup(detector: Any, on_reloaded: Callable[[dict], None] | None = None
                              ) -> Iterator[threading.Event]:
    """While the block runs, SIGHUP reloads ``detector``'s decision. Yields an event set after each reload attempt
    (tests and supervisors wait on it). Outside the main thread, or where there is no SIGHUP, it installs nothing."""
    attempted = threading.Event()
    sighup = getattr(signal, "SIGHUP", None)
    if sighup is None or threading.current_thread() is not threading.main_thread():
        yield attempted
        return

    def work() -> None:
        try:
            reload_now(detector, on_reloaded)
        finally:
            attempted.set()

    def handler(*_: Any) -> None:
        threading.Thread(target=work, name="tocoad-decision-reload", daemon=True).start()

    previous = signal.signal(sighup, handler)
    try:
        yield attempted
    finally:
        signal.signal(sighup, previous)
