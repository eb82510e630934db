"""``open_source(uri, options)``: one call for every kind of camera, stream, file and folder.

    0, "1", "/dev/video0", "v4l2:///dev/video0"      V4L2 / USB camera
    "csi://0"                                        Jetson CSI camera (nvarguscamerasrc; needs GStreamer)
    "rtsp://user:pass@host:554/stream"               RTSP (GStreamer when OpenCV has it, else FFmpeg)
    "video.mp4", "file:///data/video.mp4"            video file (FFmpeg)
    "folder/"                                        the images of a folder, in name order
    "http://host/video.mjpg"                         HTTP MJPEG stream (built-in reader, no GStreamer needed)
    "gst:… ! appsink", "videotestsrc ! … ! appsink"  raw GStreamer pipeline
    "testsrc://?width=640&height=480"                a moving test pattern (no camera needed)
"""
from __future__ import annotations

import dataclasses
import os
import re
import sys
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SourceError
from ..typed_config import from_dict
from . import capabilities, pipelines
from .capture import Source
from .grabbers import Grabber, ImageFolderGrabber, OpenCVGrabber, TestPatternGrabber
from .mjpeg import MjpegReader, redact_url
from .options import SourceOptions

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mjpeg", ".mjpg", ".ts", ".h264", ".h265",
                    ".mpg", ".mpeg", ".wmv", ".flv")

KINDS = ("v4l2", "csi", "rtsp", "file", "folder", "mjpeg", "gstreamer", "test")


@dataclass(frozen=True)
class SourceSpec:
    kind: str          # one of KINDS
    target: str        # device path or index, URL, file or folder path, or pipeline
    display: str       # the uri with any password replaced by ***


def parse_uri(uri: str | int) -> SourceSpec:
    """Decide what kind of source ``uri`` names, without opening anything."""
    if isinstance(uri, bool) or not isinstance(uri, (str, int, os.PathLike)):
        raise SourceError("a source must be a device index, path, URL or pipeline string",
                          got=f"{type(uri).__name__} {uri!r}")
    if isinstance(uri, int):
        if uri < 0:
            raise SourceError("a camera index must be >= 0", got=str(uri))
        return SourceSpec("v4l2", str(uri), str(uri))
    text = os.fspath(uri).strip()
    if not text:
        raise SourceError("the source is empty", expected="a device index, path, URL or pipeline",
                          fix="pass e.g. --source 0, --source video.mp4 or --source rtsp://host/stream")
    if text.isdigit():
        return SourceSpec("v4l2", text, text)
    if pipelines.looks_like_pipeline(text):
        return SourceSpec("gstreamer", text, text)
    scheme = urllib.parse.urlsplit(text).scheme.lower() if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text) else ""
    if scheme in ("rtsp", "rtsps", "rtspt"):
        return SourceSpec("rtsp", text, redact_url(text))
    if scheme in ("http", "https"):
        return SourceSpec("mjpeg", text, redact_url(text))
    if scheme == "csi":
        sensor = text[len("csi://"):] or "0"
        if not sensor.isdigit():
            raise SourceError("a CSI camera URI names a sensor number", expected="csi://0, csi://1, …", got=text)
        return SourceSpec("csi", sensor, text)
    if scheme == "v4l2":
        target = text[len("v4l2://"):]
        return SourceSpec("v4l2", target, text)
    if scheme == "testsrc":
        return SourceSpec("test", text, text)
    if scheme == "file":
        text = urllib.parse.unquote(urllib.parse.urlsplit(text).path)
    elif scheme:
        raise SourceError(f"unknown source scheme '{scheme}://'",
                          expected="rtsp://, http(s)://, csi://, v4l2://, file://, testsrc:// or a path",
                          got=text, fix="see docs/streams.md for the source forms")
    if text.startswith("/dev/video"):
        return SourceSpec("v4l2", text, text)
    path = Path(text).expanduser()
    if path.is_dir():
        return SourceSpec("folder", str(path), str(path))
    if path.is_file():
        return SourceSpec("file", str(path), str(path))
    if path.suffix.lower() in VIDEO_EXTENSIONS:
        raise SourceError(f"video file {path} does not exist", fix="check the path")
    raise SourceError(f"cannot tell what source '{text}' is",
                      expected="a camera index (0), /dev/videoN, csi://N, rtsp://…, http://… (MJPEG), an existing "
                               "video file or folder, or a GStreamer pipeline ending in appsink",
                      got=text, fix="check the spelling; a file or folder must exist")


def _as_options(options: SourceOptions | dict[str, Any] | None, overrides: dict[str, Any]) -> SourceOptions:
    if options is None:
        options = SourceOptions()
    elif isinstance(options, dict):
        options = from_dict(SourceOptions, options, "source")
    elif not isinstance(options, SourceOptions):
        raise SourceError("options must be a SourceOptions or a mapping", got=type(options).__name__)
    return dataclasses.replace(options, **overrides) if overrides else options


def _v4l2_grabber(spec: SourceSpec, o: SourceOptions) -> Grabber:
    import cv2

    on_linux = sys.platform.startswith("linux")
    if on_linux:
        capabilities.require("V4L2", f"camera {spec.display}")
    target: str | int = int(spec.target) if spec.target.isdigit() else spec.target
    if isinstance(target, str) and not Path(target).exists():
        present = sorted(str(p) for p in Path("/dev").glob("video*")) if on_linux else []
        raise SourceError(f"camera device {target} does not exist", expected="an existing /dev/videoN",
                          got=", ".join(present) or "no /dev/video* devices",
                          fix="plug the camera in, or pick one of the devices listed (v4l2-ctl --list-devices)")
    props: list[tuple[int, float]] = []
    if o.fourcc:
        props.append((cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*o.fourcc)))
    if o.width:
        props.append((cv2.CAP_PROP_FRAME_WIDTH, o.width))
    if o.height:
        props.append((cv2.CAP_PROP_FRAME_HEIGHT, o.height))
    if o.fps:
        props.append((cv2.CAP_PROP_FPS, o.fps))
    props.append((cv2.CAP_PROP_BUFFERSIZE, 1))
    return OpenCVGrabber(target, cv2.CAP_V4L2 if on_linux else cv2.CAP_ANY, live=True,
                         description=f"camera {spec.display}", props=tuple(props),
                         fix="check the camera is plugged in and not used by another program "
                             "(fuser /dev/video*), and your user is in the 'video' group")


def _gstreamer_grabber(pipeline: str, description: str, *, live: bool = True) -> Grabber:
    import cv2

    return OpenCVGrabber(pipeline, cv2.CAP_GSTREAMER, live=live, description=description,
                         fix="run the pipeline with gst-launch-1.0 (replacing appsink by fakesink) to see the error")


def _csi_grabber(spec: SourceSpec, o: SourceOptions) -> Grabber:
    capabilities.require("GStreamer", f"the CSI camera {spec.display} (nvarguscamerasrc)")
    pipeline = pipelines.csi_pipeline(int(spec.target), o.width or 1920, o.height or 1080, o.fps or 30.0,
                                      o.flip_method)
    return _gstreamer_grabber(pipeline, f"CSI camera {spec.target}")


def _rtsp_grabber(spec: SourceSpec, o: SourceOptions) -> Grabber:
    import cv2

    backend = o.rtsp_backend
    if backend == "auto":
        backend = "gstreamer" if capabilities.has("GStreamer") else "ffmpeg"
    if backend == "gstreamer":
        capabilities.require("GStreamer", f"RTSP {spec.display} with rtsp_backend=gstreamer")
        pipeline = pipelines.rtsp_pipeline(spec.target, latency_ms=o.rtsp_latency_ms, transport=o.rtsp_transport,
                                           codec=o.codec, decoder=o.decoder, read_timeout_s=o.read_timeout_s)
        return _gstreamer_grabber(pipeline, f"RTSP stream {spec.display}")
    capabilities.require("FFmpeg", f"RTSP {spec.display} with rtsp_backend=ffmpeg")
    _set_ffmpeg_rtsp_transport(o.rtsp_transport)
    params = (cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(o.open_timeout_s * 1000),
              cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(o.read_timeout_s * 1000))
    return OpenCVGrabber(spec.target, cv2.CAP_FFMPEG, live=True, description=f"RTSP stream {spec.display}",
                         params=params, fix="check the URL (try it in ffplay or VLC), credentials and network")


_FFMPEG_OPTIONS = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
_ffmpeg_options_set_here: str | None = None


def _set_ffmpeg_rtsp_transport(transport: str) -> None:
    """FFmpeg reads its RTSP options from an environment variable when a capture opens. Set it unless the user
    set it themselves (then theirs wins)."""
    global _ffmpeg_options_set_here
    current = os.environ.get(_FFMPEG_OPTIONS)
    if current is None or current == _ffmpeg_options_set_here:
        _ffmpeg_options_set_here = f"rtsp_transport;{transport}"
        os.environ[_FFMPEG_OPTIONS] = _ffmpeg_options_set_here


def _file_grabber(spec: SourceSpec, o: SourceOptions) -> Grabber:
    import cv2

    capabilities.require("FFmpeg", f"video file {spec.display}")
    return OpenCVGrabber(spec.target, cv2.CAP_FFMPEG, live=False, loop=o.loop, description=f"video file {spec.display}",
                         fix="check the file plays (ffprobe FILE); re-encode it to H.264 MP4 or MJPEG AVI if not")


def _test_grabber(spec: SourceSpec, o: SourceOptions) -> Grabber:
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(spec.target).query)
    try:
        width = int(query.get("width", [o.width or 640])[0])
        height = int(query.get("height", [o.height or 480])[0])
    except ValueError:
        raise SourceError("testsrc width and height must be integers", got=spec.target) from None
    return TestPatternGrabber(width, height, o.fps)


def make_grabber(spec: SourceSpec, o: SourceOptions) -> Grabber:
    if spec.kind == "v4l2":
        return _v4l2_grabber(spec, o)
    if spec.kind == "csi":
        return _csi_grabber(spec, o)
    if spec.kind == "rtsp":
        return _rtsp_grabber(spec, o)
    if spec.kind == "file":
        return _file_grabber(spec, o)
    if spec.kind == "folder":
        return ImageFolderGrabber(spec.target, loop=o.loop)
    if spec.kind == "mjpeg":
        return MjpegReader(spec.target, timeout_s=o.read_timeout_s)
    if spec.kind == "gstreamer":
        capabilities.require("GStreamer", "a GStreamer pipeline source")
        return _gstreamer_grabber(pipelines.check_raw_pipeline(spec.target), "GStreamer pipeline")
    if spec.kind == "test":
        return _test_grabber(spec, o)
    raise SourceError(f"unknown source kind {spec.kind!r}", expected=str(KINDS))


def open_source(uri: str | int, options: SourceOptions | dict[str, Any] | None = None, *,
                start: bool = True, **overrides: Any) -> Source:
    """Open ``uri`` (see the module docstring) and start its capture thread.

    ``options``: SourceOptions, or a mapping checked by the strict loader; keyword ``overrides`` replace
    single fields. Raises SourceError (what, expected, got, fix) when the source cannot be used.
    """
    opts = _as_options(options, overrides)
    spec = parse_uri(uri)
    source = Source(spec.display, spec.kind, make_grabber(spec, opts), opts)
    return source.start() if start else source
