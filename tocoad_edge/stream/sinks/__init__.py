"""Where results go: a window, a video file, JSON lines, NG frames under a quota, a live view in the browser.

Every sink is a ``Sink`` (sinks/base.py): ``write(result)``, ``idle(telemetry)`` and ``close()``, the only
methods ``run_stream`` calls; a sink raises ``StopStream`` from ``write`` to end the run.
"""
from .base import Sink, StopStream
from .jsonl import JsonLinesSink
from .liveview import LiveViewSink
from .ng_saver import NgFrameSaver
from .video import VideoFileSink
from .window import WindowSink

__all__ = ["JsonLinesSink", "LiveViewSink", "NgFrameSaver", "Sink", "StopStream", "VideoFileSink", "WindowSink"]
