"""Helpers for the stream tests: an honest test double for the detector, and small media made in the test."""
from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from tocoad_edge.runtime import Prediction


class SlowFakeDetector:
    """TEST DOUBLE, not a model: the score is the frame's mean brightness / 128 (so bright frames are NG),
    the anomaly map is the gray frame / 128, and ``predict`` sleeps ``delay_s`` to stand in for a slow model."""

    def __init__(self, delay_s: float = 0.0, zero_map: bool = False):
        self.delay_s = delay_s
        self.zero_map = zero_map
        self.calls = 0

    def predict(self, image: np.ndarray) -> Prediction:
        t0 = time.perf_counter()
        if self.delay_s:
            time.sleep(self.delay_s)
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        amap = np.zeros(gray.shape, np.float32) if self.zero_map else gray.astype(np.float32) / 128.0
        score = float(gray.mean()) / 128.0
        self.calls += 1
        return Prediction(score, score * 10.0, score > 1.0, amap, {"total": (time.perf_counter() - t0) * 1000.0})


def write_video(path: Path, n_frames: int, size=(160, 120), fps: float = 25.0) -> Path:
    """An MJPG AVI whose frame i has brightness 8·i (so each frame is recognisable)."""
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened()
    for i in range(n_frames):
        writer.write(np.full((h, w, 3), (8 * i) % 256, np.uint8))
    writer.release()
    return path


def write_images(folder: Path, n: int, size=(96, 64)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    w, h = size
    for i in range(n):
        cv2.imwrite(str(folder / f"img_{i:03d}.png"), np.full((h, w, 3), 20 * i % 256, np.uint8))
    return folder


def jpeg(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", image)
    assert ok
    return buf.tobytes()


def publish_moving_bar(broadcaster, stop, size=(160, 120), gray: int = 40, fps: float = 30.0) -> None:
    """Publish JPEG frames (a white bar moving over ``gray``) to an MjpegBroadcaster until ``stop`` is set."""
    w, h = size
    n = 0
    while not stop.wait(1.0 / fps):
        image = np.full((h, w, 3), gray, np.uint8)
        image[:, (n * 4) % w] = 255
        broadcaster.publish(jpeg(image))
        n += 1
