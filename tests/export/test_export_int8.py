"""``tocoad-export bundle --int8`` end to end on a tiny generated run (64 px): Q/DQ model, calibration section, cache,
parity report, the gate's failure path, the INT8 model in the Detector, and the `tocoad-export engine` bookkeeping."""
import json
from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from tocoad_edge.errors import ExportError  # noqa: E402


@pytest.fixture(scope="module")
def i4_run(tmp_path_factory):
    from tocoad_edge.train.config import DataConfig, TrainConfig
    from tocoad_edge.synth.sample_set import make_sample_dataset
    from tocoad_edge.train.trainer import train

    data = make_sample_dataset(tmp_path_factory.mktemp("i4data") / "sample", n_train=24, n_test_good=4,
                               n_test_defect=2, size=96, seed=0)
    cfg = TrainConfig(stages="baseline", data=DataConfig(image_size=64, holdout_images=6))
    return data, train(data, tmp_path_factory.mktemp("i4runs") / "tiny", cfg, show_progress=False)


@pytest.fixture(scope="module")
def int8_bundle(tmp_path_factory, i4_run):
    from tocoad_edge.export.bundle_writer import ExportOptions, write_bundle

    data, run = i4_run
    opts = ExportOptions(int8=True, calibration_images=16, calibration_method="auto", data_dir=data)
    return write_bundle(run, tmp_path_factory.mktemp("i4bundles") / "int8", opts)


def test_int8_bundle_contents(int8_bundle):
    from tocoad_edge.bundle.manifest import read_manifest, verify_files
    from tocoad_edge.runtime.backends.trt.calib_cache import read_cache

    m = read_manifest(int8_bundle)
    assert set(m.models) == {"fp32", "int8"} and m.models["int8"].file == "backbone.int8.onnx"
    verify_files(int8_bundle, m)                      # every file, cache and plot included, hashes match
    assert {"calibration.cache", "parity.json", "parity.png"} <= set(m.files)
    cal = m.calibration
    assert cal["fp32_model_sha256"] == m.files["backbone.onnx"].sha256
    assert cal["int8_model_sha256"] == m.files["backbone.int8.onnx"].sha256
    assert cal["algorithm"] in ("max", "percentile", "entropy") and cal["gate"]["passed"] is True
    assert cal["calibration_images"] == 16 and cal["cache_file"] == "calibration.cache"
    assert len(cal["layers"]) == cal["layers_int8"] + len(cal["layers_float"])
    assert all(ly["precision"] in ("int8", "fp32") for ly in cal["layers"])
    q = onnx.load(str(int8_bundle / "backbone.int8.onnx"))
    onnx.checker.check_model(q, full_check=True)
    assert sum(n.op_type == "QuantizeLinear" for n in q.graph.node) == cal["qdq"]["quantize_linear"] > 0
    assert m.files["backbone.int8.onnx"].bytes <= 0.30 * m.files["backbone.onnx"].bytes
    num, algo, scales = read_cache(int8_bundle / "calibration.cache")
    # the cache lists exactly the tensors the Q/DQ model quantizes (layer inputs, residual shortcuts, resize input)
    assert num == 100300 and set(scales) == {n.input[0] for n in q.graph.node if n.op_type == "QuantizeLinear"}
    assert {ly["activation"] for ly in cal["layers"] if ly["precision"] == "int8"} <= set(scales)


def test_parity_report(int8_bundle):
    r = json.loads((int8_bundle / "parity.json").read_text())
    fp32 = r["heldout"]["onnx_fp32"]
    assert fp32["map_max_abs_diff_over_range"] <= 1e-4          # ONNX FP32 matches the trained torch model
    assert r["heldout"]["onnx_int8"]["embedding_max_abs_diff"] > fp32["embedding_max_abs_diff"]
    syn = r["synthetic"]["models"]
    assert set(syn) == {"torch_fp32", "onnx_fp32", "onnx_int8"}
    assert syn["onnx_fp32"]["spearman_vs_torch"] > 0.999
    assert r["synthetic"]["int8_vs_onnx_fp32"]["spearman"] >= 0.99
    assert set(r["real"]["models"]) == set(syn) and r["real"]["images"] == 10
    import cv2

    png = cv2.imread(str(int8_bundle / "parity.png"))
    assert png is not None and png.shape[1] > png.shape[0]


def test_detector_runs_the_int8_model_on_onnxrt(int8_bundle):
    from tocoad_edge.runtime import Detector

    frame = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    with Detector.open(int8_bundle, precision="fp32", backend="onnxrt") as d32, \
            Detector.open(int8_bundle, precision="int8", backend="onnxrt") as d8:
        p32, p8 = d32.predict(frame), d8.predict(frame)
    assert np.isfinite(p8.score) and p8.anomaly_map.shape == (96, 96)
    assert abs(p8.raw_score - p32.raw_score) / p32.raw_score < 0.2


def test_the_cpu_runtime_scores_int8_as_the_gate_measured_it(int8_bundle, i4_run):
    """On x86 without VNNI ONNX Runtime's fused int8 kernels saturate (tests/runtime/test_int8_cpu_kernels.py), so
    there the runtime runs the Q/DQ pairs as written: the embeddings the export's gate and parity report computed.
    ``qdq="auto"`` chooses that exactly where the CPU check says so, and never for the FP32 model."""
    from calibration.pipeline import onnx_embeddings
    from tocoad_edge.data import load_dataset, read_image
    from tocoad_edge.runtime import Detector
    from tocoad_edge.runtime.backends.cpu_int8 import int8_sums_saturate
    from tocoad_edge.runtime.frames import to_model_input

    data, _ = i4_run
    frames = [read_image(t.path) for t in load_dataset(data, require_test=True).test]
    with Detector.open(int8_bundle, precision="int8", backend="onnxrt", qdq="as-written") as written, \
            Detector.open(int8_bundle, precision="int8", backend="onnxrt") as auto, \
            Detector.open(int8_bundle, precision="fp32", backend="onnxrt") as fp32:
        assert written.backend.qdq_as_written is True
        assert auto.backend.qdq_as_written is int8_sums_saturate()
        assert fp32.backend.qdq_as_written is False
        assert written.describe()["backend_details"] == {"qdq": "as-written"}
        assert "backend_details" not in fp32.describe()
        h, w = written.manifest.input.height, written.manifest.input.width
        batch = np.concatenate([to_model_input(f, h, w) for f in frames])
        gate = onnx_embeddings(int8_bundle / "backbone.int8.onnx", batch)
        runtime = np.stack([written.embed(f)[0] for f in frames])
    assert np.array_equal(runtime.reshape(gate.shape), gate)


def test_search_auto_scores_int8_embeddings_exactly(int8_bundle, i4_run):
    """auto chooses by speed among the searches with exact image scores only. With INT8 embeddings the index alone
    (its tuned ef is the map's ef) was the fastest, and its upper-bound scores would move decisions off the
    thresholds, which are set on exact scores."""
    from tocoad_edge.data import load_dataset, read_image
    from tocoad_edge.runtime import Detector

    data, _ = i4_run
    frames = [read_image(t.path) for t in load_dataset(data, require_test=True).test]
    for precision in ("fp32", "int8"):
        with Detector.open(int8_bundle, precision=precision, search="auto", threads=1) as auto, \
                Detector.open(int8_bundle, precision=precision, search="exact", threads=1) as exact:
            assert auto.search.name in ("exact", "graph", "refined")
            assert "hnsw_ms" not in auto.describe()["search"]["selection"]
            for f in frames:
                assert auto.predict(f).raw_score == pytest.approx(exact.predict(f).raw_score, rel=1e-5)


def test_detector_warns_when_the_thresholds_were_chosen_on_other_scores(int8_bundle, i4_run, tmp_path, caplog):
    import logging
    import shutil

    from tocoad_edge.cli.threshold import main as threshold_main
    from tocoad_edge.runtime import Detector

    def warnings_on_open(bundle, precision, search):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="tocoad_edge.runtime"):
            Detector.open(bundle, precision=precision, search=search).close()
        return [r.getMessage() for r in caplog.records if "thresholds" in r.getMessage()]

    data, _ = i4_run
    bundle = shutil.copytree(int8_bundle, tmp_path / "bundle")
    assert threshold_main([str(bundle), "--data", str(data), "--policy", "labelled", "--target-fpr", "0.25",
                           "--precision", "fp32"]) == 0          # chosen on FP32 exact scores
    assert warnings_on_open(bundle, "fp32", "exact") == []
    assert warnings_on_open(bundle, "fp32", "refined") == []     # exact scores too
    warned = warnings_on_open(bundle, "int8", "exact")
    assert len(warned) == 1 and "chosen on fp32 scores" in warned[0] and "--precision int8" in warned[0]
    warned = warnings_on_open(bundle, "fp32", "hnsw")
    assert len(warned) == 1 and "chosen on exact image scores" in warned[0] and "--search" in warned[0]
    assert warnings_on_open(int8_bundle, "int8", "hnsw") == []   # a training threshold makes no promise


def test_gate_failure_fails_the_export_unless_allow_degraded(tmp_path, i4_run, monkeypatch):
    from tocoad_edge.calibration import gate, pipeline
    from tocoad_edge.export.bundle_writer import ExportOptions, write_bundle

    _, run = i4_run
    monkeypatch.setattr(pipeline, "GateCriteria", lambda: gate.GateCriteria(min_spearman=1.5))   # unreachable
    monkeypatch.setattr(pipeline, "_float_schedule", lambda n: [1])                               # keep it short
    opts = ExportOptions(int8=True, calibration_images=8, calibration_method="max")
    out = tmp_path / "failed"
    with pytest.raises(ExportError) as e:
        write_bundle(run, out, opts)
    assert "accuracy gate" in str(e.value) and "--allow-degraded" in str(e.value)
    assert not out.exists() and not any(p.name.startswith(".failed") for p in tmp_path.iterdir())   # nothing left
    kept = write_bundle(run, tmp_path / "degraded", replace(opts, allow_degraded=True))
    cal = json.loads((kept / "manifest.json").read_text())["calibration"]
    assert cal["degraded"] is True and cal["gate"]["passed"] is False


def test_engine_only_bookkeeping_with_a_stand_in_builder(tmp_path, int8_bundle, monkeypatch):
    """The TensorRT build itself needs a GPU (tests/runtime/test_trt_gpu.py); here ``build_engine`` is replaced by a
    stand-in returning fixed bytes, to test what `tocoad-export engine` does to the bundle: file name, sha256, and
    the engine record beside the manifest (the manifest itself is left as exported;
    tests/runtime/test_engine_record.py)."""
    import shutil

    from tocoad_edge.bundle.engine_record import engine_view, read_verified_engine
    from tocoad_edge.bundle.manifest import read_manifest
    from tocoad_edge.runtime.backends.trt import build as trt_engine
    from tocoad_edge.runtime.backends.trt.fingerprint import DeviceInfo

    bundle = tmp_path / "b"
    shutil.copytree(int8_bundle, bundle)
    manifest_bytes = (bundle / "manifest.json").read_bytes()
    device = DeviceInfo("10.3.0.30", "Orin", "8.7")
    monkeypatch.setattr(trt_engine, "build_engine", lambda *a, **k: b"stand-in engine bytes")
    monkeypatch.setenv("TOCOAD_TRT_TIMING_CACHE", str(tmp_path / "tc"))
    path = trt_engine.build_engine_into_bundle(bundle, "int8", device=device, search_engine=False)
    assert (bundle / "manifest.json").read_bytes() == manifest_bytes
    m = engine_view(bundle, read_manifest(bundle), strict=True)
    (fp,) = m.engines
    assert path.name == fp.file and fp.file.startswith("backbone.") and fp.file.endswith(".engine")
    assert fp.precision == "int8" and fp.input_shape == (1, 64, 64, 3) and fp.gpu_name == "Orin"
    assert fp.onnx_sha256 == m.files["backbone.int8.onnx"].sha256
    assert read_verified_engine(bundle, m, fp.file) == b"stand-in engine bytes"    # sha256 in the record
    trt_engine.build_engine_into_bundle(bundle, "int8", device=device, search_engine=False)   # replaces, not adds
    assert len(engine_view(bundle, read_manifest(bundle)).engines) == 1
    trt_engine.build_engine_into_bundle(bundle, "fp16", device=device, search_engine=False)
    assert {e.precision for e in engine_view(bundle, read_manifest(bundle)).engines} == {"int8", "fp16"}
    assert not list(bundle.glob(".*tmp*"))
