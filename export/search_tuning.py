"""Choose the HNSW query ``ef`` at export by measuring recall@1 and image-score error against exact search
on held-out normal patches. The smallest ef that keeps the image-score error ≤ 1% is stored."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from tocoad_edge.runtime.search.exact import ExactSearch
from tocoad_edge.runtime.search.hnsw import HnswSearch

log = logging.getLogger("tocoad_edge.export")

EF_CANDIDATES = (16, 32, 48, 64, 96, 128, 192, 256, 384, 512)
MAX_SCORE_ERROR = 0.01


def measure_ef(bank: np.ndarray, index_path: Path, patches: np.ndarray) -> list[dict]:
    """patches: float32 [images, patches, D]. Returns one row per ef candidate."""
    exact = ExactSearch(bank)
    flat = patches.reshape(-1, patches.shape[-1])
    d_exact = exact.query(flat)
    s_exact = d_exact.reshape(len(patches), -1).max(1)
    hnsw = HnswSearch(bank, index_path, ef=EF_CANDIDATES[0], threads=1)
    rows = []
    for ef in EF_CANDIDATES:
        hnsw.set_ef(ef)
        d = hnsw.query(flat)
        recall = float(np.mean(np.isclose(d, d_exact, rtol=1e-4, atol=1e-5)))
        s = d.reshape(len(patches), -1).max(1)
        err = float(np.max(np.abs(s - s_exact) / np.maximum(np.abs(s_exact), 1e-12)))
        rows.append({"ef": ef, "recall_at_1": recall, "max_image_score_rel_error": err})
    return rows


def tune_search(ctx, index_path: Path) -> tuple[dict, int]:
    import torch

    from .export_images import holdout_images

    size = int(ctx.meta["image_size"])
    try:
        imgs = holdout_images(ctx.meta, size, limit=16)
    except Exception as exc:  # noqa: BLE001 - tuning falls back to a safe ef, and says so
        log.warning("ef tuning skipped (%s); using ef=%d", exc, 128)
        return {"ef_tuning": "skipped: no held-out images", "max_score_error": MAX_SCORE_ERROR}, 128
    with torch.no_grad():
        patches = ctx.embedder(torch.from_numpy(imgs)).numpy()
    rows = measure_ef(ctx.bank, index_path, patches)
    ok = [r for r in rows if r["max_image_score_rel_error"] <= MAX_SCORE_ERROR]
    ef = ok[0]["ef"] if ok else EF_CANDIDATES[-1]
    log.info("hnsw ef=%d chosen (%s)", ef, ", ".join(f"ef {r['ef']}: recall {r['recall_at_1']:.3f} "
                                                     f"err {r['max_image_score_rel_error']:.4f}" for r in rows))
    return {"ef_tuning": rows, "max_score_error": MAX_SCORE_ERROR, "tuning_images": int(len(imgs))}, int(ef)
