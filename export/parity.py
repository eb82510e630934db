"""Parity report written by every export: trained torch model vs ONNX FP32 (vs INT8, vs engine).

``parity.json`` holds max abs differences of patch embeddings and anomaly maps and image-score agreement on
held-out normal images.
"""
from __future__ import annotations

import json
import logging

import numpy as np

from tocoad_edge.runtime.scoring import anomaly_map
from tocoad_edge.runtime.search.exact import ExactSearch

log = logging.getLogger("tocoad_edge.export")

PARITY_JSON = "parity.json"


def _onnx_embeddings(path, images: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: images[i:i + 1]})[0] for i in range(len(images))])


def _scores_and_maps(emb: np.ndarray, search: ExactSearch, ctx) -> tuple[np.ndarray, np.ndarray]:
    size = int(ctx.meta["image_size"])
    scores, maps = [], []
    for e in emb:
        d = search.query(e)
        scores.append(d.max())
        maps.append(anomaly_map(d, tuple(ctx.features.grid), (size, size), ctx.scoring.gaussian_sigma))
    return np.array(scores), np.stack(maps)


def compare(ctx, images: np.ndarray, model_path) -> dict:
    import torch

    with torch.no_grad():
        ref = ctx.embedder(torch.from_numpy(images)).numpy()
    got = _onnx_embeddings(model_path, images)
    search = ExactSearch(ctx.bank)
    s_ref, m_ref = _scores_and_maps(ref, search, ctx)
    s_got, m_got = _scores_and_maps(got, search, ctx)
    map_range = float(m_ref.max() - m_ref.min()) or 1.0
    return {
        "images": int(len(images)),
        "embedding_max_abs_diff": float(np.abs(ref - got).max()),
        "map_max_abs_diff": float(np.abs(m_ref - m_got).max()),
        "map_max_abs_diff_over_range": float(np.abs(m_ref - m_got).max() / map_range),
        "image_score_max_rel_diff": float(np.max(np.abs(s_ref - s_got) / np.maximum(np.abs(s_ref), 1e-12))),
    }


def write_parity_report(ctx, models: dict) -> dict:
    from .export_images import holdout_images

    size = int(ctx.meta["image_size"])
    images = holdout_images(ctx.meta, size, limit=8)
    report = {"reference": "torch fp32 (trained model)", "search": "exact"}
    for precision, mf in models.items():
        report[f"onnx_{precision}"] = compare(ctx, images, ctx.staging / mf.file)
    (ctx.staging / PARITY_JSON).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    log.info("parity: %s", json.dumps(report))
    return report
