"""TensorRT on a real GPU: build an INT8 engine into a tiny bundle and compare it with ONNX Runtime.
Marked ``gpu``; skipped, with the reason, where CUDA / TensorRT / pycuda are missing."""
import numpy as np
import pytest


def _device_or_skip():
    from tocoad_edge.errors import BackendUnavailableError
    from tocoad_edge.runtime.backends.trt.runner import current_device

    try:
        return current_device()
    except BackendUnavailableError as exc:
        pytest.skip(f"needs CUDA + TensorRT + pycuda: {exc.message} ({exc.got})")


@pytest.mark.gpu
def test_int8_and_fp16_engines_match_onnxruntime(tmp_path):
    _device_or_skip()
    pytest.importorskip("torch")
    from tocoad_edge.eval.metrics import spearman
    from tocoad_edge.train.config import DataConfig, TrainConfig
    from tocoad_edge.export.bundle_writer import ExportOptions, write_bundle
    from tocoad_edge.runtime.backends.trt.build import build_engine_into_bundle
    from tocoad_edge.runtime import Detector
    from tocoad_edge.synth.sample_set import make_sample_dataset
    from tocoad_edge.train.trainer import train

    data = make_sample_dataset(tmp_path / "d", n_train=24, n_test_good=4, n_test_defect=2, size=96, seed=0)
    run = train(data, tmp_path / "r", TrainConfig(stages="baseline", data=DataConfig(image_size=64, holdout_images=6)),
                show_progress=False)
    bundle = write_bundle(run, tmp_path / "b", ExportOptions(int8=True, calibration_images=16))
    build_engine_into_bundle(bundle, "int8")
    build_engine_into_bundle(bundle, "fp16")
    frames = [np.random.default_rng(i).integers(0, 256, (96, 96, 3), dtype=np.uint8) for i in range(8)]
    for precision in ("int8", "fp32"):
        with Detector.open(bundle, backend="onnxrt", precision=precision) as ref, \
                Detector.open(bundle, backend="tensorrt", precision=precision) as trt:
            assert trt.backend.name == "tensorrt"
            a = np.array([ref.predict(f).raw_score for f in frames])
            b = np.array([trt.predict(f).raw_score for f in frames])
        assert spearman(a, b) >= 0.95
        assert np.max(np.abs(a - b) / a) < 0.1


@pytest.mark.gpu
def test_tensorrt_graph_search_matches_exact_search(tiny_bundle, tmp_path):
    """Both engines built into a copy of the tiny bundle; ``search='graph'`` on TensorRT runs the FP16 search engine
    and stays within the stated FP16 bound (tests/runtime/test_trt_search_engine.py::fp16_bound) of exact search."""
    import shutil

    from test_trt_search_engine import fp16_bound
    from tocoad_edge.runtime import Detector
    from tocoad_edge.runtime.backends.trt.build import build_engine_into_bundle
    from tocoad_edge.runtime.search.exact import ExactSearch

    _device_or_skip()
    bundle = tmp_path / "b"
    shutil.copytree(tiny_bundle, bundle)
    build_engine_into_bundle(bundle, "fp16")
    with Detector.open(bundle, backend="tensorrt", precision="fp32", search="graph") as det:
        assert det.search.describe().get("runs_on") == "tensorrt"
        bank = np.load(bundle / det.manifest.memory_bank.file)
        rng = np.random.default_rng(0)
        q = bank[rng.integers(0, len(bank), 300)] + 0.1 * rng.standard_normal((300, bank.shape[1])).astype(np.float32)
        got = det.search.query(q)
    ref = ExactSearch(bank).query(q).astype(np.float64)
    assert np.all(np.abs(got - ref) / ref <= fp16_bound(bank, q, ref))
