"""A desktop window (``cv2.imshow``) — only where OpenCV has a GUI and a display exists."""
from __future__ import annotations

import os

import cv2

from ...errors import ResourceError
from .. import capabilities
from .base import Sink, StopStream


class WindowSink(Sink):
    """Shows the overlay; ``q`` or Esc in the window ends the run (``StopStream``)."""

    def __init__(self, title: str = "tocoad-edge"):
        capabilities.require("GUI", "the window sink", error=ResourceError)
        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise ResourceError("the window sink needs a display", expected="DISPLAY or WAYLAND_DISPLAY set",
                                got="neither", fix="use the live view (--live-view) on a headless machine")
        self.title = title

    def write(self, result) -> None:
        cv2.imshow(self.title, result.overlay())
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            raise StopStream(f"closed from the window '{self.title}'")

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.title)
        except cv2.error:
            pass
