"""Parity report written by every export: trained torch FP32 vs ONNX FP32 vs ONNX INT8 (vs engine, on a GPU).

``parity.json``:
  * ``heldout``: per model, max abs difference of patch embeddings and anomaly maps against torch on held-out
    normal images (exact search; map range as the scale: ``map_max_abs_diff_over_range``);
  * ``synthetic``: the labelled set of the accuracy gate (held-out normals + synthetic anomalies): image AUROC per
    model and Spearman of each model's image scores against torch (exact image scores: exact search, or for
    banks above 8192 entries HNSW bounds refined exactly, ``runtime/search/refined.py``);
  * ``real``: the same on labelled real test data when ``--data`` is given (the same exact image scores);
  * ``tensorrt``: engines are built on the target, so this says how to check them (``benchmarks/gpu_check.sh``).
``parity.png``: image-score scatter plots (``parity_plot.py``).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from tocoad_edge.calibration.context import ExportContext
from tocoad_edge.calibration.gate import relative_error
from tocoad_edge.calibration.pipeline import onnx_embeddings
from tocoad_edge.eval.metrics import auroc, spearman
from tocoad_edge.runtime.scoring import anomaly_map, image_score
from tocoad_edge.runtime.search.exact import ExactSearch

log = logging.getLogger("tocoad_edge.export")

PARITY_JSON = "parity.json"
PARITY_PNG = "parity.png"
REAL_MAX_IMAGES = 400


def _torch_embeddings(embedder, images: np.ndarray, batch: int = 8) -> np.ndarray:
    import torch

    with torch.no_grad():
        return np.concatenate([embedder(torch.from_numpy(images[i:i + batch])).numpy()
                               for i in range(0, len(images), batch)])


def _scores_and_maps(emb: np.ndarray, search, ctx: ExportContext) -> tuple[np.ndarray, np.ndarray]:
    size = int(ctx.meta["image_size"])
    grid, kernel = tuple(ctx.features.grid), ctx.score_kernel()
    scores, maps = [], []
    for e in emb:
        d = search.query(e)
        scores.append(image_score(d, grid, kernel))
        maps.append(anomaly_map(d, grid, (size, size), ctx.scoring.gaussian_sigma))
    return np.array(scores), np.stack(maps)


def compare_embeddings(ref: np.ndarray, got: np.ndarray, search, ctx: ExportContext) -> dict:
    s_ref, m_ref = _scores_and_maps(ref, search, ctx)
    s_got, m_got = _scores_and_maps(got, search, ctx)
    map_range = float(m_ref.max() - m_ref.min()) or 1.0
    return {
        "images": int(len(ref)),
        "embedding_max_abs_diff": float(np.abs(ref - got).max()),
        "embedding_rel_rms_diff": relative_error(ref, got),
        "map_max_abs_diff": float(np.abs(m_ref - m_got).max()),
        "map_range": map_range,
        "map_max_abs_diff_over_range": float(np.abs(m_ref - m_got).max() / map_range),
        "image_score_max_rel_diff": float(np.max(np.abs(s_ref - s_got) / np.maximum(np.abs(s_ref), 1e-12))),
    }


def compare(ctx: ExportContext, images: np.ndarray, model_path) -> dict:
    """torch FP32 vs one ONNX model on ``images`` (exact search)."""
    return compare_embeddings(_torch_embeddings(ctx.embedder, images), onnx_embeddings(model_path, images),
                              ExactSearch(ctx.bank), ctx)


def labelled_section(ctx: ExportContext, models: dict, images: np.ndarray, labels: np.ndarray,
                     search) -> tuple[dict, dict]:
    """AUROC per model and Spearman against torch; returns (section, scores per model)."""
    scores = {"torch_fp32": ctx.image_scores(search, _torch_embeddings(ctx.embedder, images))}
    for precision, mf in models.items():
        scores[f"onnx_{precision}"] = ctx.image_scores(search, onnx_embeddings(ctx.staging / mf.file, images))
    ref = scores["torch_fp32"]
    section = {"images": int(len(labels)), "anomalous": int(np.sum(labels)), "models": {}}
    for name, s in scores.items():
        section["models"][name] = {"auroc": auroc(labels, s), "spearman_vs_torch": spearman(ref, s)}
    if "onnx_int8" in scores:
        section["int8_vs_onnx_fp32"] = {
            "spearman": spearman(scores["onnx_fp32"], scores["onnx_int8"]),
            "auroc_drop": section["models"]["onnx_fp32"]["auroc"] - section["models"]["onnx_int8"]["auroc"]}
    return section, scores


def _real_test_set(data_dir: Path, size: int, limit: int = REAL_MAX_IMAGES) -> tuple[np.ndarray, np.ndarray]:
    from tocoad_edge.data import load_dataset
    from tocoad_edge.data import load_resized

    ds = load_dataset(data_dir, require_train=False, require_test=True)
    items = list(ds.test)
    if len(items) > limit:
        rng = np.random.default_rng(0)
        items = [items[i] for i in sorted(rng.choice(len(items), limit, replace=False))]
    return load_resized([t.path for t in items], size), np.array([t.label for t in items])


def write_parity_report(ctx: ExportContext, models: dict) -> dict:
    from tocoad_edge.calibration.gate_data import gate_set_for_export

    from tocoad_edge.data.run_images import holdout_images
    from .parity_plot import write_parity_png

    size = int(ctx.meta["image_size"])
    exact = ExactSearch(ctx.bank)
    report: dict = {"reference": "torch fp32 (trained model)", "heldout": {"search": "exact"}}
    images = holdout_images(ctx.meta, size, limit=8)
    ref = _torch_embeddings(ctx.embedder, images)
    for precision, mf in models.items():
        report["heldout"][f"onnx_{precision}"] = compare_embeddings(
            ref, onnx_embeddings(ctx.staging / mf.file, images), exact, ctx)
    # backwards-compatible top-level keys (the spine's parity.json had them)
    for precision in models:
        report[f"onnx_{precision}"] = report["heldout"][f"onnx_{precision}"]

    from tocoad_edge.calibration.pipeline import gate_search

    gate_set = gate_set_for_export(ctx)
    search, search_name = gate_search(ctx)
    synth, synth_scores = labelled_section(ctx, models, gate_set.images, gate_set.labels, search)
    report["synthetic"] = synth | {"search": search_name, "generator": gate_set.generator}

    if ctx.options.data_dir is not None:
        real_images, real_labels = _real_test_set(Path(ctx.options.data_dir), size)
        real, _ = labelled_section(ctx, models, real_images, real_labels, search)
        report["real"] = real | {"search": search_name, "data_dir": str(ctx.options.data_dir)}
    report["tensorrt"] = ("engines are built on the target device (tocoad-export engine BUNDLE); "
                          "benchmarks/gpu_check.sh compares them with ONNX Runtime")

    panels = []
    for name, s in synth_scores.items():
        if name == "torch_fp32":
            continue
        m = synth["models"][name]
        held = report["heldout"].get(name, {})
        panels.append((f"{name} vs torch fp32 (synthetic set)", s, [
            f"Spearman {m['spearman_vs_torch']:.4f}   AUROC {m['auroc']:.4f} "
            f"(torch {synth['models']['torch_fp32']['auroc']:.4f})",
            f"map max |diff| / range {held.get('map_max_abs_diff_over_range', float('nan')):.2e}",
            f"embedding max |diff| {held.get('embedding_max_abs_diff', float('nan')):.3g}"]))
    write_parity_png(ctx.staging / PARITY_PNG, synth_scores["torch_fp32"], gate_set.labels, panels)
    (ctx.staging / PARITY_JSON).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    log.info("parity: %s", json.dumps({k: report[k] for k in ("heldout", "synthetic")}))
    return report
