"""Must show: a fast source and a deliberately slow detector keep memory bounded and the counters consistent."""
from __future__ import annotations

import tracemalloc

from stream_support import SlowFakeDetector, write_video
from tocoad_edge.stream import open_source, run_stream

W, H = 640, 480
FRAME_BYTES = W * H * 3


def test_fast_camera_slow_detector_drops_oldest_and_keeps_memory_bounded():
    buffer_size = 4
    source = open_source(f"testsrc://?width={W}&height={H}", buffer_size=buffer_size)   # unpaced: as fast as it can
    assert source.drop_policy == "latest"
    detector = SlowFakeDetector(delay_s=0.03)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        report = run_stream(detector, source, [], max_frames=40, log_every_s=None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    s = report.stats
    final = source.stats()
    assert s.processed == 40 == detector.calls
    assert s.captured > s.processed                       # the camera outran the detector …
    assert s.dropped_by_reason.get("overwritten", 0) > 0  # … and the buffer dropped the oldest frames
    assert s.processed + s.dropped == s.captured          # every frame accounted for
    assert report.consistent
    assert final.buffer_high_water <= buffer_size
    # Memory stays at a few frames however many were captured (keeping them all would need captured × 0.9 MB).
    assert peak < (buffer_size + 12) * FRAME_BYTES, (peak, s.captured)


def test_file_source_blocks_instead_of_dropping_so_every_frame_is_processed(tmp_path):
    video = write_video(tmp_path / "clip.avi", 30)
    source = open_source(str(video), buffer_size=2)
    assert source.drop_policy == "block"
    report = run_stream(SlowFakeDetector(delay_s=0.01), source, [], log_every_s=None)
    s = report.stats
    assert report.end_reason == "end_of_stream"
    assert s.captured == s.processed == 30 and s.dropped == 0


def test_stopping_early_counts_buffered_frames_as_dropped(tmp_path):
    video = write_video(tmp_path / "clip.avi", 40)
    source = open_source(str(video), buffer_size=8)
    report = run_stream(SlowFakeDetector(delay_s=0.005), source, [], max_frames=5, log_every_s=None)
    s = report.stats
    assert report.end_reason == "max_frames"
    assert s.processed == 5
    assert s.dropped >= 1 and set(s.dropped_by_reason) <= {"unread_at_close", "closed_before_read"}
    assert s.processed + s.dropped == s.captured


class _RaisingOnOddFrames(SlowFakeDetector):
    """TEST DOUBLE: raises the SDK's InputError on every odd call, to test the skip policy."""

    def predict(self, image):
        from tocoad_edge.errors import InputError

        self.seen = getattr(self, "seen", 0) + 1
        if self.seen % 2:
            raise InputError("test double refuses this frame")
        return super().predict(image)


def test_detector_errors_are_counted_as_dropped_frames(tmp_path):
    video = write_video(tmp_path / "clip.avi", 10)
    report = run_stream(_RaisingOnOddFrames(), open_source(str(video)), [], log_every_s=None)
    s = report.stats
    assert s.dropped_by_reason["detector_error"] == 5 and s.processed == 5
    assert s.processed + s.dropped == s.captured == 10


def test_a_file_played_in_real_time_behaves_like_a_camera(tmp_path):
    video = write_video(tmp_path / "clip.avi", 40, fps=50.0)
    source = open_source(str(video), realtime=True)
    assert source.drop_policy == "latest" and source.nominal_fps == 50.0
    report = run_stream(SlowFakeDetector(delay_s=0.1), source, [], log_every_s=None)
    s = report.stats
    assert report.end_reason == "end_of_stream" and s.captured == 40
    assert s.dropped_by_reason.get("overwritten", 0) > 0       # 50 fps into a 10 fps detector
    assert s.processed + s.dropped == s.captured


class _PrefetchingFake(SlowFakeDetector):
    """TEST DOUBLE with ``predict_stream`` that takes the next frame before finishing the current one (as a
    pipeline does) and raises InputError on frame 3 of write_video's clip (brightness 24, ≈ 23 after MJPG)."""

    def predict_stream(self, frames):
        from tocoad_edge.errors import InputError

        it = iter(frames)
        pending = next(it, None)
        while pending is not None:
            following = next(it, None)
            if 20 <= pending.mean() < 27:
                raise InputError("test double refuses this frame")
            yield self.predict(pending)
            pending = following


def test_pipelined_run_restarts_after_a_refused_frame_and_accounts_every_frame(tmp_path):
    video = write_video(tmp_path / "clip.avi", 10)
    report = run_stream(_PrefetchingFake(), open_source(str(video)), [], pipelined=True, log_every_s=None)
    s = report.stats
    assert report.end_reason == "end_of_stream"
    assert s.dropped_by_reason == {"detector_error": 1, "pipeline_restart": 1}   # frame 3, and frame 4 taken with it
    assert s.processed == 8 and s.processed + s.dropped == s.captured == 10


def test_pipelined_run_with_max_frames_drains_what_is_in_flight(tmp_path):
    video = write_video(tmp_path / "clip.avi", 30)
    report = run_stream(_PrefetchingFake(), open_source(str(video)), [], pipelined=True, max_frames=2,
                        log_every_s=None)
    s = report.stats
    assert report.end_reason == "max_frames" and s.processed == 2
    assert s.processed + s.dropped == s.captured
