"""Projected-index sweep: dims × candidates × ef against exact search, on real frames, with the index size.

    python benchmarks/projected_sweep.py BUNDLE --data ../shared/data/magnetic_tile_dev [--frames 24] \
        [--dims 32,48,64] [--candidates 4,8,16] [--ef 16,32] [--json out.json]

The bank is BUNDLE's coreset.npy rounded to float16 (what a default export stores). Embeddings come from
BUNDLE's FP32 model on ``--frames`` test images spread over the test set. Per setting: ms per frame of the
projected search alone (one thread; every setting timed in turn on the same frames), recall@1, mean and
p99 relative excess of the patch distances over exact (the anomaly map's error), the largest relative error of
an image score taken from these distances alone (refined search makes the image score exact anyway), and the
index file size. Prints a table; ``--json`` writes the rows.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from tocoad_edge.data import evenly_spread, load_dataset, read_image
from tocoad_edge.export.search_index import pca_search_projection
from tocoad_edge.runtime import Detector
from tocoad_edge.runtime.search.exact import ExactSearch
from tocoad_edge.runtime.search.projected import ProjectedSearch, build_projected_index


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("bundle")
    p.add_argument("--data", required=True)
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--dims", type=_ints, default=[32, 48, 64])
    p.add_argument("--candidates", type=_ints, default=[4, 8, 16])
    p.add_argument("--ef", type=_ints, default=[16, 32])
    p.add_argument("--json")
    args = p.parse_args()
    items = list(load_dataset(args.data, require_test=True).test)
    items = evenly_spread(items, args.frames)
    det = Detector.open(args.bundle, search="exact", threads=1)
    patches = np.stack([np.asarray(det.embed(read_image(t.path))[0]).reshape(-1, det.manifest.memory_bank.dim)
                        for t in items])
    det.close()
    bank = np.load(Path(args.bundle) / "coreset.npy").astype(np.float16).astype(np.float32)
    exact = ExactSearch(bank, threads=1)
    d_exact = np.stack([exact.query(q) for q in patches])
    rows = []
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        for dims in args.dims:
            projection = pca_search_projection(bank, dims)
            path = Path(tmp) / f"index{dims}.hnsw"
            build_projected_index(bank, projection, path)
            searches = {(k, ef): ProjectedSearch(bank, path, projection, ef=ef, candidates=k, threads=1)
                        for k in args.candidates for ef in args.ef if ef >= k}
            times: dict = {key: [] for key in searches}
            out: dict = {}
            for q in patches:                              # settings take turns on each frame (load hits all alike)
                for key, s in searches.items():
                    t0 = time.perf_counter()
                    d = s.query(q)
                    times[key].append(time.perf_counter() - t0)
                    out.setdefault(key, []).append(d)
            for (k, ef), s in searches.items():
                d = np.stack(out[(k, ef)])
                rel = (d - d_exact) / np.maximum(d_exact, 1e-12)
                score_err = np.abs(d.max(1) - d_exact.max(1)) / d_exact.max(1)
                rows.append({"dims": dims, "candidates": k, "ef": ef,
                             "ms_per_frame": round(1e3 * float(np.median(times[(k, ef)])), 2),
                             "recall_at_1": round(float(np.mean(np.isclose(d, d_exact, rtol=1e-4, atol=1e-5))), 4),
                             "mean_map_rel_err": round(float(rel.mean()), 5),
                             "p99_map_rel_err": round(float(np.percentile(rel, 99)), 4),
                             "max_image_score_rel_err": round(float(score_err.max()), 4),
                             "index_mb": round(path.stat().st_size / 1e6, 2)})
                s.close()
    print(f"{len(patches)} frames × {patches.shape[1]} patches, bank {bank.shape}, load average {load}")
    print(f"{'dims':>4} {'k':>3} {'ef':>3} {'ms/frame':>8} {'recall':>7} {'mean err':>9} {'p99 err':>8} "
          f"{'img err':>8} {'index MB':>8}")
    for r in rows:
        print(f"{r['dims']:>4} {r['candidates']:>3} {r['ef']:>3} {r['ms_per_frame']:>8} {r['recall_at_1']:>7} "
              f"{r['mean_map_rel_err']:>9} {r['p99_map_rel_err']:>8} {r['max_image_score_rel_err']:>8} "
              f"{r['index_mb']:>8}")
    if args.json:
        Path(args.json).write_text(json.dumps({"load_average": load, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
