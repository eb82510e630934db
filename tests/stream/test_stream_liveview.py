"""Must show: the live view page loads in headless Chromium and shows a frame (a screenshot test); with a token
configured, Chromium sees the frame only with the token, and a client over the cap gets 503.

Chromium comes from the Debian package `chromium` (`apt-get install -y chromium`); without it those tests skip
and say so. Everything listens on 127.0.0.1 only."""
from __future__ import annotations

import base64
import contextlib
import json
import shutil
import socket
import subprocess
import threading
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest

from plc_helpers import poll
from stream_support import SlowFakeDetector
from tocoad_edge.credentials import PasswordFile, add_user
from tocoad_edge.errors import ConfigError
from tocoad_edge.stream import draw_overlay, open_source, run_stream
from tocoad_edge.stream.liveview_auth import LiveViewAuth
from tocoad_edge.stream.sinks import LiveViewSink

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
MAGENTA = (255, 0, 255)   # BGR: a colour nothing else on the page uses
TOKEN = "s3cret-token-for-the-live-view"
needs_chromium = pytest.mark.skipif(CHROMIUM is None,
                                    reason="headless Chromium is not installed (Debian: apt-get install -y chromium)")


def _chromium(args: list[str], tmp_path, timeout: float = 60) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@contextlib.contextmanager
def streaming(tmp_path, max_frames: int | None = None, **sink_kwargs):
    """A paced stream of a magenta frame through run_stream into a live view on 127.0.0.1.

    Yields (live view, runner thread, reports list): the report lands in the list when the run ends."""
    folder = tmp_path / "frames"
    folder.mkdir(exist_ok=True)
    cv2.imwrite(str(folder / "frame.png"), np.full((480, 640, 3), MAGENTA, np.uint8))
    source = open_source(str(folder), loop=True, realtime=True, fps=10.0)
    live = LiveViewSink(host="127.0.0.1", port=0, **sink_kwargs)
    stop = threading.Event()
    reports: list = []
    runner = threading.Thread(target=lambda: reports.append(run_stream(
        SlowFakeDetector(zero_map=True), source, [live], stop_event=stop, duration_s=120.0, max_frames=max_frames,
        log_every_s=None)), daemon=True)
    runner.start()
    try:
        for _ in range(100):    # wait until a frame has been published
            if live.broadcaster.latest()[1] is not None:
                break
            stop.wait(0.05)
        yield live, runner, reports
    finally:
        stop.set()
        runner.join(10)
    assert not runner.is_alive()


@pytest.fixture
def live_stream(tmp_path):
    with streaming(tmp_path) as (live, _, _):
        yield live


@pytest.fixture
def token_stream(tmp_path):
    with streaming(tmp_path, auth=LiveViewAuth(token=TOKEN), max_clients=2, timeout_s=2.0) as (live, _, _):
        yield live


def _get(url: str, headers: dict[str, str] | None = None):
    """(status, headers, body) of a GET; HTTP errors are answers here, not exceptions."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as resp:
            return resp.status, resp.headers, resp.read(4096)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def _magenta_pixels(screenshot_path) -> int:
    """Pixels of the screenshot in the colour the overlay gives the magenta frame (zero anomaly map)."""
    screenshot = cv2.imread(str(screenshot_path), cv2.IMREAD_COLOR)
    expected = draw_overlay(np.full((480, 640, 3), MAGENTA, np.uint8), np.zeros((480, 640), np.float32),
                            score=0.0, decision="OK")[240, 320].astype(int)
    return int(np.all(np.abs(screenshot.astype(int) - expected) <= 16, axis=-1).sum())


def test_live_view_routes_serve_page_stats_and_snapshot(live_stream):
    base = live_stream.server.url
    page = urllib.request.urlopen(base + "/", timeout=5).read().decode()
    assert '<img id="frame"' in page and 'withToken("/stream.mjpg")' in page and "trend" in page
    stats = json.loads(urllib.request.urlopen(base + "/stats.json", timeout=5).read())
    assert stats["processed"] >= 1 and stats["captured"] >= stats["processed"]
    assert stats["scores"] and stats["scores"][-1][2] in ("OK", "NG")
    snap = urllib.request.urlopen(base + "/snapshot.jpg", timeout=5)
    assert snap.headers["Content-Type"] == "image/jpeg"
    image = cv2.imdecode(np.frombuffer(snap.read(), np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (480, 640, 3)


@needs_chromium
def test_live_view_page_shows_a_frame_in_headless_chromium(live_stream, tmp_path):
    url = live_stream.url
    shot = tmp_path / "live.png"
    done = _chromium(["--window-size=1280,900", f"--screenshot={shot}", url], tmp_path)
    assert shot.exists(), done.stderr[-2000:]
    assert _magenta_pixels(shot) > 100_000     # the 640×480 frame is on screen

    dom = _chromium(["--virtual-time-budget=3000", "--dump-dom", url], tmp_path).stdout
    assert 'id="state" class="ok">streaming<' in dom
    processed = dom.split('id="processed">', 1)[1].split("<", 1)[0]
    assert processed.isdigit() and int(processed) >= 1


def test_token_is_required_on_every_route(token_stream):
    base = token_stream.server.url
    for path in ("/", "/stream.mjpg", "/snapshot.jpg", "/stats.json"):
        status, headers, body = _get(base + path)
        assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer"), (path, status)
        assert b"token" in body
    assert _get(base + "/stats.json?token=wrong-token-of-the-same-size!")[0] == 401
    assert _get(base + "/stats.json", {"Authorization": "Bearer " + TOKEN[:-1]})[0] == 401
    status, _, body = _get(base + "/stats.json?token=" + TOKEN)
    assert status == 200 and json.loads(body)["processed"] >= 1
    status, headers, body = _get(base + "/snapshot.jpg", {"Authorization": "Bearer " + TOKEN})
    assert status == 200 and headers["Content-Type"] == "image/jpeg" and body[:2] == b"\xff\xd8"
    assert token_stream.server.refused_auth == 6


def test_basic_auth_from_a_password_file(tmp_path):
    users = tmp_path / "users.txt"
    add_user(users, "shift1", "viewer", "correct horse battery")
    auth = LiveViewAuth(users=PasswordFile.load(users))
    with streaming(tmp_path, auth=auth) as (live, _, _):
        def basic(user: str, password: str) -> dict[str, str]:
            return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}

        status, headers, _ = _get(live.server.url + "/stats.json")
        assert status == 401 and headers["WWW-Authenticate"].startswith("Basic realm=")
        assert _get(live.server.url + "/stats.json", basic("shift1", "wrong password"))[0] == 401
        assert _get(live.server.url + "/stats.json", basic("nobody", "correct horse battery"))[0] == 401
        for _ in range(2):      # the second request is served from the verified-header cache
            assert _get(live.server.url + "/stats.json", basic("shift1", "correct horse battery"))[0] == 200


def test_binding_beyond_loopback_without_a_login_is_refused():
    with pytest.raises(ConfigError, match="without a login") as info:
        LiveViewSink(host="0.0.0.0", port=0)
    assert "live_view_token_file" in str(info.value)


@needs_chromium
def test_chromium_sees_the_frame_only_with_the_token(token_stream, tmp_path):
    shot = tmp_path / "with-token.png"
    done = _chromium(["--window-size=1280,900", f"--screenshot={shot}", token_stream.url + "?token=" + TOKEN],
                     tmp_path)
    assert shot.exists(), done.stderr[-2000:]
    assert _magenta_pixels(shot) > 100_000

    dom = _chromium(["--virtual-time-budget=2000", "--dump-dom", token_stream.url], tmp_path).stdout
    assert "401 the live view needs a login" in dom
    assert 'id="frame"' not in dom


@needs_chromium
def test_clients_over_the_cap_get_503_and_a_freed_slot_serves_again(token_stream, tmp_path):
    url = token_stream.server.url + "/stream.mjpg?token=" + TOKEN
    held = [urllib.request.urlopen(url, timeout=10) for _ in range(2)]      # the cap is 2
    try:
        for resp in held:
            assert resp.status == 200 and resp.read(2) == b"--"
        status, headers, body = _get(token_stream.server.url + "/stats.json?token=" + TOKEN)
        assert status == 503 and headers["Retry-After"] == "5" and b"limit" in body
        dom = _chromium(["--virtual-time-budget=2000", "--dump-dom", token_stream.url + "?token=" + TOKEN],
                        tmp_path).stdout
        assert "503 the live view is busy" in dom
    finally:
        for resp in held:
            resp.close()
    poll(lambda: _get(token_stream.server.url + "/stats.json?token=" + TOKEN)[0], lambda status: status == 200)
    assert token_stream.server.refused_busy >= 2


def test_a_stalled_client_neither_slows_the_loop_nor_keeps_its_slot(tmp_path):
    """One slot; a client asks for the stream and never reads, another connects and never sends a request.
    The loop still runs its frames to the end, and each stalled client is dropped after timeout_s."""
    with streaming(tmp_path, max_frames=40, max_clients=1, timeout_s=1.0) as (live, runner, reports):
        stalled = socket.create_connection((live.server.host, live.server.port))
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")
        runner.join(60)
        assert not runner.is_alive() and reports[0].stats.processed == 40     # not held up by the stalled reader
        stalled.close()
    with streaming(tmp_path, max_frames=None, max_clients=1, timeout_s=1.0) as (live, _, _):
        silent = socket.create_connection((live.server.host, live.server.port))     # holds the one slot
        try:
            status, _ = poll(lambda: _get(live.server.url + "/stats.json")[0], lambda s: s == 200)
            assert status == 200 and live.server.refused_busy >= 1   # refused while the silent client held the slot
        finally:
            silent.close()
