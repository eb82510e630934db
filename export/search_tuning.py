"""Choose the HNSW query ``ef`` at export by measuring recall@1 and image-score error against exact search
on held-out normal patches. The stored ef is one candidate step above the smallest ef that keeps the
image-score error ≤ 1 % (``EF_SAFETY_STEPS``): 16 held-out images are a small sample. Measured on
magnetic tile (26k bank): the smallest passing ef (32) left one good test image's score 47 % too high
(image AUROC −0.58 pt over 304 test images); the next candidate (48) matched exact search on all of them
(AUROC equal, max score error 0.3 %) for ~15-30 % more search time."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from tocoad_edge.calibration.context import ExportContext
from tocoad_edge.runtime.search.exact import ExactSearch
from tocoad_edge.runtime.search.hnsw import HnswSearch
from tocoad_edge.runtime.search.projected import ProjectedSearch

log = logging.getLogger("tocoad_edge.export")

EF_CANDIDATES = (16, 32, 48, 64, 96, 128, 192, 256, 384, 512)
MAX_SCORE_ERROR = 0.01
EF_SAFETY_STEPS = 1
# A projected index's error is capped by its dims and candidates, not by ef: on magnetic tile (32 dims, 16
# candidates) the image-score error stopped at 4.8 % from ef 48 on, and the sweep measured all ten candidates
# for nothing. Stop once the error has not improved for this many candidates.
PLATEAU_STEPS = 2


def ef_candidates(smallest: int = EF_CANDIDATES[0]) -> tuple[int, ...]:
    """The ef values a sweep measures: ``smallest`` first (a projected index's candidates, the least it can walk
    with: 8 by default, where lending brings the map error down), then the ``EF_CANDIDATES`` above it."""
    return (int(smallest),) + tuple(e for e in EF_CANDIDATES if e > smallest)


def measure_ef(bank: np.ndarray, index: Path | HnswSearch | ProjectedSearch, patches: np.ndarray, *,
               bound: float = MAX_SCORE_ERROR, safety_steps: int = EF_SAFETY_STEPS,
               threads: int | None = None) -> list[dict]:
    """patches: float32 [images, patches, D]; index: a full-dimension hnswlib file, or an opened search of the
    bundle's index (projected: ef is the first stage's, the re-rank is included). Returns one row per measured
    ef candidate, in increasing ef; ``mean_distance_rel_error``: mean relative excess of the patch distances
    (the anomaly map's error).

    The sweep stops once ``safety_steps`` candidates past the first one within ``bound`` are measured: that is
    all :func:`choose_ef` looks at, and the large candidates cost most (query time grows with ef; measuring all
    ten took 84 of a 194 s export on a 26k bank); and once the error has not improved for ``PLATEAU_STEPS``
    candidates (a projected index's floor). ``threads``: query threads (None: all cores); the sweep
    measures accuracy, not speed, so it may use them all."""
    exact = ExactSearch(bank, threads=threads)
    flat = patches.reshape(-1, patches.shape[-1])
    d_exact = exact.query(flat)
    s_exact = d_exact.reshape(len(patches), -1).max(1)
    hnsw = index if not isinstance(index, (str, Path)) else HnswSearch(bank, index, ef=EF_CANDIDATES[0],
                                                                         threads=threads)
    rows: list[dict] = []
    first_ok = None
    efs = ef_candidates(hnsw.candidates) if isinstance(hnsw, ProjectedSearch) else EF_CANDIDATES
    for i, ef in enumerate(efs):
        hnsw.set_ef(ef)
        d = hnsw.query(flat)
        recall = float(np.mean(np.isclose(d, d_exact, rtol=1e-4, atol=1e-5)))
        s = d.reshape(len(patches), -1).max(1)
        err = float(np.max(np.abs(s - s_exact) / np.maximum(np.abs(s_exact), 1e-12)))
        map_err = float(np.mean((d - d_exact) / np.maximum(d_exact, 1e-12)))
        rows.append({"ef": ef, "recall_at_1": recall, "max_image_score_rel_error": err,
                     "mean_distance_rel_error": map_err})
        if first_ok is None and err <= bound:
            first_ok = i
        if first_ok is not None and i >= first_ok + safety_steps:
            break
        best = min(r["max_image_score_rel_error"] for r in rows)
        if len(rows) > PLATEAU_STEPS and min(r["max_image_score_rel_error"] for r in rows[:-PLATEAU_STEPS]) <= best:
            break
    return rows


def choose_ef(rows: list[dict], bound: float = MAX_SCORE_ERROR, safety_steps: int = EF_SAFETY_STEPS) -> int:
    """``safety_steps`` candidates above the smallest ef within ``bound``; if none passes, the smallest ef with the
    least error (a larger one bought nothing in the sweep)."""
    efs = [int(r["ef"]) for r in rows]
    ok = [i for i, r in enumerate(rows) if r["max_image_score_rel_error"] <= bound]
    if not ok:
        if not rows:
            return EF_CANDIDATES[-1]
        least = min(r["max_image_score_rel_error"] for r in rows)
        return min(int(r["ef"]) for r in rows if r["max_image_score_rel_error"] <= least)
    return efs[min(ok[0] + safety_steps, len(efs) - 1)]


def tune_search(ctx: ExportContext, quantized_models: dict[str, Path] | None = None) -> tuple[dict, int]:
    """Tune ef on the trained model's embeddings and on every exported quantized model's embeddings: an INT8
    model's noisier embeddings can need a larger ef for the same score error. The largest choice is stored."""
    import torch

    from tocoad_edge.data.run_images import holdout_images
    from tocoad_edge.calibration.pipeline import onnx_embeddings

    size = int(ctx.meta["image_size"])
    try:
        imgs = holdout_images(ctx.meta, size, limit=16)
    except Exception as exc:  # noqa: BLE001 - tuning falls back to a safe ef, and says so
        log.warning("ef tuning skipped (%s); using ef=%d", exc, 128)
        return {**_index_record(ctx), "ef_tuning": "skipped: no held-out images",
                "max_score_error": MAX_SCORE_ERROR}, 128
    with torch.no_grad():
        embeddings = {"fp32": ctx.embedder(torch.from_numpy(imgs)).numpy()}
    for precision, path in (quantized_models or {}).items():
        embeddings[precision] = onnx_embeddings(path, imgs)
    tuning, chosen = {}, {}
    search = ctx.index_search(EF_CANDIDATES[0])
    for precision, patches in embeddings.items():
        rows = measure_ef(ctx.bank, search, patches)
        tuning[precision] = rows
        chosen[precision] = choose_ef(rows)
        log.info("hnsw ef for %s: %d (%s)", precision, chosen[precision], ", ".join(
            f"ef {r['ef']}: recall {r['recall_at_1']:.3f} err {r['max_image_score_rel_error']:.4f}" for r in rows))
    ef = max(chosen.values())
    search.close()
    return {**_index_record(ctx), "ef_tuning": tuning, "ef_per_precision": chosen, "max_score_error": MAX_SCORE_ERROR,
            "ef_safety_steps": EF_SAFETY_STEPS, "tuning_images": int(len(imgs))}, int(ef)


def _index_record(ctx: ExportContext) -> dict:
    """The manifest's ``search`` summary of the index kind (its full spec is ``memory_bank.index``)."""
    ix = ctx.index
    if ix is None or ix.kind != "projected_hnsw":
        return {"index_kind": "hnsw"}
    return {"index_kind": ix.kind, "projected_dims": ix.dims, "candidates": ix.candidates, "M": ix.M}
