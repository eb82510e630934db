"""Several cameras through one process (stream/multicam.py) with a real bundle exported with a dynamic batch axis:
three test-pattern cameras and one dead MJPEG camera, frames in order per camera, the per-camera accounting,
batched results equal to frame-by-frame ones, and ``Detector.predict_batch`` itself."""
from __future__ import annotations

import socket

import numpy as np
import pytest

from stream_support import write_video
from tocoad_edge.errors import InputError
from tocoad_edge.runtime import Detector
from tocoad_edge.stream.multicam import Camera, run_cameras
from tocoad_edge.stream.sinks import Sink, StopStream
from tocoad_edge.stream.sources import open_source


@pytest.fixture(scope="module")
def batch_bundle(tiny_run, tmp_path_factory):
    from tocoad_edge.export.bundle_writer import ExportOptions, write_bundle

    return write_bundle(tiny_run, tmp_path_factory.mktemp("bundles") / "dynamic", ExportOptions(dynamic_batch=True))


@pytest.fixture(scope="module")
def detector(batch_bundle):
    with Detector.open(batch_bundle, search="exact", threads=1) as det:
        assert det.backend.max_batch() is None          # the dynamic batch axis reached the runtime
        yield det


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]                         # nothing listens once the socket is closed


class Recorder(Sink):
    """Keeps (camera, frame id, score, decision) of every result; stops the run once ``stop_after`` cameras have
    ``per_camera`` results each."""

    def __init__(self, per_camera: int | None = None, stop_after: int = 0):
        self.rows: list[tuple[str, int, float, str]] = []
        self.per_camera, self.stop_after = per_camera, stop_after

    def write(self, result) -> None:
        self.rows.append((result.camera, result.frame.id, result.prediction.score, result.prediction.decision))
        if self.per_camera is not None:
            counts = {}
            for cam, *_ in self.rows:
                counts[cam] = counts.get(cam, 0) + 1
            if sum(n >= self.per_camera for n in counts.values()) >= self.stop_after:
                raise StopStream("every live camera has its frames")

    def ids(self, camera: str) -> list[int]:
        return [i for cam, i, *_ in self.rows if cam == camera]


def test_three_live_cameras_go_on_while_a_dead_one_reconnects(detector):
    live = [Camera(f"cam{i}", open_source("testsrc://?width=64&height=64", fps=30), detector) for i in range(3)]
    dead = Camera("dead", open_source(f"http://127.0.0.1:{closed_port()}/video.mjpg",
                                      require_initial_connection=False, reconnect_initial_s=0.2,
                                      reconnect_max_s=0.5), detector)
    sink = Recorder(per_camera=10, stop_after=3)
    report = run_cameras([*live, dead], [sink], duration_s=60, log_every_s=None)
    assert report.end_reason == "stopped"               # the sink stopped it: the dead camera never held it up
    for cam in live:
        ids = sink.ids(cam.id)
        assert len(ids) >= 10 and ids == sorted(set(ids))  # each camera's frames in capture order, none twice
        assert report.cameras[cam.id].stats.processed == len(ids)
    assert sink.ids("dead") == []
    dead_stats = report.cameras["dead"].stats
    assert dead_stats.captured == dead_stats.processed == 0
    assert dead_stats.source_state in ("reconnecting", "closed") and dead_stats.disconnects == 0
    assert "127.0.0.1" in (dead_stats.last_error or "")
    for camera_report in report.cameras.values():      # captured = processed + dropped, per camera
        s = camera_report.stats
        assert s.captured == s.processed + s.dropped
    assert report.consistent and report.batches > 0 and report.processed == sum(len(sink.ids(c.id)) for c in live)


def _file_cameras(tmp_path, detector) -> list[Camera]:
    videos = [write_video(tmp_path / f"line{i}.avi", 8 + 2 * i, size=(64 + 16 * i, 64)) for i in range(3)]
    return [Camera(f"cam{i}", open_source(str(v)), detector) for i, v in enumerate(videos)]


def test_batched_results_equal_frame_by_frame_results(tmp_path, detector):
    runs = {}
    for batch in (True, False):
        sink = Recorder()
        report = run_cameras(_file_cameras(tmp_path, detector), [sink], batch=batch, log_every_s=None)
        assert report.end_reason == "end_of_stream" and report.consistent
        assert {k: r.stats.processed for k, r in report.cameras.items()} == {"cam0": 8, "cam1": 10, "cam2": 12}
        assert (report.batches > 0) is batch
        runs[batch] = {(cam, i): (score, decision) for cam, i, score, decision in sink.rows}
    assert runs[True].keys() == runs[False].keys()
    batched = np.array([runs[True][k][0] for k in sorted(runs[True])])
    single = np.array([runs[False][k][0] for k in sorted(runs[False])])
    np.testing.assert_allclose(batched, single, rtol=1e-4, atol=1e-5)
    assert [runs[True][k][1] for k in sorted(runs[True])] == [runs[False][k][1] for k in sorted(runs[False])]


def test_predict_batch_equals_predict_and_checks_its_input(detector, tiny_bundle):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (48 + 8 * i, 64, 3), dtype=np.uint8) for i in range(3)]
    batched = detector.predict_batch(frames, frame_ids=[7, 8, 9])
    assert [p.frame_id for p in batched] == [7, 8, 9]
    for frame, p in zip(frames, batched):
        single = detector.predict(frame)
        assert p.anomaly_map.shape == frame.shape[:2] and p.decision == single.decision
        np.testing.assert_allclose(p.score, single.score, rtol=1e-4)
    with Detector.open(tiny_bundle, search="exact", threads=1) as batch_one:   # exported with batch 1: a loop
        assert batch_one.backend.max_batch() == 1
        looped = batch_one.predict_batch(frames)
        assert [p.score for p in looped] == [batch_one.predict(f).score for f in frames]
    with pytest.raises(InputError, match="non-empty list of frames") as exc:
        detector.predict_batch(np.stack(frames[:1]))
    assert "got: ndarray" in str(exc.value) and "list(frames)" in str(exc.value)
    with pytest.raises(InputError, match="non-empty list"):
        detector.predict_batch([])
    with pytest.raises(InputError, match="number of frame ids"):
        detector.predict_batch(frames, frame_ids=[1])
    with pytest.raises(InputError, match="unsupported dtype"):
        detector.predict_batch([frames[0], frames[1].astype(np.float32)])
