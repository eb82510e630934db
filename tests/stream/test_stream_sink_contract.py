"""The Sink contract: run_stream calls write, idle and close and nothing else; a sink ends a run by raising
StopStream; an object without the three methods is refused at start, with the source and sinks closed."""
from __future__ import annotations

import json

import pytest

from stream_support import SlowFakeDetector, write_video
from tocoad_edge.errors import ConfigError
from tocoad_edge.stream import open_source, run_stream
from tocoad_edge.stream.sinks import (JsonLinesSink, LiveViewSink, NgFrameSaver, Sink, StopStream, VideoFileSink,
                                      WindowSink)


class StopAfter(Sink):
    """Test double: asks to stop once it has seen ``n`` frames; counts idle calls and closes."""

    def __init__(self, n: int):
        self.n, self.written, self.idles, self.closed = n, 0, 0, 0

    def write(self, result):
        self.written += 1
        if self.written == self.n:
            raise StopStream(f"seen {self.n} frames")

    def idle(self, telemetry):
        self.idles += 1

    def close(self):
        self.closed += 1


class WriteOnly:
    """Test double: the old duck-typed shape (write and close, no idle)."""

    def __init__(self):
        self.closed = False

    def write(self, result):
        raise AssertionError("never called: refused at start")

    def close(self):
        self.closed = True


def test_every_shipped_sink_is_a_sink():
    for cls in (JsonLinesSink, LiveViewSink, NgFrameSaver, VideoFileSink, WindowSink):
        assert issubclass(cls, Sink), cls


@pytest.mark.parametrize("pipelined", [False, True])
def test_stop_stream_ends_the_run_and_the_other_sinks_still_get_that_frame(tmp_path, pipelined):
    video = write_video(tmp_path / "v.avi", 20)
    stopper, out = StopAfter(3), tmp_path / "r.jsonl"
    report = run_stream(SlowFakeDetector(), open_source(str(video)), [stopper, JsonLinesSink(out)],
                        log_every_s=None, pipelined=pipelined)
    lines = out.read_text().splitlines()
    assert report.end_reason == "stopped" and report.consistent
    assert stopper.written == len(lines) == report.stats.processed
    assert 3 <= report.stats.processed < 20          # pipelined: frames already in flight are still finished
    assert [json.loads(x)["frame_id"] for x in lines][:3] == [0, 1, 2]
    assert stopper.closed == 1


def test_idle_is_called_while_the_source_is_silent():
    sink = StopAfter(10_000)
    source = open_source("testsrc://?width=32&height=32", {"fps": 2.0})
    report = run_stream(SlowFakeDetector(), source, [sink], duration_s=1.5, read_timeout_s=0.05, log_every_s=None)
    assert report.end_reason == "duration" and sink.closed == 1
    assert sink.idles > 0 and sink.written == report.stats.processed


def test_an_object_without_the_sink_methods_is_refused_and_everything_is_closed():
    source, good, bad = open_source("testsrc://?width=32&height=32"), StopAfter(100), WriteOnly()   # live: never ends
    with pytest.raises(ConfigError, match="without the Sink methods") as err:
        run_stream(SlowFakeDetector(), source, [good, bad], log_every_s=None)
    assert err.value.got == "WriteOnly" and "idle(telemetry)" in err.value.expected
    assert "subclass tocoad_edge.stream.sinks.Sink" in err.value.fix
    assert source.state == "closed" and good.closed == 1 and bad.closed
