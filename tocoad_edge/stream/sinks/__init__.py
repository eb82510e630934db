"""Where results go: a window, a video file, JSON lines, NG frames under a quota, a live view in the browser.

Every sink has ``write(result: StreamResult)`` and ``close()``; ``run_stream`` calls them.
"""
from .jsonl import JsonLinesSink
from .liveview import LiveViewSink
from .ng_saver import NgFrameSaver
from .video import VideoFileSink
from .window import WindowSink

__all__ = ["JsonLinesSink", "LiveViewSink", "NgFrameSaver", "VideoFileSink", "WindowSink"]
