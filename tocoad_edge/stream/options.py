"""Options of ``open_source``: one frozen dataclass, also read from YAML by the strict loader."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..typed_config import require


@dataclass(frozen=True)
class SourceOptions:
    # what to ask the camera for (V4L2, CSI; None: the device default)
    width: int | None = None
    height: int | None = None
    fps: float | None = None              # camera: requested rate; CSI: pipeline rate (default 30)
    fourcc: str | None = None             # V4L2 pixel format, e.g. "MJPG" for USB cameras at high resolution
    # buffering and drops
    buffer_size: int = 1                  # frames held between capture and the detector
    # auto: block for files/folders (unless realtime), latest otherwise
    drop_policy: Literal["auto", "latest", "block"] = "auto"
    # files and folders
    loop: bool = False                    # start again at the end instead of END_OF_STREAM
    realtime: bool = False                # deliver at the file's frame rate (or `fps`), as a camera would
    # reconnect
    reconnect: bool = True
    reconnect_initial_s: float = 0.5      # first wait; doubles each failed attempt …
    reconnect_max_s: float = 10.0         # … up to this cap
    max_reconnects: int | None = None     # attempts in a row before giving up (ERROR); None: never give up
    require_initial_connection: bool = True   # open_source raises if the first connection fails
    open_timeout_s: float = 10.0
    read_timeout_s: float = 5.0           # a live stream silent this long counts as broken and is reconnected
    # RTSP and CSI
    rtsp_backend: Literal["auto", "gstreamer", "ffmpeg"] = "auto"   # auto: GStreamer when OpenCV has it
    rtsp_transport: Literal["tcp", "udp"] = "tcp"
    rtsp_latency_ms: int = 200
    codec: Literal["h264", "h265"] = "h264"
    decoder: Literal["auto", "nvv4l2decoder", "avdec"] = "auto"     # auto: nvv4l2decoder on Jetson
    flip_method: int = 0                  # nvvidconv flip-method for the CSI camera (0-7)

    def __post_init__(self) -> None:
        for key in ("width", "height"):
            value = getattr(self, key)
            require(value is None or 16 <= value <= 16384, f"source.{key}", "null or 16..16384", value)
        require(self.fps is None or 0 < self.fps <= 1000, "source.fps", "null or a number in (0, 1000]", self.fps)
        require(self.fourcc is None or len(self.fourcc) == 4, "source.fourcc", "null or 4 characters", self.fourcc)
        require(1 <= self.buffer_size <= 1024, "source.buffer_size", "an integer in 1..1024", self.buffer_size)
        require(self.reconnect_initial_s > 0, "source.reconnect_initial_s", "a number > 0", self.reconnect_initial_s)
        require(self.reconnect_max_s >= self.reconnect_initial_s, "source.reconnect_max_s",
                f"a number >= reconnect_initial_s ({self.reconnect_initial_s})", self.reconnect_max_s)
        require(self.max_reconnects is None or self.max_reconnects >= 0, "source.max_reconnects",
                "null or an integer >= 0", self.max_reconnects)
        require(self.open_timeout_s > 0, "source.open_timeout_s", "a number > 0", self.open_timeout_s)
        require(self.read_timeout_s > 0, "source.read_timeout_s", "a number > 0", self.read_timeout_s)
        require(0 <= self.rtsp_latency_ms <= 10000, "source.rtsp_latency_ms", "an integer in 0..10000",
                self.rtsp_latency_ms)
        require(0 <= self.flip_method <= 7, "source.flip_method", "an integer in 0..7", self.flip_method)
