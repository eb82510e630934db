"""Item 7: bad frames — wrong size, 1/2/4 channels, float or 16-bit data, non-contiguous views, empty arrays,
NaN — are converted where documented (gray → BGR, BGRA → BGR, views copied, any size ≥ 8 × 8 resized) or refused
with an InputError; the next good frame scores exactly as before."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from reliability_fixtures import golden_fingerprint, rel_bundle, serving  # noqa: F401
from tocoad_edge.errors import InputError
from tocoad_edge.runtime.golden import golden_image

G = golden_image()

REFUSED = {
    "float32": (G.astype(np.float32), "unsupported dtype"),
    "float64-nan": (np.full((64, 64, 3), np.nan), "unsupported dtype"),
    "uint16": (G.astype(np.uint16) * 257, "unsupported dtype"),
    "int8": (G.astype(np.int8), "unsupported dtype"),
    "bool": (G > 128, "unsupported dtype"),
    "empty": (np.zeros((0, 0, 3), np.uint8), "empty"),
    "empty-rows": (np.zeros((0, 64, 3), np.uint8), "empty"),
    "2-channels": (G[..., :2], "unsupported shape"),
    "5-channels": (np.zeros((64, 64, 5), np.uint8), "unsupported shape"),
    "4-d batch": (G[None], "unsupported shape"),
    "1-d": (G.reshape(-1), "unsupported shape"),
    "too small": (G[:4, :4], "too small"),
    "not an array": (G.tolist(), "must be a numpy array"),
    "None": (None, "must be a numpy array"),
}

CONVERTED = {
    "gray HxW": (cv2.cvtColor(G, cv2.COLOR_BGR2GRAY), cv2.cvtColor(cv2.cvtColor(G, cv2.COLOR_BGR2GRAY),
                                                                  cv2.COLOR_GRAY2BGR)),
    "gray HxWx1": (cv2.cvtColor(G, cv2.COLOR_BGR2GRAY)[..., None], cv2.cvtColor(cv2.cvtColor(G, cv2.COLOR_BGR2GRAY),
                                                                                cv2.COLOR_GRAY2BGR)),
    "BGRA": (cv2.cvtColor(G, cv2.COLOR_BGR2BGRA), G),
    "strided view": (np.ascontiguousarray(np.repeat(G, 2, axis=1))[:, ::2], G),
    "fortran order": (np.asfortranarray(G), G),
    "read-only": (np.frombuffer(G.tobytes(), np.uint8).reshape(G.shape), G),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_bad_frame_refused_then_next_frame_scores_normally(name, serving):
    frame, match = REFUSED[name]
    before = golden_fingerprint(serving)
    with pytest.raises(InputError, match=match) as info:
        serving.predict(frame)
    assert info.value.expected and info.value.got
    assert golden_fingerprint(serving) == before


@pytest.mark.parametrize("name", list(CONVERTED))
def test_documented_conversions(name, serving):
    frame, equivalent_bgr = CONVERTED[name]
    before = golden_fingerprint(serving)
    got = serving.predict(frame)
    want = serving.predict(equivalent_bgr)
    assert got.score == want.score
    assert got.anomaly_map.shape == frame.shape[:2]
    np.testing.assert_array_equal(got.anomaly_map, want.anomaly_map)
    assert golden_fingerprint(serving) == before


@pytest.mark.parametrize("shape", [(8, 8), (48, 300), (1080, 1920), (64, 64)])
def test_any_size_is_resized_and_the_map_has_the_frame_size(shape, serving):
    frame = cv2.resize(G, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    pred = serving.predict(frame)
    assert np.isfinite(pred.score) and pred.anomaly_map.shape == shape


def test_the_stream_keeps_going_after_a_bad_frame(serving):
    """predict_stream raises the InputError for the bad frame in order; the caller resumes with the next one."""
    before = golden_fingerprint(serving)
    good = [serving.predict(G).score]
    frames = iter([G, G.astype(np.float32), G])
    preds = []
    for _ in range(3):
        try:
            preds.append(next(serving.predict_stream([next(frames)])).score)
        except InputError:
            preds.append("refused")
    assert preds == [good[0], "refused", good[0]]
    assert golden_fingerprint(serving) == before


def test_detector_pipelined_stream_reports_bad_frame_in_order(rel_bundle):
    from tocoad_edge.runtime import Detector

    with Detector.open(rel_bundle, search="exact", threads=1) as det:
        want = det.predict(G).score
        out = []
        stream = det.predict_stream([G, G])
        out = [p.score for p in stream]
        assert out == [want, want]
        with pytest.raises(InputError):
            list(det.predict_stream([G, np.zeros((0, 0, 3), np.uint8), G]))
        assert det.predict(G).score == want
