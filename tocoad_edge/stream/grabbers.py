"""Blocking frame readers that the capture thread drives: ``open()``, ``grab()``, ``close()``.

``grab()`` returns an image, returns None at the end of a file or folder, and raises SourceError when a
live stream breaks (the capture thread then reconnects). ``live`` says which of the two a source is.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import SourceError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class Grabber(Protocol):
    live: bool
    description: str
    nominal_fps: float | None

    def open(self) -> None: ...
    def grab(self) -> np.ndarray | None: ...
    def close(self) -> None: ...


class OpenCVGrabber:
    """``cv2.VideoCapture`` over one backend (V4L2, FFmpeg, GStreamer)."""

    def __init__(self, target: str | int, api: int, *, live: bool, description: str, loop: bool = False,
                 params: tuple[int, ...] = (), props: tuple[tuple[int, float], ...] = (), fix: str = ""):
        self.target = target
        self.api = api
        self.live = live
        self.description = description
        self.loop = loop
        self.params = params
        self.props = props
        self.fix = fix or "check the device or address, and that no other program holds the camera"
        self.nominal_fps: float | None = None
        self._cap = None

    def open(self) -> None:
        import cv2

        cap = cv2.VideoCapture(self.target, self.api, list(self.params)) if self.params \
            else cv2.VideoCapture(self.target, self.api)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open {self.description}", got="cv2.VideoCapture not opened", fix=self.fix)
        for prop, value in self.props:
            cap.set(prop, value)
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.nominal_fps = float(fps) if fps and 0 < fps < 1000 else None
        self._cap = cap

    def grab(self) -> np.ndarray | None:
        import cv2

        if self._cap is None:
            raise SourceError(f"{self.description} is not open", fix="call open() first")
        try:
            ok, image = self._cap.read()
        except cv2.error as exc:
            raise SourceError(f"reading {self.description} failed", got=str(exc).strip()) from None
        if ok and image is not None:
            return image
        if self.live:
            raise SourceError(f"{self.description} delivered no frame",
                              got="cv2.VideoCapture.read() returned False",
                              fix="the source reconnects by itself; check the camera or stream if this repeats")
        if self.loop:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = self._cap.read()
            if ok and image is not None:
                return image
        return None

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class ImageFolderGrabber:
    """The images of a folder in name order. Unreadable files are skipped with a warning."""

    live = False
    nominal_fps = None

    def __init__(self, folder: str | Path, *, loop: bool = False):
        self.folder = Path(folder)
        self.loop = loop
        self.description = f"image folder {self.folder}"
        self.files: list[Path] = []
        self.skipped: list[Path] = []
        self._next = 0

    def open(self) -> None:
        if not self.folder.is_dir():
            raise SourceError(f"{self.description} does not exist", fix="check the path")
        self.files = sorted(p for p in self.folder.iterdir()
                            if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not self.files:
            raise SourceError(f"{self.description} holds no images", expected=f"files ending in {IMAGE_EXTENSIONS}",
                              got="none", fix="point --source at a folder of images")
        self._next = 0

    def grab(self) -> np.ndarray | None:
        import cv2

        for _ in range(2 * len(self.files) + 1):
            if self._next >= len(self.files):
                if not self.loop or len(self.skipped) >= len(self.files):
                    return None
                self._next = 0
            path = self.files[self._next]
            self._next += 1
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is not None:
                return image
            if path not in self.skipped:
                self.skipped.append(path)
                log.warning("%s: skipped %s (not a readable image)", self.description, path.name)
        return None

    def close(self) -> None:
        pass


class TestPatternGrabber:
    """A moving test pattern (``testsrc://``), to check a setup without a camera. Never fails."""

    live = True
    __test__ = False   # not a pytest test class

    def __init__(self, width: int = 640, height: int = 480, fps: float | None = None):
        self.width, self.height = width, height
        self.nominal_fps = fps
        self.description = f"test pattern {width}x{height}"
        self._n = 0
        self._next_due = 0.0
        yy, xx = np.mgrid[0:height, 0:width]
        self._base = (((xx * 255) // max(1, width - 1)).astype(np.uint8),
                      ((yy * 255) // max(1, height - 1)).astype(np.uint8))

    def open(self) -> None:
        self._n = 0
        self._next_due = time.monotonic()

    def grab(self) -> np.ndarray:
        if self.nominal_fps:   # pace like a camera running at `fps`
            self._next_due = max(self._next_due + 1.0 / self.nominal_fps, time.monotonic())
            time.sleep(max(0.0, self._next_due - time.monotonic()))
        gx, gy = self._base
        shift = (self._n * 4) % 256
        image = np.stack([gx, gy, np.full_like(gx, shift)], axis=-1)
        x = (self._n * 8) % max(1, self.width - 32)
        image[self.height // 2 - 16:self.height // 2 + 16, x:x + 32] = 255
        self._n += 1
        return image

    def close(self) -> None:
        pass
