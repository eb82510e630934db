#!/usr/bin/env python3
"""A timed run of a bundle on a video file through the stream stack: prints FPS and latency percentiles.

    python benchmarks/stream_video_run.py --bundle BUNDLE [--video FILE] [--duration 120] [--mode block|realtime]
                                          [--pipelined]

Without --video, a 10 s 25 fps clip of synthetic inspection frames (tocoad_edge.synth.sample_set) is generated and
looped. ``block``: every frame is processed (FPS = throughput). ``realtime``: the file plays at its frame rate
like a camera and the newest frame wins (FPS = what a camera-driven line gets; drops are counted).
Latency is capture → prediction, buffer wait included. Figures depend on the machine and its load.
"""
from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np


def make_clip(path: Path, size: int, seconds: float = 10.0, fps: float = 25.0) -> Path:
    from tocoad_edge.synth.sample_set import make_sample_dataset

    data = make_sample_dataset(path.parent / "clip_frames", n_train=0, n_test_good=12, n_test_defect=4, size=size)
    images = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in sorted((data / "test").rglob("*.png"))]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (size, size))
    for i in range(int(seconds * fps)):
        writer.write(images[(i // 5) % len(images)])   # each image held for 5 frames
    writer.release()
    return path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", required=True, help="bundle folder (tocoad-export)")
    p.add_argument("--video", help="video file (default: a generated synthetic clip, looped)")
    p.add_argument("--duration", type=float, default=120.0, help="seconds to run (default 120)")
    p.add_argument("--mode", choices=["block", "realtime"], default="block")
    p.add_argument("--pipelined", action="store_true", help="run_stream(pipelined=True): Detector.predict_stream")
    p.add_argument("--size", type=int, default=256, help="frame size of the generated clip")
    p.add_argument("--backend", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", help="also write the figures to this JSON file")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    from tocoad_edge.runtime import Detector
    from tocoad_edge.stream import open_source, run_stream

    class TimedDetector:
        """Wraps the real Detector to collect its own per-frame time (timings_ms['total'])."""

        def __init__(self, det):
            self.det, self.totals = det, []

        def predict(self, frame):
            pred = self.det.predict(frame)
            self.totals.append(pred.timings_ms.get("total", float("nan")))
            return pred

        def predict_stream(self, frames):
            for pred in self.det.predict_stream(frames):
                self.totals.append(pred.timings_ms.get("total", float("nan")))
                yield pred

    with tempfile.TemporaryDirectory() as tmp:
        video = Path(args.video) if args.video else make_clip(Path(tmp) / "clip.avi", args.size)
        with Detector.open(args.bundle, backend=args.backend, threads=args.threads) as det:
            timed = TimedDetector(det)
            timed.predict(np.zeros((args.size, args.size, 3), np.uint8))   # warm-up, not counted
            timed.totals.clear()
            source = open_source(str(video), loop=True, realtime=args.mode == "realtime")
            t0 = time.monotonic()
            report = run_stream(timed, source, [], duration_s=args.duration, log_every_s=30,
                                pipelined=args.pipelined)
            wall = time.monotonic() - t0
    s = report.stats
    det_ms = np.asarray(timed.totals)
    figures = {
        "mode": args.mode, "pipelined": args.pipelined, "duration_s": round(wall, 1),
        "video": str(args.video or f"synthetic {args.size}px MJPG"),
        "captured": s.captured, "processed": s.processed, "dropped": s.dropped, "accounted": report.consistent,
        "fps": round(report.fps_overall, 2),
        "latency_ms_p50": round(report.latency_ms_p50, 1), "latency_ms_p99": round(report.latency_ms_p99, 1),
        "latency_ms_mean": round(report.latency_ms_mean, 1),
        "detector_ms_mean": round(float(det_ms.mean()), 1),
        "detector_ms_p99": round(float(np.percentile(det_ms, 99)), 1),
        "latency_p99_over_detector_mean": round(report.latency_ms_p99 / float(det_ms.mean()), 2),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
    }
    print(json.dumps(figures, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return 0 if report.consistent else 1


if __name__ == "__main__":
    sys.exit(main())
