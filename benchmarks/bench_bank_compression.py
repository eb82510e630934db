"""The bank candidates of ``tocoad-export bundle --bank auto`` measured on real labelled test images: coreset ratio
× PCA dims × storage dtype → bank MB, search ms, image AUROC, pixel AUROC, Spearman of image scores vs the full
bank, and which candidate the export's gate (``export/bank_compression.py``) would keep.

    python benchmarks/extract_features.py --data ../shared/data/magnetic_tile_dev --out /tmp/mt_feats.npz
    python benchmarks/bench_bank_compression.py --features /tmp/mt_feats.npz \
        --data ../shared/data/magnetic_tile_dev --json /tmp/bank.json

The full bank is the greedy k-center coreset (10 %) of the patches of the first 334 train images, as training
builds it (``--run RUN``: that run's bank, when RUN was trained on the same features); smaller ratios are prefixes
of the greedy order (over all patches, or with ``--run`` over the bank, as the export does). Thresholds come
from train images 334-349 (held out, as in training). The gate here is measured on real test images (the export
measures on held-out normals + synthetic anomalies, since it has no labelled real data). Search time: one
784-patch frame, exact search as an ONNX graph (``search: graph``), one thread, median of 5, candidates
interleaved.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import cv2
import numpy as np

from tocoad_edge.data import load_dataset, read_image, read_mask
from tocoad_edge.eval.metrics import auroc, pixel_auroc, spearman
from tocoad_edge.export.bank_compression import (DEFAULT_DIMS, DEFAULT_RATIOS, BankCandidate, CandidateEvaluator,
                                                 cost)
from tocoad_edge.runtime.scoring import anomaly_map
from tocoad_edge.runtime.search.graph import GraphSearch
from tocoad_edge.train.config import ScoringConfig


def _masks(data: str, pick: np.ndarray, size: int) -> list[np.ndarray]:
    """Ground-truth masks at the map size (nearest-neighbour resize of the full-size mask)."""
    items = list(load_dataset(data, require_test=True).test)
    out = []
    for i in pick:
        t = items[i]
        full = read_mask(t.mask_path, read_image(t.path).shape[:2]).astype(np.uint8)
        out.append(cv2.resize(full, (size, size), interpolation=cv2.INTER_NEAREST).astype(bool))
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--features", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--test-images", type=int, default=96)
    p.add_argument("--run", default=None, help="training run folder: use its memory bank (the same features' 10 %% "
                                                  "coreset) instead of selecting one here (minutes on 262k patches)")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    z = np.load(args.features)
    train, test, labels = z["train"], z["test"], z["labels"]
    pick = np.linspace(0, len(test) - 1, min(args.test_images, len(test))).round().astype(int)
    test, labels = test[pick], labels[pick]
    masks = _masks(args.data, pick, 224)
    patches = train[:334].reshape(-1, train.shape[-1])
    t0 = time.perf_counter()
    if args.run:
        from tocoad_edge.train.run_folder import RunFolder

        bank = RunFolder(Path(args.run)).memory_bank().astype(np.float32)
    else:
        from tocoad_edge.memory.coreset import greedy_coreset

        order = greedy_coreset(patches, count=int(round(0.1 * len(patches))), seed=0, selection_order=True)
        bank = np.ascontiguousarray(patches[np.sort(order)])
    t_coreset = time.perf_counter() - t0
    held = train[334:350]
    if args.run:        # the run's own held-out images (by name; extract_features.py keeps the dataset's order)
        names = [Path(x).name for x in load_dataset(args.data).train]
        held = train[[names.index(h) for h in RunFolder(Path(args.run)).meta()["holdout_images"]]]
    ev = CandidateEvaluator(bank, test, labels, held, source_patches=len(patches), grid=(28, 28),
                            input_hw=(224, 224), sigma=4.0, scoring_cfg=ScoringConfig(), threads=1)
    if not args.run:
        ev._order = np.searchsorted(np.sort(order), order)  # the greedy order over all patches, as rows of ``bank``
    cands = [BankCandidate(None, None, "float32")] + [BankCandidate(r, d, "float16")
                                                      for r in (None, *DEFAULT_RATIOS) for d in (None, *DEFAULT_DIMS)]
    cands.append(BankCandidate(0.01, 64, "float32"))
    cands.sort(key=lambda c: cost(c, len(bank), bank.shape[1], len(patches)), reverse=True)
    ref_scores = None
    rows = []
    for c in cands:
        row, res = ev.evaluate(c)
        axes = res.projection
        g = GraphSearch(res.bank, threads=1)
        q = test if axes is None else test @ axes
        d = np.stack([g.query(e) for e in q])
        scores = d.max(1)
        ref_scores = scores if ref_scores is None else ref_scores
        maps = [anomaly_map(x, (28, 28), (224, 224), 4.0) for x in d]
        row.update({"image_auroc": round(auroc(labels, scores), 4), "pixel_auroc": round(pixel_auroc(masks, maps), 4),
                    "spearman_vs_full_test": round(spearman(ref_scores, scores), 5)})
        ms = []
        for _ in range(5):
            t = time.perf_counter()
            g.query(q[0])
            ms.append(time.perf_counter() - t)
        row["search_ms_graph_1t"] = round(float(np.median(ms)) * 1e3, 2)
        row["load"] = [round(x, 1) for x in os.getloadavg()]
        g.close()
        print(json.dumps(row), flush=True)
        rows.append(row)
    passing = [r for r in rows if r["passes"]]
    chosen = min(passing, key=lambda r: (r["entries"] * r["dims"], r["bank_mb"]))["candidate"] if passing else None
    print(json.dumps({"gate_would_keep": chosen, "coreset_s": round(t_coreset, 1)}))
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "gate_would_keep": chosen, "bank_entries": len(bank),
                                               "coreset_s": t_coreset, "test_images": int(len(pick))}, indent=2))


if __name__ == "__main__":
    main()
