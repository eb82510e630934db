"""The quick start's streaming step (``tocoad-demo``): a video of a dataset's test images, run through
``run_stream`` into an overlay video and JSON lines."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2

from ..errors import DataError, ResourceError
from .grabbers import IMAGE_EXTENSIONS


def make_test_video(data_root: str | Path, path: str | Path, *, fps: float = 5.0, hold_frames: int = 1) -> Path:
    """Write every image under ``data_root/test/*/`` (name order, good first) into a video, each shown for
    ``hold_frames`` frames at the size of the first image. ``.avi`` and ``.mkv`` get FFV1, a lossless codec, so the
    stream scores the very frames the evaluation scored (MJPG at full quality where this OpenCV lacks FFV1);
    ``.mp4`` gets mp4v, whose compression moves the scores enough to turn good images into false calls."""
    root = Path(data_root) / "test"
    classes = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: (p.name != "good", p.name)) \
        if root.is_dir() else []
    files = [f for c in classes for f in sorted(c.iterdir()) if f.suffix.lower() in IMAGE_EXTENSIONS]
    if not files:
        raise DataError(f"no test images under {root}", expected="test/<class>/*.png (MVTec AD layout)", got="none")
    path = Path(path)
    codecs = ["mp4v"] if path.suffix.lower() in (".mp4", ".m4v", ".mov") else ["FFV1", "MJPG"]
    writer = None
    try:
        for f in files:
            image = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if image is None:
                continue
            if writer is None:
                size = (image.shape[1], image.shape[0])
                writer = _open_writer(path, codecs, fps, size)
            if (image.shape[1], image.shape[0]) != size:
                image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            for _ in range(hold_frames):
                writer.write(image)
    finally:
        if writer is not None:
            writer.release()
    return path


def _open_writer(path: Path, codecs: list[str], fps: float, size: tuple[int, int]) -> cv2.VideoWriter:
    """A writer for the first of ``codecs`` this OpenCV can write (MJPG at full quality)."""
    for fourcc in codecs:
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
        if writer.isOpened():
            writer.set(cv2.VIDEOWRITER_PROP_QUALITY, 100)       # MJPG's; the others ignore it
            return writer
        writer.release()
    raise ResourceError(f"cannot write the video {path}", expected=f"a writable folder and one of the codecs {codecs}",
                        got="OpenCV could not open a writer", fix="check the folder is writable, or write a .avi")


def stream_video(bundle: str | Path, video: str | Path, overlay: str | Path, jsonl: str | Path) -> dict[str, Any]:
    """Run ``bundle`` on every frame of ``video``; write the overlay video and one JSON line per frame.
    Returns the run's summary (counts, FPS, latency percentiles)."""
    from ..runtime import Detector
    from .app import report_dict
    from .loop import run_stream
    from .sinks import JsonLinesSink, VideoFileSink
    from .sources import open_source

    with Detector.open(bundle) as det:
        source = open_source(str(video))
        try:
            sinks = [VideoFileSink(overlay, fps=source.nominal_fps), JsonLinesSink(jsonl)]
        except BaseException:
            source.close()
            raise
        return report_dict(run_stream(det, source, sinks, log_every_s=None))
