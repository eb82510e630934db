"""``build_int8_model``: FP32 ONNX → calibrated Q/DQ INT8 ONNX that passes the accuracy gate.

Steps (every number lands in the manifest's ``calibration`` section):

1. calibration images: up to ``options.calibration_images`` normal training images (default 256);
2. activation histograms of every quantizable layer's input (ONNX Runtime on a copy with extra outputs);
3. activation ranges by ``max``, ``percentile`` (99.99 %) or ``entropy`` (TensorRT's KL method); ``auto`` tries
   all three and keeps the one the gate likes best;
4. Q/DQ model: per-channel symmetric INT8 weights, per-tensor symmetric INT8 activations (``qdq.py``); the
   boundary layers ``options.int8_float`` names (default: the stem convolution, ``float_layers.py``) stay in
   float in every configuration;
5. accuracy gate on a labelled set (held-out normals + synthetic anomalies, ``gate_data.py``; image scores and the
   embeddings' relative error, ``gate.py``); if it fails, a
   per-layer sensitivity pass (each layer kept in float alone, embedding error measured) ranks the layers and
   the most harmful ones are kept in float, one more at a time, until the gate passes;
6. the TensorRT calibration cache (``runtime/backends/trt/calib_cache.py``) with the same scales, tied to the FP32
   model's sha256.

Export fails with ``ExportError`` (naming every configuration tried) if the gate cannot be met, unless
``options.allow_degraded``.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from tocoad_edge.bundle.manifest import sha256_file

from .activations import collect_histograms
from .context import ExportContext
from .float_layers import DEFAULT_FLOAT_RULE, float_layers
from .gate import GateCriteria, evaluate_gate, gate_failure, relative_error
from .qdq import (QuantLayer, activation_tensors, build_qdq_model, describe_qdq, find_quantizable_layers,
                  quantized_tensors)
from .ranges import METHODS, compute_amax, scale_from_amax
from .trial import Trial
from tocoad_edge.runtime.backends.trt.calib_cache import CACHE_NAME, DEFAULT_TRT_VERSION, write_cache

if TYPE_CHECKING:
    from tocoad_edge.runtime.search.base import NearestNeighbourSearch

    from .gate_data import LabelledSet

log = logging.getLogger("tocoad_edge.calibration")

PERCENTILE = 99.99
MAX_FLOAT_FRACTION = 0.5        # the sensitivity pass never puts more than half of the INT8 layers back in float
SENSITIVITY_IMAGES = 8


class OrtRunner:
    """Runs a ModelProto (FP32 or Q/DQ) on a batch of uint8 images with ONNX Runtime, CPU, one image at a time
    (the runtime's batch size), with the same graph optimisation level the runtime uses."""

    def __init__(self, threads: int | None = None):
        self.threads = threads

    def embeddings(self, model, images: np.ndarray) -> np.ndarray:
        return onnx_embeddings(model.SerializeToString(), images, self.threads)


def onnx_embeddings(model: str | Path | bytes, images: np.ndarray, threads: int | None = None) -> np.ndarray:
    """``images`` through an ONNX model (a path or serialized bytes) on ONNX Runtime's CPU provider, one image per
    run (the exported models have batch 1): the embeddings the gate and the parity report compare.

    Q/DQ pairs run as written (ONNX Runtime's QDQ fusion off): the gate judges the quantisation TensorRT will run,
    not this CPU's int8 kernels, whose u8s8 sums saturate on CPUs without AVX-512 VNNI (there the gate would reject
    models that TensorRT runs well)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.disable_quant_qdq", "1")
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(model if isinstance(model, bytes) else str(model), sess_options=opts,
                                providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: images[i:i + 1]})[0] for i in range(len(images))])


def activation_scales(hists, method: str) -> dict[str, float]:
    """``max`` uses the exact maximum of pass 1; the others the (subsampled) histogram."""
    return {t: scale_from_amax(h.absmax if method == "max" else
                               compute_amax(method, h.hist, h.edges, percentile=PERCENTILE))
            for t, h in hists.items()}


def _float_schedule(n_layers: int) -> list[int]:
    cap = max(1, int(n_layers * MAX_FLOAT_FRACTION))
    steps = [k for k in (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64) if k <= cap]
    return steps if (steps and steps[-1] == cap) else steps + [cap]


@dataclass(frozen=True)
class _TrialRunner:
    """Builds one Q/DQ configuration and gates it against the FP32 model's image scores on the gate set."""
    fp32_model: Any
    layers: list[QuantLayer]
    runner: OrtRunner
    gate_set: LabelledSet
    search: NearestNeighbourSearch
    criteria: GateCriteria
    ref_emb: np.ndarray
    score: Callable[[np.ndarray], np.ndarray]      # patch embeddings → image scores, as the bundle scores
    ref_scores: np.ndarray

    def run(self, scales: dict[str, float], keep: frozenset[str], description: str, method: str) -> Trial:
        model = build_qdq_model(self.fp32_model, scales, keep, self.layers)
        emb = self.runner.embeddings(model, self.gate_set.images)
        err = relative_error(self.ref_emb, emb)
        res = evaluate_gate(self.ref_scores, self.score(emb), self.gate_set.labels, err, self.criteria)
        return Trial(description=description, method=method, keep_float=keep, result=res, embedding_rel_error=err,
                     model=model)


@dataclass(frozen=True)
class Int8Search:
    """What ``search_int8`` found: the chosen trial, every trial in the order tried, the per-layer sensitivity
    (empty when a configuration with every layer INT8 passed) and the chosen method's activation scales."""
    best: Trial
    tried: list[Trial]
    sensitivity: list[dict]
    scales: dict[str, float]
    layers: list[QuantLayer]
    histogram_s: float
    started: float                    # time.perf_counter() at the start: the report's total
    fp32_model: Any = None            # the model the Q/DQ placement was read from
    float_rule: str = DEFAULT_FLOAT_RULE
    boundary: dict[str, list[str]] | None = None   # the layers the rule kept in float, by part

    def int8_scales(self) -> dict[str, float]:
        """The scales of every tensor the chosen Q/DQ model quantizes (layer inputs, residual shortcuts, pool and
        resize inputs): the TensorRT calibration cache's content."""
        return {t: self.scales[t] for t in quantized_tensors(self.fp32_model, self.layers, self.best.keep_float)}

    def report(self, method_requested: str, calibration_images: int, criteria: GateCriteria,
               generator: str) -> dict:
        """The manifest's ``calibration`` section (build_int8_model adds the files)."""
        best, keep = self.best, self.best.keep_float
        return {
            "algorithm": best.method,
            "method_requested": method_requested,
            "percentile": PERCENTILE if best.method == "percentile" else None,
            "weights": "int8 symmetric per output channel",
            "activations": "int8 symmetric per tensor, zero point 0",
            "calibration_images": int(calibration_images),
            "layers": [{"layer": ly.node, "op": ly.op, "precision": "fp32" if ly.node in keep else "int8",
                        "activation": ly.activation, "activation_scale": self.scales[ly.activation]
                        if ly.node not in keep else None} for ly in self.layers],
            "layers_int8": sum(ly.node not in keep for ly in self.layers),
            "layers_float": sorted(keep),
            "float_rule": self.float_rule,
            "layers_float_by_rule": self.boundary or {},
            "gate": best.result.to_dict() | {"criteria": {"min_spearman": criteria.min_spearman,
                                                          "max_auroc_drop": criteria.max_auroc_drop,
                                                          "max_embedding_error": criteria.max_embedding_error},
                                             "generator": generator},
            "tried": [t.to_dict() for t in self.tried],
            "sensitivity": self.sensitivity,
            "qdq": describe_qdq(best.model),
            "timings_s": {"histograms": round(self.histogram_s, 2),
                          "total": round(time.perf_counter() - self.started, 2)},
        }


def calibrate_and_gate(fp32_model, calib_images: np.ndarray, gate_set: LabelledSet, search: NearestNeighbourSearch,
                       *, method: str = "auto", criteria: GateCriteria = GateCriteria(), threads: int | None = None,
                       fp32_path: str | Path | None = None, float_rule: str = DEFAULT_FLOAT_RULE,
                       grid: tuple[int, int] | None = None, score_kernel: np.ndarray | None = None
                       ) -> tuple[Any, dict]:
    """The whole search, independent of bundles: returns (Q/DQ ModelProto, report dict)."""
    found = search_int8(fp32_model, calib_images, gate_set, search, method=method, criteria=criteria,
                        threads=threads, fp32_path=fp32_path, float_rule=float_rule, grid=grid,
                        score_kernel=score_kernel)
    return found.best.model, found.report(method, len(calib_images), criteria, gate_set.generator)


def search_int8(fp32_model, calib_images: np.ndarray, gate_set: LabelledSet, search: NearestNeighbourSearch, *,
                criteria: GateCriteria, method: str = "auto", threads: int | None = None,
                fp32_path: str | Path | None = None, float_rule: str = DEFAULT_FLOAT_RULE,
                grid: tuple[int, int] | None = None, score_kernel: np.ndarray | None = None) -> Int8Search:
    """Every layer but the boundary layers ``float_rule`` names INT8, with each range method; if none passes the
    gate, the most sensitive layers of the best method go back to float too, more at a time, until one does (or
    the cap is reached). The gate compares image scores as the bundle draws them: the largest patch distance, or
    with ``score_kernel`` (and the patch ``grid``) the ``smoothed-max`` peak."""
    t0 = time.perf_counter()
    runner = OrtRunner(threads)
    layers = find_quantizable_layers(fp32_model)
    if not layers:
        from tocoad_edge.errors import ExportError

        raise ExportError("the model has no layer INT8 can quantize", expected="Conv / MatMul layers with weights")
    boundary = float_layers(fp32_model, layers, float_rule)
    base_keep = frozenset(n for names in boundary.values() for n in names)
    hists = _histograms(fp32_model, layers, calib_images, threads, fp32_path)
    t_hist = time.perf_counter() - t0
    ref_emb = runner.embeddings(fp32_model, gate_set.images)
    def score(emb: np.ndarray) -> np.ndarray:
        return search.image_scores(emb, grid, score_kernel)

    trials = _TrialRunner(fp32_model, layers, runner, gate_set, search, criteria, ref_emb, score, score(ref_emb))
    methods = METHODS if method == "auto" else (method,)
    scales_by_method = {m: activation_scales(hists, m) for m in methods}
    base = f"all layers INT8 but {float_rule} in float" if base_keep else "all layers INT8"
    tried = [trials.run(scales_by_method[m], base_keep, f"{base}, {m}", m) for m in methods]
    best = max(tried, key=Trial.rank)
    scales = scales_by_method[best.method]
    sensitivity: list[dict] = []
    if not best.result.passed:
        sensitivity = _layer_sensitivity(runner, fp32_model, scales, layers, gate_set.images, base_keep)
        best = _keep_sensitive_in_float(trials, scales, best.method, sensitivity, tried, base_keep)
    return Int8Search(best=best, tried=tried, sensitivity=sensitivity, scales=scales, layers=layers,
                      fp32_model=fp32_model, histogram_s=t_hist, started=t0, float_rule=float_rule,
                      boundary=boundary)


def _histograms(fp32_model, layers: list[QuantLayer], calib_images: np.ndarray, threads: int | None,
                fp32_path: str | Path | None):
    """Activation histograms of every quantizable layer's input; ONNX Runtime needs a file, so a model given
    only in memory is saved to a temporary one."""
    import onnx

    tensors = activation_tensors(fp32_model, layers)
    if fp32_path is not None:
        return collect_histograms(fp32_path, tensors, calib_images, threads=threads)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        onnx.save(fp32_model, str(Path(tmp) / "fp32.onnx"))
        return collect_histograms(Path(tmp) / "fp32.onnx", tensors, calib_images, threads=threads)


def _layer_sensitivity(runner: OrtRunner, fp32_model, scales: dict[str, float], layers: list[QuantLayer],
                       images: np.ndarray, base_keep: frozenset[str] = frozenset()) -> list[dict]:
    """Each INT8 layer alone kept in float too (besides ``base_keep``), everything else INT8, on a few gate
    images: the embedding error it removes (``gain``), most harmful layer first."""
    sub = images[:: max(1, len(images) // SENSITIVITY_IMAGES)][:SENSITIVITY_IMAGES]
    sub_ref = runner.embeddings(fp32_model, sub)
    base_err = relative_error(sub_ref, runner.embeddings(build_qdq_model(fp32_model, scales, base_keep, layers),
                                                         sub))
    sensitivity: list[dict] = []
    for ly in layers:
        if ly.node in base_keep:
            continue
        m = build_qdq_model(fp32_model, scales, base_keep | {ly.node}, layers)
        err = relative_error(sub_ref, runner.embeddings(m, sub))
        sensitivity.append({"layer": ly.node, "error_if_float": err, "gain": base_err - err})
    sensitivity.sort(key=lambda s: -s["gain"])
    return sensitivity


def _keep_sensitive_in_float(trials: _TrialRunner, scales: dict[str, float], method: str,
                             sensitivity: list[dict], tried: list[Trial], base_keep: frozenset[str] = frozenset()
                             ) -> Trial:
    """The first trial on ``_float_schedule`` that passes, or the best of all ``tried`` (each trial run here is
    appended to ``tried``, for the report). The schedule runs over the layers the float rule left INT8."""
    for k in _float_schedule(len(sensitivity)):
        keep = base_keep | frozenset(s["layer"] for s in sensitivity[:k])
        extra = " besides the boundary layers" if base_keep else ""
        t = trials.run(scales, keep, f"{k} most sensitive layer(s) in float{extra}, {method}", method)
        tried.append(t)
        if t.result.passed:
            return t
    return max(tried, key=Trial.rank)


EXACT_SEARCH_MAX_ENTRIES = 8192
BOUND_HNSW_EF = 64


def gate_search(ctx: ExportContext) -> tuple[NearestNeighbourSearch, str]:
    """Exact image scores. Small banks: exact search of every patch. Above ``EXACT_SEARCH_MAX_ENTRIES`` entries
    (an exact search of 48 images × 784 patches over 26k × 384 costs ~0.7 TFLOP per gate trial): the bundle's
    HNSW index gives upper bounds and only the patches that can hold the maximum (or, for a ``smoothed-max``
    bundle, the patches under the cells that can hold the smoothed peak) are searched exactly (``RefinedSearch``);
    the image scores are the same."""
    from tocoad_edge.runtime.search.exact import ExactSearch

    exact = ExactSearch(ctx.bank)
    if len(ctx.bank) <= EXACT_SEARCH_MAX_ENTRIES or ctx.index is None:
        return exact, "exact"
    from tocoad_edge.runtime.search.refined import RefinedSearch

    return (RefinedSearch(ctx.index_search(BOUND_HNSW_EF), exact),
            f"exact image scores ({ctx.index.kind} ef={BOUND_HNSW_EF} bounds, exact refinement)")


def build_int8_model(ctx: ExportContext, out_path: Path) -> tuple[Path, dict]:
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
    found = search_int8(fp32_model, calib, gate_set, search, method=opts.calibration_method, criteria=criteria,
                        fp32_path=ctx.fp32_path, float_rule=opts.int8_float, grid=tuple(ctx.features.grid),
                        score_kernel=ctx.score_kernel())
    model = found.best.model
    report = found.report(opts.calibration_method, len(calib), criteria, gate_set.generator)
    onnx.checker.check_model(model)
    onnx.save(model, str(out_path))
    cache_path = write_cache(out_path.parent / CACHE_NAME, found.int8_scales(), report["algorithm"])
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
        result = found.best.result
        if not opts.allow_degraded:
            raise gate_failure(result, criteria, report["tried"])
        log.warning("INT8 accuracy gate failed (%s); kept because --allow-degraded was given", result.summary())
        report["degraded"] = True
    return out_path, report
