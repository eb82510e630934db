"""open_source: every URI form, capability checks, files, folders, MJPEG reader errors, options."""
from __future__ import annotations

import pytest

from stream_support import jpeg, write_images, write_video
from tocoad_edge.errors import ConfigError, SourceError
from tocoad_edge.stream import ReadStatus, SourceOptions, open_source, parse_uri
from tocoad_edge.stream import capabilities, pipelines
from tocoad_edge.stream.backoff import Backoff
from tocoad_edge.stream.liveview_server import HttpServer, MjpegBroadcaster, MjpegServer, send_bytes


@pytest.mark.parametrize("uri, kind, target", [
    (0, "v4l2", "0"),
    ("1", "v4l2", "1"),
    ("/dev/video0", "v4l2", "/dev/video0"),
    ("v4l2:///dev/video2", "v4l2", "/dev/video2"),
    ("csi://1", "csi", "1"),
    ("rtsp://10.0.0.5:554/stream1", "rtsp", "rtsp://10.0.0.5:554/stream1"),
    ("http://127.0.0.1:8080/video.mjpg", "mjpeg", "http://127.0.0.1:8080/video.mjpg"),
    ("videotestsrc ! videoconvert ! appsink", "gstreamer", "videotestsrc ! videoconvert ! appsink"),
    ("testsrc://?width=64&height=48", "test", "testsrc://?width=64&height=48"),
])
def test_parse_uri_kinds(uri, kind, target):
    spec = parse_uri(uri)
    assert (spec.kind, spec.target) == (kind, target)


def test_parse_uri_files_folders_and_passwords(tmp_path):
    video = write_video(tmp_path / "v.avi", 2)
    assert parse_uri(str(video)).kind == "file"
    assert parse_uri(f"file://{video}").kind == "file"
    assert parse_uri(str(tmp_path)).kind == "folder"
    assert parse_uri("rtsp://admin:secret@10.0.0.5/s").display == "rtsp://admin:***@10.0.0.5/s"
    assert "secret" not in parse_uri("http://u:secret@127.0.0.1/v").display


@pytest.mark.parametrize("uri, words", [
    ("missing.mp4", "does not exist"),
    ("ftp://host/x", "unknown source scheme"),
    ("no-such-thing", "cannot tell what source"),
    ("", "empty"),
    ("csi://left", "sensor number"),
    (-1, ">= 0"),
])
def test_parse_uri_errors_say_what_and_how(uri, words):
    with pytest.raises(SourceError) as err:
        parse_uri(uri)
    assert words in str(err.value)


def test_capabilities_are_read_from_the_build_information():
    caps = capabilities._parse("  GUI:    NONE\n  Video I/O:\n    FFMPEG:   YES\n    GStreamer:   NO\n"
                               "    v4l/v4l2:   YES (linux/videodev2.h)\n")
    assert caps == {"GStreamer": False, "FFmpeg": True, "V4L2": True, "GUI": False}
    caps = capabilities._parse("  GUI:   GTK3\n    GStreamer:   YES (1.20.3)\n")
    assert caps["GStreamer"] and caps["GUI"]
    assert set(capabilities.capabilities()) == {"GStreamer", "FFmpeg", "V4L2", "GUI"}


@pytest.fixture
def no_gstreamer(monkeypatch):
    monkeypatch.setattr(capabilities, "capabilities", lambda: {"GStreamer": False, "FFmpeg": True, "V4L2": True,
                                                               "GUI": False})


@pytest.mark.parametrize("uri", ["csi://0", "videotestsrc ! appsink", "gst:videotestsrc ! appsink"])
def test_gstreamer_sources_without_gstreamer_name_the_capability_and_the_fix(no_gstreamer, uri):
    with pytest.raises(SourceError) as err:
        open_source(uri)
    msg = str(err.value)
    assert "GStreamer" in msg and "JetPack" in msg


def test_rtsp_with_gstreamer_forced_but_missing_fails_clearly(no_gstreamer):
    with pytest.raises(SourceError, match="GStreamer"):
        open_source("rtsp://127.0.0.1:1/x", rtsp_backend="gstreamer")


def test_rtsp_falls_back_to_ffmpeg_without_gstreamer(no_gstreamer):
    # nothing listens on port 1 of the loopback: FFmpeg is chosen and the connection error is clear
    with pytest.raises(SourceError) as err:
        open_source("rtsp://127.0.0.1:1/stream", open_timeout_s=2, read_timeout_s=2)
    assert "cannot open RTSP stream" in str(err.value)


def test_csi_and_rtsp_pipelines():
    csi = pipelines.csi_pipeline(1, 1280, 720, 59.94, flip_method=2)
    assert csi.startswith("nvarguscamerasrc sensor-id=1 ! video/x-raw(memory:NVMM), width=1280, height=720")
    assert "framerate=2997/50" in csi and "nvvidconv flip-method=2" in csi and csi.endswith("sync=false")
    jetson = pipelines.rtsp_pipeline("rtsp://cam/s", decoder="nvv4l2decoder", codec="h265", latency_ms=100)
    assert 'rtspsrc location="rtsp://cam/s" latency=100 protocols=tcp' in jetson
    assert "rtph265depay ! h265parse ! nvv4l2decoder ! nvvidconv" in jetson and "appsink drop=true" in jetson
    assert "avdec_h264" in pipelines.rtsp_pipeline("rtsp://cam/s", decoder="avdec")
    with pytest.raises(SourceError):
        pipelines.rtsp_pipeline('rtsp://cam/"x', decoder="avdec")


def test_raw_pipeline_must_end_in_appsink():
    assert pipelines.check_raw_pipeline("gst:videotestsrc ! appsink") == "videotestsrc ! appsink"
    with pytest.raises(SourceError, match="appsink"):
        pipelines.check_raw_pipeline("videotestsrc ! autovideosink")


def test_video_file_frames_then_end_of_stream(tmp_path):
    video = write_video(tmp_path / "v.avi", 12)
    with open_source(str(video)) as src:
        frames = []
        while True:
            r = src.read(5.0)
            if r.status is not ReadStatus.OK:
                break
            frames.append(r.frame)
        assert r.status is ReadStatus.END_OF_STREAM
        assert src.read(0.1).status is ReadStatus.END_OF_STREAM
    assert [f.id for f in frames] == list(range(12))
    assert all(f.image.shape == (120, 160, 3) for f in frames)
    assert frames[5].image.mean() == pytest.approx(40, abs=3)
    assert all(a.timestamp <= b.timestamp and a.monotonic <= b.monotonic for a, b in zip(frames, frames[1:]))
    s = src.stats()
    assert (s.captured, s.delivered, s.dropped) == (12, 12, 0)


def test_video_file_loops_when_asked(tmp_path):
    video = write_video(tmp_path / "v.avi", 3)
    with open_source(str(video), loop=True) as src:
        ids = [src.read(5.0).frame.id for _ in range(7)]
    assert ids == list(range(7))


def test_image_folder_in_name_order_skipping_unreadable_files(tmp_path):
    folder = write_images(tmp_path / "imgs", 4)
    (folder / "img_001b.png").write_bytes(b"not a png")
    src = open_source(str(folder))
    frames = list(src)
    src.close()
    assert [int(f.image.mean()) for f in frames] == [0, 20, 40, 60]
    assert src.read(0.1).status is ReadStatus.END_OF_STREAM


def test_empty_folder_and_unopenable_file_are_source_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="holds no images"):
        open_source(str(tmp_path / "empty"))
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(SourceError, match="cannot open video file"):
        open_source(str(bad))


def test_missing_camera_device_lists_what_exists():
    with pytest.raises(SourceError) as err:
        open_source("/dev/video97")
    assert "does not exist" in str(err.value) and "v4l2-ctl" in str(err.value)


def test_read_never_blocks_past_its_timeout_on_a_silent_stream():
    broadcaster = MjpegBroadcaster()   # a server that never publishes a frame
    with MjpegServer(broadcaster) as server:
        src = open_source(server.stream_url, read_timeout_s=30)
        result = src.read(0.3)
        assert result.status is ReadStatus.TIMEOUT and result.frame is None
        src.close()


def test_mjpeg_reader_refuses_non_mjpeg_answers():
    def html(handler, server):
        send_bytes(handler, b"<html></html>", "text/html")

    with HttpServer({"/page": html}) as server:
        with pytest.raises(SourceError, match="not an MJPEG stream"):
            open_source(server.url + "/page")
        with pytest.raises(SourceError, match="HTTP 404"):
            open_source(server.url + "/nothing-here")


def test_mjpeg_reader_handles_parts_without_content_length():
    import numpy as np

    frame = jpeg(np.full((24, 32, 3), 200, np.uint8))

    def camera(handler, server):   # some cameras omit Content-Length and put the boundary without "--"
        handler.send_response(200)
        handler.send_header("Content-Type", 'multipart/x-mixed-replace; boundary="--myboundary"')
        handler.end_headers()
        for _ in range(3):
            handler.wfile.write(b"--myboundary\r\nContent-Type: image/jpeg\r\n\r\n" + frame + b"\r\n")
        handler.wfile.write(b"--myboundary\r\n")

    with HttpServer({"/cam": camera}) as server:
        src = open_source(server.url + "/cam", reconnect=False, drop_policy="block")
        images = [src.read(5.0) for _ in range(3)]
        src.close()
    assert all(r.ok and r.frame.image.shape == (24, 32, 3) for r in images)


def test_options_are_strict_and_checked():
    with pytest.raises(ConfigError, match="did you mean 'buffer_size'"):
        open_source("testsrc://", {"bufer_size": 2})
    with pytest.raises(ConfigError, match="source.reconnect_max_s"):
        SourceOptions(reconnect_initial_s=5, reconnect_max_s=1)
    src = open_source("testsrc://", {"buffer_size": 3, "drop_policy": "block"}, start=False)
    assert src.options.buffer_size == 3 and src.drop_policy == "block"


def test_backoff_is_exponential_and_capped():
    b = Backoff(0.5, 2.0, 4.0)
    assert [b.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    b.reset()
    assert b.next_delay() == 0.5


class _BrokenGrabber:
    """TEST DOUBLE: a grabber whose grab() has a bug (raises a non-SDK exception)."""

    live = True
    nominal_fps = None
    description = "broken test grabber"

    def open(self):
        pass

    def grab(self):
        raise RuntimeError("bug in a backend")

    def close(self):
        pass


def test_a_crashing_capture_thread_turns_into_error_status_not_endless_timeouts():
    from tocoad_edge.stream import Source

    source = Source("broken", "test", _BrokenGrabber(), SourceOptions()).start()
    result = source.read(5.0)
    source.close()
    assert result.status is ReadStatus.ERROR and "bug in a backend" in result.error
