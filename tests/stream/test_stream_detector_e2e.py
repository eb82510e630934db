"""End to end with the real Detector: the tocoad-stream app (stream/app.py) on a video file with a tiny bundle."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from stream_support import write_video
from tocoad_edge.stream.app import main


@pytest.fixture
def bundle(request):
    try:
        return request.getfixturevalue("tiny_bundle")   # tests/conftest.py (trains and exports once per session)
    except pytest.FixtureLookupError:
        pytest.skip("the tiny_bundle fixture (tests/conftest.py) is not available")


@pytest.mark.parametrize("extra", [[], ["--pipelined"]], ids=["sequential", "pipelined"])
def test_camera_stream_app_with_a_real_bundle(bundle, tmp_path, capsys, extra):
    video = write_video(tmp_path / "line.avi", 12, size=(96, 96))
    out = tmp_path / "out"
    out.mkdir()
    code = main(["--bundle", str(bundle), "--source", str(video), "--save", str(out / "overlay.avi"),
                 "--jsonl", str(out / "results.jsonl"), "--ng-dir", str(out / "ng"), "--log-every-s", "0", *extra])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["end_reason"] == "end_of_stream" and summary["accounted"] is True
    assert summary["captured"] == summary["processed"] == 12 and summary["dropped"] == 0
    lines = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["frame_id"] for r in lines] == list(range(12))
    assert all(r["decision"] in ("OK", "NG") and np.isfinite(r["score"]) and r["latency_ms"] > 0 for r in lines)
    assert {"backbone", "search", "total"} <= set(lines[0]["timings_ms"])
    assert sum(r["decision"] == "NG" for r in lines) == len(list((out / "ng").glob("*.json"))) == summary["ng"]
    cap = cv2.VideoCapture(str(out / "overlay.avi"))
    frames = 0
    while cap.read()[0]:
        frames += 1
    cap.release()
    assert frames == 12


def test_demo_video_step(bundle, tmp_path):
    from tocoad_edge.synth.sample_set import make_sample_dataset
    from tocoad_edge.stream.demo_video import make_test_video, stream_video

    data = make_sample_dataset(tmp_path / "data", n_train=0, n_test_good=3, n_test_defect=1, size=64)
    video = make_test_video(data, tmp_path / "test_images.mp4")
    summary = stream_video(bundle, video, tmp_path / "overlay.mp4", tmp_path / "results.jsonl")
    assert summary["captured"] == summary["processed"] == 6 and summary["accounted"] is True
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 6


def test_stream_app_with_a_tiled_bundle(tiled_bundle, tmp_path, capsys):
    """Tiling needs nothing of the stream path: the app's overlays and JSON lines come from the stitched map."""
    video = write_video(tmp_path / "line.avi", 6, size=(128, 96))
    out = tmp_path / "out"
    out.mkdir()
    code = main(["--bundle", str(tiled_bundle), "--source", str(video), "--save", str(out / "overlay.avi"),
                 "--jsonl", str(out / "results.jsonl"), "--log-every-s", "0", "--pipelined"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["captured"] == summary["processed"] == 6 and summary["accounted"] is True
    lines = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["frame_id"] for r in lines] == list(range(6))
    assert all(r["decision"] in ("OK", "NG") and np.isfinite(r["score"]) for r in lines)
    cap = cv2.VideoCapture(str(out / "overlay.avi"))
    ok, first = cap.read()
    cap.release()
    assert ok and first.shape[:2] == (96, 128)
