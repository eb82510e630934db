"""The overlay stream written to a video file (``.mp4``: mp4v, ``.avi``: MJPG)."""
from __future__ import annotations

from pathlib import Path

import cv2

from ...errors import ConfigError, ResourceError
from ...runtime.frames import to_bgr_frame
from .. import capabilities
from .base import Sink

FOURCC_BY_SUFFIX = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


class VideoFileSink(Sink):
    """Opens the writer at the first frame (its size fixes the video's size; later frames of another size
    are resized). ``fps``: the file's frame rate (default 25, or pass the source's rate)."""

    def __init__(self, path: str | Path, fps: float | None = None, fourcc: str | None = None, overlay: bool = True):
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if fourcc is None and suffix not in FOURCC_BY_SUFFIX:
            raise ConfigError(f"cannot tell the video format of {self.path}",
                              expected=f"a file ending in one of {sorted(FOURCC_BY_SUFFIX)}", got=suffix or "no suffix",
                              fix="name the file e.g. overlay.mp4, or pass a fourcc")
        capabilities.require("FFmpeg", f"writing video file {self.path}", error=ResourceError)
        self.fourcc = fourcc or FOURCC_BY_SUFFIX[suffix]
        self.fps = fps if fps and fps > 0 else 25.0
        self.overlay = overlay
        self.frames = 0
        self._writer = None
        self._size: tuple[int, int] | None = None
        if not self.path.parent.is_dir():
            raise ResourceError(f"folder {self.path.parent} for the video does not exist", fix="create it first")

    def write(self, result) -> None:
        image = result.overlay() if self.overlay else to_bgr_frame(result.frame.image)
        h, w = image.shape[:2]
        if self._writer is None:
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*self.fourcc), self.fps, (w, h))
            if not self._writer.isOpened():
                raise ResourceError(f"cannot open a video writer for {self.path}", got=f"fourcc {self.fourcc}",
                                    fix="use .avi (MJPG) or .mp4 (mp4v), and check the folder is writable")
            self._size = (w, h)
        if (w, h) != self._size:
            image = cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(image)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
