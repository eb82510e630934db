"""``Sink``: every method ``run_stream`` calls on a sink, with no-op defaults where doing nothing is right.

Subclass it and override ``write`` (and ``idle`` / ``close`` when the sink has something to do then). Any object
with the same three methods is a Sink too (it is a runtime-checkable Protocol); ``run_stream`` refuses others at
start, so a missing method is a clear error there and not an AttributeError in the middle of a shift.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ..loop import StreamResult, Telemetry


class StopStream(Exception):
    """Raised by ``Sink.write`` to end the run after this frame (``WindowSink``: q or Esc in the window).
    The other sinks still get the frame; ``run_stream`` ends with ``end_reason == "stopped"``."""


@runtime_checkable
class Sink(Protocol):
    def write(self, result: StreamResult) -> None:
        """One processed frame (frame, prediction, latency, overlay)."""
        raise NotImplementedError(f"{type(self).__name__} must implement write(result)")

    def idle(self, telemetry: Telemetry) -> None:
        """No frame came within the read timeout (camera silent or reconnecting): counters still move."""

    def close(self) -> None:
        """The run is over (called once, in every case): flush and release files, windows, servers."""
