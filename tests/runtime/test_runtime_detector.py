import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tocoad_edge.data import read_image
from tocoad_edge.errors import ConfigError, InputError
from tocoad_edge.runtime import Detector


@pytest.fixture(scope="module")
def det(tiny_bundle):
    d = Detector.open(tiny_bundle, search="exact")
    yield d
    d.close()


def test_predict_outputs(det, sample_dataset):
    img = read_image(sorted((sample_dataset / "test" / "scratch").iterdir())[0])
    p = det.predict(img)
    assert p.anomaly_map.shape == img.shape[:2] and p.anomaly_map.dtype == np.float32
    assert np.isfinite(p.score) and p.decision in ("OK", "NG")
    assert set(p.timings_ms) >= {"preprocess", "backbone", "search", "postprocess", "total"}
    sc = det.manifest.scoring
    assert p.score == pytest.approx((p.raw_score - sc.normalization_offset) / sc.normalization_scale, rel=1e-5)


def test_defects_score_higher_than_good(det, sample_dataset):
    good = [det.predict(read_image(p)).raw_score for p in sorted((sample_dataset / "test" / "good").iterdir())]
    bad = [det.predict(read_image(p)).raw_score for p in sorted((sample_dataset / "test" / "spot").iterdir())]
    assert np.mean(bad) > np.mean(good)


def test_hnsw_and_exact_agree(tiny_bundle, sample_dataset):
    img = read_image(sorted((sample_dataset / "test" / "stain").iterdir())[0])
    with Detector.open(tiny_bundle, search="exact") as a, Detector.open(tiny_bundle, search="hnsw") as b:
        pa, pb = a.predict(img), b.predict(img)
    assert pb.raw_score == pytest.approx(pa.raw_score, rel=0.01)


def test_gray_frame_is_converted_and_bad_frames_refused(det):
    gray = np.full((70, 90), 128, np.uint8)
    assert det.predict(gray).anomaly_map.shape == (70, 90)
    for bad in (np.zeros((70, 90, 3), np.float32), np.zeros((0, 5, 3), np.uint8), np.zeros((70, 90, 2), np.uint8),
                np.zeros((70, 90, 3), np.uint16)):
        with pytest.raises(InputError):
            det.predict(bad)
    assert np.isfinite(det.predict(gray).score)


def test_bad_options(tiny_bundle):
    with pytest.raises(ConfigError):
        Detector.open(tiny_bundle, precision="fp8")
    with pytest.raises(ConfigError):
        Detector.open(tiny_bundle, backend="onnxruntime")


def test_predict_stream_keeps_order(det, sample_dataset):
    frames = [read_image(p) for p in sorted((sample_dataset / "test" / "good").iterdir())]
    single = [det.predict(f).raw_score for f in frames]
    streamed = list(det.predict_stream(frames))
    assert [p.frame_id for p in streamed] == list(range(len(frames)))
    assert [p.raw_score for p in streamed] == pytest.approx(single, rel=1e-6)


def test_runtime_runs_with_torch_unimportable(tiny_bundle):
    code = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None
        import numpy as np
        from tocoad_edge.runtime import Detector
        with Detector.open({str(tiny_bundle)!r}) as det:
            p = det.predict(np.full((64, 64, 3), 100, np.uint8))
        assert "torch" not in [m for m in sys.modules if sys.modules[m] is not None and m == "torch"]
        print("score", p.score)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "score" in out.stdout


def test_torch_backend_matches_onnxrt(tiny_bundle):
    pytest.importorskip("torch")
    img = np.random.default_rng(0).integers(0, 255, (80, 100, 3), dtype=np.uint8)
    with Detector.open(tiny_bundle, backend="onnxrt", search="exact") as a, \
            Detector.open(tiny_bundle, backend="torch", search="exact") as b:
        pa, pb = a.predict(img), b.predict(img)
    assert b.backend.name == "torch"
    assert pb.raw_score == pytest.approx(pa.raw_score, rel=1e-4)
    assert np.abs(pa.anomaly_map - pb.anomaly_map).max() <= 1e-3 * np.ptp(pa.anomaly_map)
