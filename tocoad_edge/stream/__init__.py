"""Camera streams in production: sources with timeouts and reconnect, frame accounting, overlays, sinks,
and a live view in the browser. See docs/streams.md.

    from tocoad_edge.stream import open_source, run_stream
    from tocoad_edge.stream.sinks import JsonLinesSink, LiveViewSink
    source = open_source("rtsp://camera/stream", {"reconnect_max_s": 5})
    report = run_stream(detector, source, [JsonLinesSink("results.jsonl"), LiveViewSink(port=8080)])
"""
from .capture import Source, SourceStats
from .frame import Frame, ReadResult, ReadStatus
from .loop import StreamReport, StreamResult, StreamStats, Telemetry, run_stream
from .options import SourceOptions
from .overlay import draw_overlay
from .sources import open_source, parse_uri

__all__ = ["Frame", "ReadResult", "ReadStatus", "Source", "SourceOptions", "SourceStats", "StreamReport",
           "StreamResult", "StreamStats", "Telemetry", "draw_overlay", "open_source", "parse_uri", "run_stream"]
