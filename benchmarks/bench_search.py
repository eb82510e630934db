"""HNSW vs exact search on real patch features: speed, recall@1 and image AUROC for banks of 4k, 16k, 65k
and 200k entries, and the crossover point.

    python benchmarks/extract_features.py --data ../shared/data/magnetic_tile_dev --out /tmp/mt_feats.npz
    python benchmarks/bench_search.py --features /tmp/mt_feats.npz --json /tmp/search.json

Banks: 4k and 16k are greedy coresets (the training path) of the patches of the first 100 train images;
65k and 200k are random subsets of the patches of train images 0-299 (a greedy coreset that large takes
too long to be a benchmark step). ``ef`` is tuned per bank exactly like the export does
(export/search_tuning.py: one candidate above the smallest ef whose image-score error is ≤ 1 % on held-out
normal images: train images 300-315, never in a bank). HNSW M=16, ef_construction=200 (the export defaults).
Timings are the median over frames of one 784-patch query; both thread counts are measured. AUROC is on an even
spread of the test images. The load average is recorded.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from tocoad_edge.eval.metrics import auroc
from tocoad_edge.export.search_tuning import choose_ef, measure_ef
from tocoad_edge.memory.coreset import greedy_coreset
from tocoad_edge.runtime.search.exact import ExactSearch
from tocoad_edge.runtime.search.hnsw import HnswSearch, build_hnsw_index


def _median_ms(fn, frames, repeats):
    fn(frames[0])
    ts = []
    for i in range(repeats):
        t0 = time.perf_counter()
        fn(frames[i % len(frames)])
        ts.append(time.perf_counter() - t0)
    return round(float(np.median(ts)) * 1e3, 2)


def bank_for(size, train, seed=0):
    if size <= 16384:
        src = train[:100].reshape(-1, train.shape[-1])
        idx = greedy_coreset(src, count=size, seed=seed)
        return src[idx], f"greedy coreset of {len(src)} patches (100 images)"
    src = train[:300].reshape(-1, train.shape[-1])
    rng = np.random.default_rng(seed)
    return src[np.sort(rng.choice(len(src), size, replace=False))], f"random subset of {len(src)} patches (300 images)"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--features", required=True)
    p.add_argument("--sizes", default="4096,16384,65536,200000")
    p.add_argument("--auroc-images", type=int, default=40)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    z = np.load(args.features)
    train, test, labels = z["train"], z["test"], z["labels"]
    pick = np.linspace(0, len(test) - 1, args.auroc_images).round().astype(int)
    test, labels = test[pick], labels[pick]
    held = train[300:316]
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="bench_search_"))
    for size in [int(s) for s in args.sizes.split(",")]:
        t0 = time.perf_counter()
        bank, source = bank_for(size, train)
        t_bank = time.perf_counter() - t0
        t0 = time.perf_counter()
        build_hnsw_index(bank, tmp / "i.hnsw", M=16, ef_construction=200, threads=2)
        t_build = time.perf_counter() - t0
        row = {"entries": size, "source": source, "bank_build_s": round(t_bank, 1), "hnsw_build_s": round(t_build, 1),
               "load": os.getloadavg()}
        exact = ExactSearch(bank, threads=2)
        hnsw = HnswSearch(bank, tmp / "i.hnsw", ef=16, threads=2)
        # ef tuning exactly as at export (one candidate of margin above the smallest passing ef)
        ef = choose_ef(measure_ef(bank, tmp / "i.hnsw", held, threads=2))
        hnsw.set_ef(ef)
        row["ef"] = ef
        # accuracy on the test images
        tq = test.reshape(-1, test.shape[-1])
        de = exact.query(tq)
        dh = hnsw.query(tq)
        row["recall_at_1"] = round(float(np.mean(np.isclose(dh, de, rtol=1e-4, atol=1e-5))), 4)
        se, sh = de.reshape(len(test), -1).max(1), dh.reshape(len(test), -1).max(1)
        row["max_image_score_rel_error"] = round(float(np.max(np.abs(sh - se) / se)), 5)
        row["auroc_exact"] = round(auroc(labels, se), 4)
        row["auroc_hnsw"] = round(auroc(labels, sh), 4)
        # speed: one frame = 784 queries
        frames = [t for t in test[:args.repeats]]
        for th in (1, 2):
            exact.set_threads(th)
            hnsw.set_threads(th)
            reps = args.repeats if size < 100000 else 3
            row[f"exact_ms_{th}t"] = _median_ms(exact.query, frames, reps)
            row[f"hnsw_ms_{th}t"] = _median_ms(hnsw.query, frames, args.repeats)
        row["faster_2t"] = "hnsw" if row["hnsw_ms_2t"] < row["exact_ms_2t"] else "exact"
        print(json.dumps(row), flush=True)
        rows.append(row)
    # crossover: first size where HNSW wins, log-interpolated on the speed ratio
    cross = None
    for a, b in zip(rows, rows[1:]):
        ra = np.log(a["exact_ms_2t"] / a["hnsw_ms_2t"])
        rb = np.log(b["exact_ms_2t"] / b["hnsw_ms_2t"])
        if ra < 0 <= rb:
            t = -ra / (rb - ra)
            cross = int(round(np.exp(np.log(a["entries"]) + t * (np.log(b["entries"]) - np.log(a["entries"])))))
            break
    if cross is None and rows and rows[0]["faster_2t"] == "hnsw":
        cross = f"< {rows[0]['entries']}"
    res = {"rows": rows, "crossover_entries_2t": cross, "dim": int(train.shape[-1]),
           "auroc_images": int(len(test)), "cpus": os.cpu_count()}
    print(json.dumps({"crossover_entries_2t": cross}))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
