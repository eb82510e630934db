"""GPU check: TensorRT FP16 and INT8 engines for a bundle, compared with ONNX Runtime FP32 by Polygraphy on real
images, then the bundle run through ``Detector`` on TensorRT; one JSON with parity figures and per-stage latency.

    python benchmarks/gpu_check.py --bundle BUNDLE --images DIR [--max-images 32] [--work DIR] [--runs 200]

``--images``: a folder of real images (searched recursively: .png .jpg .jpeg .bmp), e.g. an MVTec ``test`` folder;
they are resized as the runtime does. Without ``--bundle`` a bundle is made first (generated sample data, a
baseline run at 224 px, ``--int8`` export; needs torch); without ``--images`` its generated test images are used.

Steps: (1) ``tocoad-export engine`` for fp16 and int8 (Polygraphy builds, ``runtime/backends/trt/build.py``);
(2) Polygraphy ``Comparator`` runs ONNX Runtime FP32 (CPU), ONNX Runtime INT8 (the Q/DQ model on CPU, what the
export's accuracy gate measured) and each engine on the same images, and ``compare_accuracy`` checks each engine
against ONNX Runtime FP32; (3) ``Detector`` with ``backend="tensorrt"`` (fp32 → the FP16 engine, int8 → the INT8
engine) and with each search the runtime offers (``graph`` too where this version has it) against
``backend="onnxrt"`` FP32: image-score Spearman and median per-stage latency.

Prints one JSON object (also ``$OUT/gpu_check.json`` when ``$OUT`` is set). Exit 0: every check passed; 1: a
parity check failed; 2: no CUDA / TensorRT / pycuda here (the reason is printed). Pass criteria
(``TOLERANCES``): embeddings relative RMS difference vs ONNX Runtime FP32 ≤ 1 % (FP16) / ≤ 10 % (INT8), INT8
engine vs ONNX Runtime INT8 ≤ 5 % (the CPU emulation the gate trusted predicts the engine), image-score
Spearman vs ONNX Runtime FP32 ≥ 0.99 for every ``Detector`` configuration.
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

TOLERANCES = {"fp16_rel_rms": 0.01, "int8_rel_rms": 0.10, "int8_vs_onnxrt_int8_rel_rms": 0.05, "spearman": 0.99}
# Polygraphy's own verdict (``SimpleCompareFunc``): FP16 element by element (an element fails when both its absolute
# and relative difference exceed these); INT8 on the mean error (elementwise INT8 differences reach a few steps)
POLYGRAPHY_COMPARE = {"fp16": {"atol": 0.1, "rtol": 0.01},
                      "int8": {"atol": 0.5, "rtol": 0.1, "check_error_stat": "mean"}}


def _environment() -> dict:
    from tocoad_edge.runtime.backends.trt.runner import current_device

    dev = current_device()
    return {"tensorrt": dev.tensorrt_version, "gpu": dev.gpu_name, "compute_capability": dev.compute_capability}


def _make_bundle(work: Path) -> tuple[Path, Path]:
    from tocoad_edge.export.bundle_writer import ExportOptions, write_bundle
    from tocoad_edge.synth.sample_set import make_sample_dataset
    from tocoad_edge.train.config import DataConfig, TrainConfig
    from tocoad_edge.train.trainer import train

    data = make_sample_dataset(work / "data", n_train=48, n_test_good=8, n_test_defect=4, size=256, seed=0)
    run = train(data, work / "run", TrainConfig(data=DataConfig(image_size=224, holdout_images=8)),
                show_progress=False)
    return write_bundle(run, work / "bundle", ExportOptions(int8=True, calibration_images=48, data_dir=data)), data


def _frames(folder: Path, size: int, limit: int) -> tuple[list[np.ndarray], list[str]]:
    from tocoad_edge.data.images import IMAGE_EXTENSIONS, read_image, resize_to_input

    paths = sorted(p for p in folder.rglob("*")
                   if p.suffix.lower() in IMAGE_EXTENSIONS and "ground_truth" not in p.parts)
    if not paths:
        raise SystemExit(f"gpu_check: no images under {folder}")
    step = max(1, len(paths) // limit)         # spread over the folder (normal and defect sub-folders alike)
    chosen = paths[::step][:limit]
    return [resize_to_input(read_image(p), size) for p in chosen], [str(p.relative_to(folder)) for p in chosen]


def _rel_rms(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(got - ref) / max(np.linalg.norm(ref), 1e-12))


def polygraphy_parity(reference, candidates: dict, feeds: list[dict], compare: dict) -> dict:
    """Polygraphy ``Comparator``: run ``reference`` and every candidate runner on ``feeds``; per candidate, the
    ``compare_accuracy`` verdict against the reference (``SimpleCompareFunc(**compare[key])``) and our figures
    over all outputs."""
    from polygraphy.comparator import Comparator, SimpleCompareFunc

    results = Comparator.run([reference, *candidates.values()], data_loader=feeds)
    outputs = {name: iters for name, iters in results.items()}
    ref = outputs[reference.name]
    figures = {}
    for key, runner in candidates.items():
        pair = type(results)([(reference.name, ref), (runner.name, outputs[runner.name])])
        verdict = Comparator.compare_accuracy(pair, compare_func=SimpleCompareFunc(**compare[key]))
        got = np.concatenate([np.asarray(it[n]).ravel() for it in outputs[runner.name] for n in it.keys()])
        exp = np.concatenate([np.asarray(it[n]).ravel() for it in ref for n in it.keys()])
        figures[key] = {"runner": runner.name, "polygraphy_passed": bool(verdict), "polygraphy_compare": compare[key],
                        "rel_rms_diff": _rel_rms(got, exp), "max_abs_diff": float(np.abs(got - exp).max()),
                        "mean_abs_diff": float(np.abs(got - exp).mean()),
                        "reference_max_abs": float(np.abs(exp).max())}
    return {"figures": figures, "outputs": outputs}


def _engine_parity(bundle: Path, feeds: list[dict]) -> dict:
    from polygraphy.backend.common import BytesFromPath
    from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx
    from polygraphy.backend.trt import EngineFromBytes, TrtRunner

    from tocoad_edge.bundle.engine_record import engine_view
    from tocoad_edge.bundle.manifest import read_manifest

    # engines built on the device are recorded in engines.json, not in manifest.json: read both, as the runtime does
    view = engine_view(bundle, read_manifest(bundle), strict=True)
    engines = {e.precision: bundle / e.file for e in view.engines if e.role == "backbone"}
    onnx_file = {p: bundle / m.file for p, m in view.models.items()}

    def ort(precision):
        return OnnxrtRunner(SessionFromOnnx(str(onnx_file[precision]), providers=["cpu"]), name=f"onnxrt-{precision}")

    def trt(precision):
        return TrtRunner(EngineFromBytes(BytesFromPath(str(engines[precision]))), name=f"tensorrt-{precision}")

    fp32 = polygraphy_parity(ort("fp32"), {"fp16": trt("fp16"), "int8": trt("int8")}, feeds, POLYGRAPHY_COMPARE)
    vs_int8 = polygraphy_parity(ort("int8"), {"int8": trt("int8")}, feeds, POLYGRAPHY_COMPARE)
    figs = fp32["figures"]
    figs["onnxrt_int8_vs_onnxrt_fp32"] = {"rel_rms_diff": polygraphy_parity(
        ort("fp32"), {"int8": ort("int8")}, feeds, POLYGRAPHY_COMPARE)["figures"]["int8"]["rel_rms_diff"]}
    figs["int8_vs_onnxrt_int8"] = vs_int8["figures"]["int8"]
    return figs


def _median_stages(preds) -> dict:
    keys = sorted({k for p in preds for k in p.timings_ms})
    return {k: round(float(np.median([p.timings_ms[k] for p in preds if k in p.timings_ms])), 3) for k in keys}


def _detector_runs(bundle: Path, frames: list[np.ndarray]) -> dict:
    from tocoad_edge.eval.metrics import spearman
    from tocoad_edge.runtime import Detector
    from tocoad_edge.runtime.detector import SEARCHES

    searches = [s for s in ("exact", "hnsw", "refined", "graph") if s in SEARCHES]
    out: dict = {"searches_available": list(SEARCHES), "graph_search": "graph" in SEARCHES}
    with Detector.open(bundle, backend="onnxrt", precision="fp32", search="exact") as ref:
        ref_preds = [ref.predict(f) for f in frames]
    ref_scores = np.array([p.raw_score for p in ref_preds])
    out["onnxrt_fp32_exact"] = {"stages_ms": _median_stages(ref_preds)}
    for precision in ("fp32", "int8"):
        for search in searches:
            with Detector.open(bundle, backend="tensorrt", precision=precision, search=search) as det:
                det.predict(frames[0])                               # warm-up (CUDA context, first allocation)
                preds = [det.predict(f) for f in frames]
            scores = np.array([p.raw_score for p in preds])
            out[f"tensorrt_{precision}_{search}"] = {
                "engine": "fp16" if precision == "fp32" else "int8", "stages_ms": _median_stages(preds),
                "image_score_spearman_vs_onnxrt_fp32": float(spearman(ref_scores, scores)),
                "image_score_max_rel_diff": float(np.max(np.abs(scores - ref_scores) / np.abs(ref_scores)))}
    return out


def _search_engine_timing(bundle: Path, frames: list[np.ndarray], runs: int = 50) -> dict:
    """``search: graph`` on the TensorRT FP16 search engine against exact search (CPU BLAS), interleaved, on one
    frame's real patch embeddings: median ms each and the max relative distance difference."""
    from tocoad_edge.runtime import Detector
    from tocoad_edge.runtime.search.exact import ExactSearch

    with Detector.open(bundle, backend="tensorrt", precision="fp32", search="graph") as det:
        if det.search.describe().get("runs_on") != "tensorrt":
            return {"skipped": "no TensorRT search engine was used (see the log)"}
        from tocoad_edge.runtime.frames import to_model_input

        q = det.backend.infer(to_model_input(frames[0], *det._input_hw))[det._output_name].reshape(-1, det.search.dim)
        exact = ExactSearch(np.load(bundle / det.manifest.memory_bank.file))
        times: dict = {"tensorrt_graph": [], "exact": []}
        for _ in range(runs):
            for name, fn in (("tensorrt_graph", det.search.query), ("exact", exact.query)):
                t0 = time.perf_counter()
                fn(q)
                times[name].append((time.perf_counter() - t0) * 1e3)
        got, ref = det.search.query(q), exact.query(q)
    return {"engine": det.search.describe()["engine"], "queries": int(len(q)),
            "median_ms": {k: round(float(np.median(v)), 3) for k, v in times.items()},
            "max_rel_diff_vs_exact": float(np.max(np.abs(got - ref) / ref))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle")
    ap.add_argument("--images", help="folder of real images (recursive)")
    ap.add_argument("--max-images", type=int, default=32)
    ap.add_argument("--work")
    args = ap.parse_args(argv)
    out: dict = {"tolerances": TOLERANCES}
    try:
        out["device"] = _environment()
        import polygraphy  # noqa: F401 - the comparison tool; say so here rather than after the builds
    except Exception as exc:  # noqa: BLE001 - report why this machine cannot run the check
        print(json.dumps({"skipped": f"{type(exc).__name__}: {exc}"}))
        return 2
    from tocoad_edge.runtime.backends.trt.build import build_engine_into_bundle

    work = Path(args.work or tempfile.mkdtemp(prefix="gpu_check_"))
    t0 = time.perf_counter()
    images = Path(args.images) if args.images else None
    if args.bundle:
        src = Path(args.bundle)
    else:
        src, data = _make_bundle(work)
        images = images or data / "test"
    if images is None:
        ap.error("--images is needed with --bundle")
    out["bundle_s"] = round(time.perf_counter() - t0, 1)
    bundle = work / "bundle_with_engines"
    if bundle.exists():
        shutil.rmtree(bundle)
    shutil.copytree(src, bundle)
    for precision in ("fp16", "int8"):
        t0 = time.perf_counter()
        path = build_engine_into_bundle(bundle, precision)
        out[f"engine_{precision}"] = {"file": path.name, "bytes": path.stat().st_size,
                                      "build_s": round(time.perf_counter() - t0, 1)}
    manifest = json.loads((bundle / "manifest.json").read_text())
    frames, names = _frames(images, int(manifest["input"]["height"]), args.max_images)
    out["images"] = {"folder": str(images), "count": len(frames), "first": names[:3]}
    feeds = [{"image": f[None]} for f in frames]
    out["engine_parity"] = _engine_parity(bundle, feeds)
    out["detector"] = _detector_runs(bundle, frames)
    out["search_engine"] = _search_engine_timing(bundle, frames)

    par, det = out["engine_parity"], out["detector"]
    checks = {"fp16_engine_vs_onnxrt_fp32": par["fp16"]["rel_rms_diff"] <= TOLERANCES["fp16_rel_rms"],
              "int8_engine_vs_onnxrt_fp32": par["int8"]["rel_rms_diff"] <= TOLERANCES["int8_rel_rms"],
              "int8_engine_vs_onnxrt_int8": par["int8_vs_onnxrt_int8"]["rel_rms_diff"]
              <= TOLERANCES["int8_vs_onnxrt_int8_rel_rms"]}
    if "max_rel_diff_vs_exact" in out["search_engine"]:
        checks["search_engine_vs_exact"] = out["search_engine"]["max_rel_diff_vs_exact"] <= 0.02
    checks |= {f"{k}_spearman": v["image_score_spearman_vs_onnxrt_fp32"] >= TOLERANCES["spearman"]
               for k, v in det.items() if isinstance(v, dict) and "image_score_spearman_vs_onnxrt_fp32" in v}
    out["checks"] = checks
    out["passed"] = all(checks.values())
    text = json.dumps(out, indent=2)
    print(text)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu_check.json").write_text(text + "\n")
    return 0 if out["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
