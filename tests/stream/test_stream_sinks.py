"""Sinks and overlay: JSON lines, video file, NG frames under a quota (oldest first), window, overlay drawing."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from stream_support import SlowFakeDetector, write_images, write_video
from tocoad_edge.errors import ConfigError, ResourceError
from tocoad_edge.stream import Frame, draw_overlay, open_source, run_stream
from tocoad_edge.stream.loop import StreamResult, Telemetry
from tocoad_edge.stream.sinks import JsonLinesSink, NgFrameSaver, VideoFileSink, WindowSink
from tocoad_edge.stream.overlay import NG_COLOUR


def test_jsonl_has_one_line_per_processed_frame(tmp_path):
    video = write_video(tmp_path / "v.avi", 20)
    out = tmp_path / "results.jsonl"
    report = run_stream(SlowFakeDetector(), open_source(str(video)), [JsonLinesSink(out)], log_every_s=None)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == report.stats.processed == 20
    first = lines[0]
    assert set(first) >= {"frame_id", "timestamp", "time", "score", "raw_score", "decision", "latency_ms",
                          "timings_ms"}
    assert [r["frame_id"] for r in lines] == list(range(20))
    assert first["decision"] == "OK" and lines[-1]["decision"] == "NG"   # brightness 0 … 152 → score 0 … 1.19
    assert all(r["latency_ms"] >= 0 for r in lines)


def test_video_sink_writes_the_overlay_at_the_first_frame_size(tmp_path):
    folder = write_images(tmp_path / "imgs", 6)
    out = tmp_path / "overlay.avi"
    sink = VideoFileSink(out, fps=10)
    run_stream(SlowFakeDetector(), open_source(str(folder)), [sink], log_every_s=None)
    cap = cv2.VideoCapture(str(out))
    n, shape = 0, None
    while True:
        ok, image = cap.read()
        if not ok:
            break
        n, shape = n + 1, image.shape
    cap.release()
    assert n == sink.frames == 6 and shape == (64, 96, 3)


def test_video_sink_refuses_unknown_suffix_and_missing_folder(tmp_path):
    with pytest.raises(ConfigError, match="video format"):
        VideoFileSink(tmp_path / "out.xyz")
    with pytest.raises(ResourceError, match="does not exist"):
        VideoFileSink(tmp_path / "no" / "out.mp4")


def _result(frame_id: int, brightness: int, telemetry=None) -> StreamResult:
    image = np.random.default_rng(frame_id).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    image[:] = np.clip(image.astype(int) // 4 + brightness, 0, 255).astype(np.uint8)
    pred = SlowFakeDetector().predict(image)
    frame = Frame(frame_id, 1_700_000_000.0 + frame_id, float(frame_id), image)
    return StreamResult(frame, pred, 5.0, telemetry, 10.0)


def test_ng_saver_keeps_ng_records_under_the_quota_removing_the_oldest(tmp_path):
    folder = tmp_path / "ng"
    saver = NgFrameSaver(folder, quota_mb=0.4)
    saver.write(_result(0, 0))                  # OK frame: not saved
    assert not any(folder.iterdir())
    for i in range(1, 13):
        saver.write(_result(i, 200))            # NG frames
    stems = sorted(p.name[:-5] for p in folder.glob("*.json"))
    total = sum(p.stat().st_size for p in folder.iterdir())
    assert total <= saver.quota_bytes and saver.used_bytes == total
    assert saver.saved == 12 and saver.deleted == 12 - len(stems) > 0
    kept_ids = [int(s.rsplit("_", 1)[1]) for s in stems]
    assert kept_ids == list(range(13 - len(stems), 13))          # the newest survive
    stem = stems[-1]
    assert np.load(folder / f"{stem}_map.npy", allow_pickle=False).dtype == np.float32
    assert cv2.imread(str(folder / f"{stem}_frame.png")).shape == (120, 160, 3)
    assert json.loads((folder / f"{stem}.json").read_text())["decision"] == "NG"
    assert not list(folder.glob(".*.tmp"))
    # a restart counts the records already there against the quota
    again = NgFrameSaver(folder, quota_mb=0.4)
    assert again.used_bytes == total
    again.write(_result(13, 200))
    assert sum(p.stat().st_size for p in folder.iterdir()) <= again.quota_bytes
    assert not (folder / f"{stems[0]}.json").exists()


def test_ng_saver_skips_a_record_larger_than_the_quota(tmp_path):
    saver = NgFrameSaver(tmp_path / "ng", quota_mb=0.01)
    saver.write(_result(1, 200))
    assert saver.skipped == 1 and saver.saved == 0 and not any((tmp_path / "ng").iterdir())
    with pytest.raises(ConfigError):
        NgFrameSaver(tmp_path / "ng2", quota_mb=0)


def test_window_sink_without_gui_or_display_says_what_to_use(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(ResourceError) as err:
        WindowSink()
    assert "live view" in str(err.value)


def test_overlay_draws_heat_banner_and_ng_border():
    image = np.full((240, 320, 3), 128, np.uint8)
    amap = np.zeros((60, 80), np.float32)
    amap[30:, 40:] = 3.0                       # the bottom-right quarter far above the threshold
    ng = draw_overlay(image, amap, score=1.7, decision="NG", fps=12.5, latency_ms=40)
    assert ng.shape == image.shape and ng.dtype == np.uint8 and not np.shares_memory(ng, image)
    assert tuple(ng[0, 319]) != (128, 128, 128)
    assert tuple(ng[200, 0]) == NG_COLOUR                                   # red border
    hot, cold = ng[200, 280].astype(int), ng[100, 100].astype(int)
    assert hot[2] > hot[0] and cold[0] > cold[2]                            # red where anomalous, blue elsewhere
    assert ng[:20].mean() < image[:20].mean()                               # dark banner with text
    ok = draw_overlay(image[:, :, 0], None, score=0.2, decision="OK")      # gray frame, no map
    assert ok.shape == (240, 320, 3) and tuple(ok[200, 0]) == (128, 128, 128)


def test_telemetry_reports_fps_and_latency_percentiles(tmp_path):
    video = write_video(tmp_path / "v.avi", 15)
    source = open_source(str(video))
    telemetry = Telemetry(source)
    for i in range(10):
        telemetry.record(float(i + 1), ng=i >= 8)
    s = telemetry.snapshot()
    source.close()
    assert s.processed == 10 and s.ng == 2
    assert s.latency_ms_p50 == pytest.approx(5.5) and 9.0 < s.latency_ms_p99 <= 10.0
    assert s.fps > 0


def test_demo_test_video_has_every_test_image(tmp_path):
    from tocoad_edge.errors import DataError
    from tocoad_edge.synth.sample_set import make_sample_dataset
    from tocoad_edge.stream.demo_video import make_test_video

    data = make_sample_dataset(tmp_path / "data", n_train=0, n_test_good=3, n_test_defect=1, size=64)
    video = make_test_video(data, tmp_path / "t.avi", hold_frames=2)
    with open_source(str(video)) as src:
        frames = list(src)
    assert len(frames) == 2 * (3 + 3) and frames[0].image.shape == (64, 64, 3)
    # lossless: each frame is its test image pixel for pixel (good first, then the defect classes, by name)
    classes = sorted((p for p in (data / "test").iterdir()), key=lambda p: (p.name != "good", p.name))
    images = [cv2.imread(str(f), cv2.IMREAD_COLOR) for c in classes for f in sorted(c.iterdir())]
    for i, image in enumerate(images):
        assert np.array_equal(frames[2 * i].image, image) and np.array_equal(frames[2 * i + 1].image, image)
    with pytest.raises(DataError):
        make_test_video(tmp_path / "nothing", tmp_path / "x.avi")
