"""GStreamer pipeline strings for the Jetson CSI camera and RTSP, ending in an appsink OpenCV can read.

The appsink keeps one buffer and drops older ones (``drop=true max-buffers=1 sync=false``): the capture
thread, not GStreamer, decides what to drop, and counts it.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from ..errors import SourceError

APPSINK = "appsink drop=true max-buffers=1 sync=false"
TO_BGR = "videoconvert ! video/x-raw, format=BGR"


def is_jetson() -> bool:
    return Path("/etc/nv_tegra_release").exists() or Path("/sys/module/tegra_fuse").exists()


def _framerate(fps: float) -> str:
    f = Fraction(fps).limit_denominator(1001)
    return f"{f.numerator}/{f.denominator}"


def csi_pipeline(sensor_id: int = 0, width: int = 1920, height: int = 1080, fps: float = 30.0,
                 flip_method: int = 0) -> str:
    """``nvarguscamerasrc`` (Jetson's Argus camera stack) → NVMM NV12 → ``nvvidconv`` → BGR appsink."""
    return (f"nvarguscamerasrc sensor-id={int(sensor_id)} ! "
            f"video/x-raw(memory:NVMM), width={int(width)}, height={int(height)}, "
            f"framerate={_framerate(fps)}, format=NV12 ! "
            f"nvvidconv flip-method={int(flip_method)} ! video/x-raw, format=BGRx ! {TO_BGR} ! {APPSINK}")


def rtsp_pipeline(url: str, *, latency_ms: int = 200, transport: str = "tcp", codec: str = "h264",
                  decoder: str = "auto", read_timeout_s: float = 5.0) -> str:
    """``rtspsrc`` → depay → parse → decoder (``nvv4l2decoder`` on Jetson, else libav) → BGR appsink."""
    if '"' in url or "\n" in url:
        raise SourceError("RTSP URL contains a character a GStreamer pipeline cannot quote",
                          expected="a URL without double quotes or newlines", got=repr(url))
    if codec not in ("h264", "h265"):
        raise SourceError("unsupported RTSP codec", expected="h264 or h265", got=repr(codec))
    if decoder == "auto":
        decoder = "nvv4l2decoder" if is_jetson() else "avdec"
    if decoder == "nvv4l2decoder":
        decode = "nvv4l2decoder ! nvvidconv ! video/x-raw, format=BGRx"
    elif decoder == "avdec":
        decode = f"avdec_{codec}"
    else:
        raise SourceError("unsupported decoder", expected="auto, nvv4l2decoder or avdec", got=repr(decoder))
    depay = "rtph264depay ! h264parse" if codec == "h264" else "rtph265depay ! h265parse"
    protocols = "tcp" if transport == "tcp" else "udp"
    tcp_timeout_us = int(read_timeout_s * 1_000_000)
    return (f'rtspsrc location="{url}" latency={int(latency_ms)} protocols={protocols} '
            f"tcp-timeout={tcp_timeout_us} ! {depay} ! {decode} ! {TO_BGR} ! {APPSINK}")


def looks_like_pipeline(text: str) -> bool:
    return " ! " in text or text.startswith("gst:")


def check_raw_pipeline(text: str) -> str:
    """Strip an optional ``gst:`` prefix; the pipeline must end in an appsink for OpenCV to read it."""
    pipeline = text[4:].strip() if text.startswith("gst:") else text.strip()
    last = pipeline.rsplit("!", 1)[-1].strip()
    if not last.startswith("appsink"):
        raise SourceError("a GStreamer pipeline for OpenCV must end in an appsink",
                          expected="'… ! videoconvert ! video/x-raw, format=BGR ! appsink'", got=f"ends in '{last}'",
                          fix=f"append ' ! {TO_BGR} ! {APPSINK}'")
    return pipeline
