"""Must show: a source that dies and comes back recovers without restarting the program, and every frame is
accounted for (processed + dropped == captured). The camera is a real HTTP MJPEG server on 127.0.0.1 that is
stopped for several seconds and started again on the same port."""
from __future__ import annotations

import threading
import time

import numpy as np

from stream_support import SlowFakeDetector, jpeg, publish_moving_bar
from tocoad_edge.stream import ReadStatus, open_source, run_stream
from tocoad_edge.stream.liveview_server import MjpegBroadcaster, MjpegServer
from tocoad_edge.stream.sinks import Sink

OUTAGE_S = 4.0


class RecordingSink(Sink):
    """Keeps (frame id, monotonic capture time) of each result."""

    def __init__(self):
        self.seen: list[tuple[int, float]] = []

    def write(self, result):
        self.seen.append((result.frame.id, result.frame.monotonic))


def _wait_until(cond, timeout_s: float) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def test_mjpeg_source_recovers_after_server_outage_and_accounts_every_frame():
    broadcaster = MjpegBroadcaster()
    stop_publishing = threading.Event()
    publisher = threading.Thread(target=publish_moving_bar, args=(broadcaster, stop_publishing), daemon=True)
    publisher.start()
    server = MjpegServer(broadcaster).start()
    port = server.port
    source = open_source(server.stream_url, reconnect_initial_s=0.2, reconnect_max_s=1.0, read_timeout_s=1.0,
                         buffer_size=2)
    assert source.nominal_fps is None   # MJPEG carries no frame rate
    sink = RecordingSink()
    stop_run = threading.Event()
    reports = []
    runner = threading.Thread(target=lambda: reports.append(
        run_stream(SlowFakeDetector(delay_s=0.01), source, [sink], stop_event=stop_run, duration_s=60.0,
                   log_every_s=None)), daemon=True)
    runner.start()
    restarted = None
    try:
        assert _wait_until(lambda: len(sink.seen) >= 20, 15), "no frames before the outage"
        server.stop()                                  # the camera dies …
        down_at = time.monotonic()
        assert _wait_until(lambda: source.state == "reconnecting", 10), source.state
        time.sleep(OUTAGE_S)                           # … stays dead for several seconds …
        frames_during_outage = [fid for fid, t in sink.seen if down_at + 1.5 < t < down_at + OUTAGE_S]
        restarted = MjpegServer(broadcaster, port=port).start()   # … and comes back on the same address
        up_at = time.monotonic()
        assert _wait_until(lambda: sum(t > up_at for _, t in sink.seen) >= 20, 20), \
            f"no recovery: state {source.state}, last error {source.stats().last_error}"
    finally:
        stop_run.set()
        runner.join(15)
        stop_publishing.set()
        if restarted is not None:
            restarted.stop()
    assert not runner.is_alive()
    report = reports[0]
    s = report.stats
    assert frames_during_outage == []
    assert s.disconnects >= 1 and s.reconnects >= 1
    assert s.source_state in ("closed", "streaming")
    ids = [fid for fid, _ in sink.seen]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)     # ids keep counting across the reconnect
    assert s.processed == len(sink.seen)
    assert s.processed + s.dropped == s.captured
    assert report.consistent and report.end_reason == "stopped"


def test_read_reports_timeout_with_the_error_while_the_source_is_down():
    broadcaster = MjpegBroadcaster()
    broadcaster.publish(jpeg(np.zeros((32, 32, 3), np.uint8)))
    server = MjpegServer(broadcaster).start()
    source = open_source(server.stream_url, reconnect_initial_s=0.1, reconnect_max_s=0.2, read_timeout_s=0.5)
    try:
        assert source.read(5.0).status is ReadStatus.OK
        server.stop()
        deadline = time.monotonic() + 10
        result = source.read(0.2)
        while result.status is not ReadStatus.TIMEOUT or result.error is None:
            assert time.monotonic() < deadline, result
            result = source.read(0.2)
        assert result.frame is None
        assert "MJPEG stream" in result.error
    finally:
        stats = source.close()
    assert stats.delivered + stats.dropped == stats.captured


def test_source_gives_up_after_max_reconnects_with_error_status():
    broadcaster = MjpegBroadcaster()
    broadcaster.publish(jpeg(np.zeros((32, 32, 3), np.uint8)))
    server = MjpegServer(broadcaster).start()
    source = open_source(server.stream_url, reconnect_initial_s=0.05, reconnect_max_s=0.1, max_reconnects=2,
                         read_timeout_s=0.5)
    server.stop()
    report = run_stream(SlowFakeDetector(), source, [], duration_s=30.0, log_every_s=None)
    assert report.end_reason == "source_error"
    assert report.stats.source_state == "failed"
    assert "cannot connect" in (report.stats.last_error or "")
    assert report.consistent


def test_source_waits_for_a_camera_that_is_not_there_yet():
    import socket

    with socket.socket() as s:          # a free loopback port, nothing listening yet
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    source = open_source(f"http://127.0.0.1:{port}/stream.mjpg", require_initial_connection=False,
                         reconnect_initial_s=0.1, reconnect_max_s=0.3)
    broadcaster = MjpegBroadcaster()
    server = None
    try:
        assert _wait_until(lambda: source.read(0.1).error is not None, 10)   # down, and says why
        server = MjpegServer(broadcaster, port=port).start()
        broadcaster.publish(jpeg(np.zeros((32, 32, 3), np.uint8)))
        got = None
        for _ in range(100):
            got = source.read(0.1)
            if got.ok:
                break
            broadcaster.publish(jpeg(np.zeros((32, 32, 3), np.uint8)))
        # The first frames may be overwritten in the latest-frame buffer before this read: any id is
        # fine, as long as a frame arrives and every frame is accounted for below.
        assert got is not None and got.ok and got.frame.id >= 0
    finally:
        stats = source.close()
        if server is not None:
            server.stop()
    assert stats.delivered + stats.dropped == stats.captured
