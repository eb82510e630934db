"""Must show: the live view page loads in headless Chromium and shows a frame (a screenshot test).

Chromium comes from the Debian package `chromium` (`apt-get install -y chromium`); without it the test skips
and says so. Everything listens on 127.0.0.1 only."""
from __future__ import annotations

import json
import shutil
import subprocess
import threading
import urllib.request

import cv2
import numpy as np
import pytest

from stream_support import SlowFakeDetector
from tocoad_edge.stream import draw_overlay, open_source, run_stream
from tocoad_edge.stream.sinks import LiveViewSink

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
MAGENTA = (255, 0, 255)   # BGR: a colour nothing else on the page uses


def _chromium(args: list[str], tmp_path, timeout: float = 60) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def live_stream(tmp_path):
    """A paced stream of a magenta frame through run_stream into a live view on 127.0.0.1."""
    folder = tmp_path / "frames"
    folder.mkdir()
    cv2.imwrite(str(folder / "frame.png"), np.full((480, 640, 3), MAGENTA, np.uint8))
    source = open_source(str(folder), loop=True, realtime=True, fps=10.0)
    live = LiveViewSink(host="127.0.0.1", port=0)
    stop = threading.Event()
    runner = threading.Thread(target=run_stream, args=(SlowFakeDetector(zero_map=True), source, [live]),
                              kwargs={"stop_event": stop, "duration_s": 120.0, "log_every_s": None}, daemon=True)
    runner.start()
    try:
        # wait until a frame has been published
        for _ in range(100):
            if live.broadcaster.latest()[1] is not None:
                break
            stop.wait(0.05)
        yield live
    finally:
        stop.set()
        runner.join(10)
    assert not runner.is_alive()


def test_live_view_routes_serve_page_stats_and_snapshot(live_stream):
    base = live_stream.server.url
    page = urllib.request.urlopen(base + "/", timeout=5).read().decode()
    assert '<img id="frame" src="/stream.mjpg"' in page and "trend" in page
    stats = json.loads(urllib.request.urlopen(base + "/stats.json", timeout=5).read())
    assert stats["processed"] >= 1 and stats["captured"] >= stats["processed"]
    assert stats["scores"] and stats["scores"][-1][2] in ("OK", "NG")
    snap = urllib.request.urlopen(base + "/snapshot.jpg", timeout=5)
    assert snap.headers["Content-Type"] == "image/jpeg"
    image = cv2.imdecode(np.frombuffer(snap.read(), np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (480, 640, 3)


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (Debian: apt-get install -y chromium)")
def test_live_view_page_shows_a_frame_in_headless_chromium(live_stream, tmp_path):
    url = live_stream.url
    shot = tmp_path / "live.png"
    done = _chromium(["--window-size=1280,900", f"--screenshot={shot}", url], tmp_path)
    assert shot.exists(), done.stderr[-2000:]
    screenshot = cv2.imread(str(shot), cv2.IMREAD_COLOR)
    # The colour the overlay gives the magenta frame (zero anomaly map), as it must appear in the page.
    expected = draw_overlay(np.full((480, 640, 3), MAGENTA, np.uint8), np.zeros((480, 640), np.float32),
                            score=0.0, decision="OK")[240, 320].astype(int)
    close = np.all(np.abs(screenshot.astype(int) - expected) <= 16, axis=-1)
    assert close.sum() > 100_000, (close.sum(), expected.tolist())   # the 640×480 frame is on screen

    dom = _chromium(["--virtual-time-budget=3000", "--dump-dom", url], tmp_path).stdout
    assert 'id="state" class="ok">streaming<' in dom
    processed = dom.split('id="processed">', 1)[1].split("<", 1)[0]
    assert processed.isdigit() and int(processed) >= 1
