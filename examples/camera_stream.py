#!/usr/bin/env python3
"""Run a tocoad-edge bundle on a camera, RTSP stream, video file or image folder: the same program as the
``tocoad-stream`` command (tocoad_edge/stream/app.py), for a checkout that is not pip-installed.

    python examples/camera_stream.py --bundle bundle/ --source 0 --live-view 127.0.0.1:8080
    python examples/camera_stream.py --bundle bundle/ --source video.mp4 --save overlay.mp4 --jsonl results.jsonl
    python examples/camera_stream.py --bundle bundle/ --source "rtsp://user:pass@10.0.0.5/stream1"
    python examples/camera_stream.py --bundle bundle/ --source "videotestsrc ! videoconvert ! appsink"
    python examples/camera_stream.py --config line3.yaml

`--help` lists every option; all of them can live in the YAML file instead (docs/streams.md).
"""
import sys

from tocoad_edge.stream.app import main

if __name__ == "__main__":
    sys.exit(main(prog="camera_stream.py"))
