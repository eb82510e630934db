"""``build_int8_model``: FP32 ONNX → calibrated Q/DQ INT8 ONNX that passes the accuracy gate.

Steps (every number lands in the manifest's ``calibration`` section):

1. calibration images: up to ``options.calibration_images`` normal training images (default 256);
2. activation histograms of every quantizable layer's input (ONNX Runtime on a copy with extra outputs);
3. activation ranges by ``max``, ``percentile`` (99.99 %) or ``entropy`` (TensorRT's KL method); ``auto`` tries
   all three and keeps the one the gate likes best;
4. Q/DQ model: per-channel symmetric INT8 weights, per-tensor symmetric INT8 activations (``qdq.py``);
5. accuracy gate on a labelled set (held-out normals + synthetic anomalies, ``gate_data.py``); if it fails, a
   per-layer sensitivity pass (each layer kept in float alone, embedding error measured) ranks the layers and
   the most harmful ones are kept in float, one more at a time, until the gate passes;
6. the TensorRT calibration cache (``runtime/backends/trt/calib_cache.py``) with the same scales, tied to the FP32 model's sha256.

Export fails with ``ExportError`` (naming every configuration tried) if the gate cannot be met, unless
``options.allow_degraded``.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from tocoad_edge.bundle.manifest import sha256_file

from .activations import collect_histograms
from .gate import GateCriteria, evaluate_gate, gate_failure
from .qdq import activation_tensors, build_qdq_model, describe_qdq, find_quantizable_layers, quantized_tensors
from .ranges import METHODS, compute_amax, scale_from_amax
from tocoad_edge.runtime.backends.trt.calib_cache import CACHE_NAME, DEFAULT_TRT_VERSION, write_cache

log = logging.getLogger("tocoad_edge.calibration")

PERCENTILE = 99.99
MAX_FLOAT_FRACTION = 0.5        # never keep more than half of the quantizable layers in float
SENSITIVITY_IMAGES = 8


class OrtRunner:
    """Runs a ModelProto (FP32 or Q/DQ) on a batch of uint8 images with ONNX Runtime, CPU, one image at a time
    (the runtime's batch size), with the same graph optimisation level the runtime uses."""

    def __init__(self, threads: int | None = None):
        self.threads = threads

    def embeddings(self, model, images: np.ndarray) -> np.ndarray:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        if self.threads:
            opts.intra_op_num_threads = self.threads
        sess = ort.InferenceSession(model.SerializeToString(), sess_options=opts,
                                    providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        return np.concatenate([sess.run(None, {name: images[i:i + 1]})[0] for i in range(len(images))])


def relative_error(ref: np.ndarray, got: np.ndarray) -> float:
    return float(np.linalg.norm(got - ref) / max(np.linalg.norm(ref), 1e-12))


def activation_scales(hists, method: str) -> dict[str, float]:
    """``max`` uses the exact maximum of pass 1; the others the (subsampled) histogram."""
    return {t: scale_from_amax(h.absmax if method == "max" else
                               compute_amax(method, h.hist, h.edges, percentile=PERCENTILE))
            for t, h in hists.items()}


def _float_schedule(n_layers: int) -> list[int]:
    cap = max(1, int(n_layers * MAX_FLOAT_FRACTION))
    steps = [k for k in (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64) if k <= cap]
    return steps if (steps and steps[-1] == cap) else steps + [cap]


def calibrate_and_gate(fp32_model, calib_images: np.ndarray, gate_set, search, *, method: str = "auto",
                       criteria: GateCriteria = GateCriteria(), threads: int | None = None,
                       fp32_path: str | Path | None = None) -> tuple[Any, dict]:
    """The whole search, independent of bundles: returns (Q/DQ ModelProto, report dict)."""
    import onnx

    t0 = time.perf_counter()
    runner = OrtRunner(threads)
    layers = find_quantizable_layers(fp32_model)
    if not layers:
        from tocoad_edge.errors import ExportError

        raise ExportError("the model has no layer INT8 can quantize", expected="Conv / MatMul layers with weights")
    tensors = activation_tensors(fp32_model, layers)
    if fp32_path is None:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            onnx.save(fp32_model, str(Path(tmp) / "fp32.onnx"))
            hists = collect_histograms(Path(tmp) / "fp32.onnx", tensors, calib_images, threads=threads)
    else:
        hists = collect_histograms(fp32_path, tensors, calib_images, threads=threads)
    t_hist = time.perf_counter() - t0

    ref_emb = runner.embeddings(fp32_model, gate_set.images)
    ref_scores = search.image_scores(ref_emb)
    labels = gate_set.labels

    def trial(scales, keep: frozenset[str], description: str) -> dict:
        model = build_qdq_model(fp32_model, scales, keep, layers)
        emb = runner.embeddings(model, gate_set.images)
        res = evaluate_gate(ref_scores, search.image_scores(emb), labels, criteria)
        return {"description": description, "keep_float": sorted(keep), "gate": res.to_dict(), "model": model,
                "embedding_rel_error": relative_error(ref_emb, emb), "_result": res}

    methods = METHODS if method == "auto" else (method,)
    scales_by_method = {m: activation_scales(hists, m) for m in methods}
    tried = [trial(scales_by_method[m], frozenset(), f"all layers INT8, {m}") | {"method": m} for m in methods]

    def rank(t):
        g = t["gate"]
        return (g["passed"], g["spearman"] - max(g["auroc_drop"], 0.0), -t["embedding_rel_error"])

    best = max(tried, key=rank)
    chosen_method = best["method"]
    scales = scales_by_method[chosen_method]
    sensitivity: list[dict] = []
    if not best["gate"]["passed"]:
        # per-layer sensitivity: each layer alone kept in float, everything else INT8
        sub = gate_set.images[:: max(1, len(gate_set.images) // SENSITIVITY_IMAGES)][:SENSITIVITY_IMAGES]
        sub_ref = runner.embeddings(fp32_model, sub)
        base_err = relative_error(sub_ref, runner.embeddings(build_qdq_model(fp32_model, scales, frozenset(),
                                                                             layers), sub))
        for ly in layers:
            m = build_qdq_model(fp32_model, scales, frozenset({ly.node}), layers)
            err = relative_error(sub_ref, runner.embeddings(m, sub))
            sensitivity.append({"layer": ly.node, "error_if_float": err, "gain": base_err - err})
        sensitivity.sort(key=lambda s: -s["gain"])
        for k in _float_schedule(len(layers)):
            keep = frozenset(s["layer"] for s in sensitivity[:k])
            t = trial(scales, keep, f"{k} most sensitive layer(s) in float, {chosen_method}") | {
                "method": chosen_method}
            tried.append(t)
            if t["gate"]["passed"]:
                best = t
                break
        else:
            best = max(tried, key=rank)
    result = best["_result"]
    keep = set(best["keep_float"])
    model = best["model"]
    report = {
        "algorithm": best["method"],
        "method_requested": method,
        "percentile": PERCENTILE if best["method"] == "percentile" else None,
        "weights": "int8 symmetric per output channel",
        "activations": "int8 symmetric per tensor, zero point 0",
        "calibration_images": int(len(calib_images)),
        "layers": [{"layer": ly.node, "op": ly.op, "precision": "fp32" if ly.node in keep else "int8",
                    "activation": ly.activation, "activation_scale": scales[ly.activation] if ly.node not in keep
                    else None} for ly in layers],
        "layers_int8": sum(ly.node not in keep for ly in layers),
        "layers_float": sorted(keep),
        "gate": result.to_dict() | {"criteria": {"min_spearman": criteria.min_spearman,
                                                 "max_auroc_drop": criteria.max_auroc_drop},
                                    "generator": gate_set.generator},
        "tried": [{k: v for k, v in t.items() if k not in ("model", "_result")} for t in tried],
        "sensitivity": sensitivity,
        "qdq": describe_qdq(model),
        "timings_s": {"histograms": round(t_hist, 2), "total": round(time.perf_counter() - t0, 2)},
        "_scales": {t: scales[t] for t in quantized_tensors(fp32_model, layers, keep)},
    }
    return model, report


EXACT_SEARCH_MAX_ENTRIES = 8192
BOUND_HNSW_EF = 64


def gate_search(ctx):
    """Exact image scores. Small banks: exact search of every patch. Above ``EXACT_SEARCH_MAX_ENTRIES`` entries
    (an exact search of 48 images × 784 patches over 26k × 384 costs ~0.7 TFLOP per gate trial): the bundle's
    HNSW index gives upper bounds and only the patches that can hold the maximum are searched exactly
    (``RefinedSearch``); the image scores are the same."""
    from tocoad_edge.bundle.manifest import INDEX_NAME
    from tocoad_edge.runtime.search.exact import ExactSearch

    index = ctx.staging / INDEX_NAME
    exact = ExactSearch(ctx.bank)
    if len(ctx.bank) <= EXACT_SEARCH_MAX_ENTRIES or not index.is_file():
        return exact, "exact"
    from tocoad_edge.runtime.search.hnsw import HnswSearch
    from tocoad_edge.runtime.search.refined import RefinedSearch

    return (RefinedSearch(HnswSearch(ctx.bank, index, ef=BOUND_HNSW_EF, threads=None), exact),
            f"exact image scores (hnsw ef={BOUND_HNSW_EF} bounds, exact refinement)")


def build_int8_model(ctx, out_path: Path) -> tuple[Path, dict]:
    """Called by the bundle writer for ``--int8``: writes ``out_path`` (+ the TensorRT calibration cache next to
    it) and returns the manifest's ``calibration`` dict."""
    import onnx

    from tocoad_edge.data.run_images import calibration_images

    from .gate_data import gate_set_for_export

    out_path = Path(out_path)
    size = int(ctx.meta["image_size"])
    opts = ctx.options
    calib = calibration_images(ctx.meta, size, opts.calibration_images, seed=int(ctx.cfg.seed))
    gate_set = gate_set_for_export(ctx)
    fp32_model = onnx.load(str(ctx.fp32_path))
    criteria = GateCriteria()
    search, search_name = gate_search(ctx)
    model, report = calibrate_and_gate(fp32_model, calib, gate_set, search,
                                       method=opts.calibration_method, criteria=criteria,
                                       fp32_path=ctx.fp32_path)
    scales = report.pop("_scales")
    onnx.checker.check_model(model)
    onnx.save(model, str(out_path))
    cache_path = write_cache(out_path.parent / CACHE_NAME, scales, report["algorithm"])
    report["gate"]["search"] = search_name
    report |= {
        "model_file": out_path.name,
        "fp32_model_sha256": sha256_file(ctx.fp32_path),
        "int8_model_sha256": sha256_file(out_path),
        "cache_file": cache_path.name,
        "cache_trt_version": ".".join(map(str, DEFAULT_TRT_VERSION)),
        "size_ratio_int8_over_fp32": round(out_path.stat().st_size / ctx.fp32_path.stat().st_size, 4),
    }
    g = report["gate"]
    log.info("INT8: %s, %d/%d layers INT8; gate: %s", report["algorithm"], report["layers_int8"],
             len(report["layers"]), "passed" if g["passed"] else "FAILED")
    if not g["passed"]:
        from .gate import GateResult

        result = GateResult(**{k: g[k] for k in GateResult.__dataclass_fields__})
        if not opts.allow_degraded:
            raise gate_failure(result, criteria, report["tried"])
        log.warning("INT8 accuracy gate failed (%s); kept because --allow-degraded was given", result.summary())
        report["degraded"] = True
    return out_path, report
