"""GPU check: build FP16 and INT8 TensorRT engines for a bundle, compare them with ONNX Runtime, time them.

    python benchmarks/gpu_check.py [--bundle BUNDLE] [--work DIR] [--images N] [--runs N]

Without ``--bundle`` a bundle is made first (generated sample data, a baseline run at 224 px, ``--int8`` export;
needs torch). Prints one JSON object (and writes it to ``$OUT/gpu_check.json`` when ``$OUT`` is set). Exit code 0:
all checks passed; 1: a parity check failed; 2: no CUDA / TensorRT / pycuda here (the reason is printed).
Tolerances: FP16 engine vs ONNX FP32 image-score Spearman ≥ 0.99; INT8 engine vs ONNX Runtime INT8 (the same Q/DQ
model) Spearman ≥ 0.99 and embedding relative RMS difference ≤ 5 %.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _environment() -> dict:
    from tocoad_edge.runtime.backends.trt.runner import current_device

    dev = current_device()
    return {"tensorrt": dev.tensorrt_version, "gpu": dev.gpu_name, "compute_capability": dev.compute_capability}


def _make_bundle(work: Path) -> Path:
    from tocoad_edge.train.config import DataConfig, TrainConfig
    from tocoad_edge.export.bundle_writer import ExportOptions, write_bundle
    from tocoad_edge.synth.sample_set import make_sample_dataset
    from tocoad_edge.train.trainer import train

    data = make_sample_dataset(work / "data", n_train=48, n_test_good=8, n_test_defect=4, size=256, seed=0)
    run = train(data, work / "run", TrainConfig(data=DataConfig(image_size=224, holdout_images=8)),
                show_progress=False)
    return write_bundle(run, work / "bundle", ExportOptions(int8=True, calibration_images=48, data_dir=data))


def _embeddings(det, frames) -> tuple[np.ndarray, np.ndarray, list[float]]:
    embs, scores, times = [], [], []
    for f in frames:
        t0 = time.perf_counter()
        e, hw, timings = det.embed(f)
        times.append((time.perf_counter() - t0) * 1e3)
        embs.append(e.astype(np.float32))
        scores.append(det.score(e, hw, timings).raw_score)
    return np.stack(embs), np.array(scores), times


def _time_backbone(det, frame, runs: int) -> float:
    batch = np.ascontiguousarray(frame[None])
    for _ in range(5):
        det.backend.infer(batch)
    t0 = time.perf_counter()
    for _ in range(runs):
        det.backend.infer(batch)
    return (time.perf_counter() - t0) / runs * 1e3


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle")
    ap.add_argument("--work")
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args(argv)
    out: dict = {"checks": {}}
    try:
        out["device"] = _environment()
    except Exception as exc:  # noqa: BLE001 - report why this machine cannot run the check
        print(json.dumps({"skipped": f"{type(exc).__name__}: {exc}"}))
        return 2
    from tocoad_edge.eval.metrics import spearman
    from tocoad_edge.runtime.backends.trt.build import build_engine_into_bundle
    from tocoad_edge.runtime import Detector

    work = Path(args.work or tempfile.mkdtemp(prefix="gpu_check_"))
    t0 = time.perf_counter()
    src = Path(args.bundle) if args.bundle else _make_bundle(work)
    out["bundle_s"] = round(time.perf_counter() - t0, 1)
    bundle = work / "bundle_with_engines"
    if bundle.exists():
        shutil.rmtree(bundle)
    shutil.copytree(src, bundle)
    for precision in ("fp16", "int8"):
        t0 = time.perf_counter()
        path = build_engine_into_bundle(bundle, precision)
        out[f"build_{precision}_s"] = round(time.perf_counter() - t0, 1)
        out[f"engine_{precision}"] = {"file": path.name, "bytes": path.stat().st_size}
    rng = np.random.default_rng(0)
    h = w = json.loads((bundle / "manifest.json").read_text())["input"]["height"]
    frames = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(args.images)]
    ok = True
    for det_precision, engine_precision in (("fp32", "fp16"), ("int8", "int8")):
        with Detector.open(bundle, backend="onnxrt", precision=det_precision) as ref, \
                Detector.open(bundle, backend="tensorrt", precision=det_precision) as trt:
            e_ref, s_ref, _ = _embeddings(ref, frames)
            e_trt, s_trt, _ = _embeddings(trt, frames)
            rel = float(np.linalg.norm(e_trt - e_ref) / np.linalg.norm(e_ref))
            rho = spearman(s_ref, s_trt)
            passed = rho >= 0.99 and (engine_precision == "fp16" or rel <= 0.05)
            ok &= passed
            out["checks"][f"{engine_precision}_engine_vs_onnxrt_{det_precision}"] = {
                "embedding_max_abs_diff": float(np.abs(e_trt - e_ref).max()), "embedding_rel_rms_diff": rel,
                "image_score_spearman": rho, "passed": bool(passed),
                "backbone_ms_onnxrt": round(_time_backbone(ref, frames[0], max(10, args.runs // 10)), 3),
                "backbone_ms_tensorrt": round(_time_backbone(trt, frames[0], args.runs), 3)}
    out["passed"] = bool(ok)
    text = json.dumps(out, indent=2)
    print(text)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu_check.json").write_text(text + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
