"""predict_stream: one result per frame, in order, bounded, a bad frame surfaces at its position."""
import time

import numpy as np
import pytest

from tocoad_edge.errors import InputError
from tocoad_edge.runtime.pipeline import FrameFailure


@pytest.fixture(scope="module")
def det_and_frames(sample_dataset, tiny_bundle):
    from tocoad_edge.data import load_dataset, read_image
    from tocoad_edge.runtime import Detector

    data, bundle = sample_dataset, tiny_bundle
    frames = [read_image(t.path) for t in load_dataset(data, require_test=True).test]
    det = Detector.open(bundle, threads=1, search_threads=1, search="exact")
    yield det, frames
    det.close()


def _bad_frame():
    return np.zeros((64, 64, 3), dtype=np.uint16)     # 16-bit: an InputError


def test_order_kept_and_results_equal_sequential(det_and_frames):
    det, frames = det_and_frames
    seq = (frames * 3)[:25]
    expected = [det.predict(f).raw_score for f in seq]
    preds = list(det.predict_stream(seq, depth=2))
    assert [p.frame_id for p in preds] == list(range(len(seq)))
    np.testing.assert_allclose([p.raw_score for p in preds], expected, rtol=1e-6)
    for p in preds:
        for k in ("preprocess", "backbone", "search", "postprocess", "total", "queue_wait", "latency"):
            assert k in p.timings_ms and p.timings_ms[k] >= 0.0
        assert p.timings_ms["latency"] >= p.timings_ms["backbone"]


def test_bad_frame_yields_failure_in_place_and_stream_goes_on(det_and_frames):
    det, frames = det_and_frames
    seq = frames[:4] + [_bad_frame()] + frames[4:8]
    out = list(det.predict_stream(seq, errors="yield"))
    assert len(out) == len(seq)
    assert [o.frame_id for o in out] == list(range(len(seq)))
    assert isinstance(out[4], FrameFailure) and isinstance(out[4].error, InputError)
    assert "expected" in str(out[4].error)
    assert all(not isinstance(o, FrameFailure) for i, o in enumerate(out) if i != 4)
    np.testing.assert_allclose([out[i].raw_score for i in (5, 6)], [det.predict(f).raw_score for f in frames[4:6]],
                               rtol=1e-6)


def test_bad_frame_raises_in_order_and_detector_keeps_working(det_and_frames):
    det, frames = det_and_frames
    seq = frames[:3] + [_bad_frame()] + frames[3:6]
    got = []
    with pytest.raises(InputError):
        for p in det.predict_stream(seq, errors="raise"):
            got.append(p.frame_id)
    assert got == [0, 1, 2]                                   # every earlier frame was delivered first
    assert det.predict(frames[0]).raw_score > 0               # detector still works
    assert [p.frame_id for p in det.predict_stream(frames[:4])] == [0, 1, 2, 3]


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_at_most_depth_frames_in_flight_and_early_stop_does_not_hang(det_and_frames, depth):
    det, frames = det_and_frames
    pulled = []

    def source():
        for i in range(200):
            pulled.append(i)
            yield frames[i % len(frames)]

    consumed, ahead = 0, []
    for _ in det.predict_stream(source(), depth=depth):
        consumed += 1
        assert len(pulled) - consumed <= depth    # read from the source, not yet handed to the search: ≤ depth
        time.sleep(0.02)                          # a slow consumer: the worker reads ahead meanwhile ...
        ahead.append(len(pulled) - consumed)
        assert ahead[-1] <= depth                 # ... but never more than depth frames
        if consumed == 12:
            break
    assert consumed == 12 and len(pulled) < 200
    assert max(ahead) >= 1                        # the worker did read ahead (the stages overlap)


def test_source_failure_surfaces_after_earlier_frames(det_and_frames):
    det, frames = det_and_frames

    def source():
        yield frames[0]
        yield frames[1]
        raise OSError("camera unplugged")

    got = []
    with pytest.raises(OSError, match="camera unplugged"):
        for p in det.predict_stream(source(), errors="yield"):
            got.append(p.frame_id)
    assert got == [0, 1]


def test_unknown_error_policy_is_a_config_error(det_and_frames):
    from tocoad_edge.errors import ConfigError

    det, frames = det_and_frames
    with pytest.raises(ConfigError):
        list(det.predict_stream(frames[:1], errors="ignore"))


@pytest.mark.parametrize("depth", [0, -1, 1.5, "2"])
def test_bad_depth_is_a_config_error(det_and_frames, depth):
    from tocoad_edge.errors import ConfigError

    det, frames = det_and_frames
    with pytest.raises(ConfigError, match="expected: an integer >= 1"):
        list(det.predict_stream(frames[:2], depth=depth))
