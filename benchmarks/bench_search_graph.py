"""``search: graph`` (the bank as an ONNX model run by ONNX Runtime) against exact (BLAS) and refined (HNSW map +
exact image score) search, on real patch features, at 4k, 16k and 65k entries, 1 and 2 threads.

    python benchmarks/extract_features.py --data ../shared/data/magnetic_tile_dev --out /tmp/mt_feats.npz
    python benchmarks/bench_search_graph.py --features /tmp/mt_feats.npz --json /tmp/search_graph.json

Banks as in bench_search.py (greedy coresets for 4k/16k, a random subset for 65k). The refined search's map ef is
the smallest ef with recall@1 ≥ 0.97 on held-out normal images (train images 300-315), and its re-checks use
``BoundedExactSearch``, as the runtime builds it.
One frame = the 784 patches of one test image; the candidates take turns frame by frame (interleaved), so load
from other processes hits them alike; the median over frames is printed, with the load average. Also checks that
graph and exact agree (max relative difference).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from tocoad_edge.export.search_tuning import measure_ef
from tocoad_edge.runtime.search.exact import ExactSearch
from tocoad_edge.runtime.search.graph import GraphSearch
from tocoad_edge.runtime.search.hnsw import HnswSearch, build_hnsw_index
from tocoad_edge.runtime.search.refined import bounded_refined_search

from bench_search import bank_for   # noqa: E402  (same folder)


def _interleaved_ms(fns: dict, frames: list, repeats: int) -> dict:
    for fn in fns.values():
        fn(frames[0])
    ts = {k: [] for k in fns}
    for i in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn(frames[i % len(frames)])
            ts[k].append(time.perf_counter() - t0)
    return {k: round(float(np.median(v)) * 1e3, 2) for k, v in ts.items()}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--features", required=True)
    p.add_argument("--sizes", default="4096,16384,65536")
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    z = np.load(args.features)
    train, test = z["train"], z["test"]
    held = train[300:316]
    tmp = Path(tempfile.mkdtemp(prefix="bench_graph_"))
    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        bank, source = bank_for(size, train)
        build_hnsw_index(bank, tmp / "i.hnsw", M=16, ef_construction=200, threads=2)
        tuning = measure_ef(bank, tmp / "i.hnsw", held, threads=2)
        ok = [r["ef"] for r in tuning if r["recall_at_1"] >= 0.97]
        map_ef = min(ok) if ok else tuning[-1]["ef"]
        row = {"entries": size, "dim": int(bank.shape[1]), "source": source, "refined_map_ef": map_ef}
        frames = list(test[np.linspace(0, len(test) - 1, 16).round().astype(int)])
        for th in (1, 2):
            exact, graph = ExactSearch(bank, threads=th), GraphSearch(bank, threads=th)
            refined = bounded_refined_search(HnswSearch(bank, tmp / "i.hnsw", ef=map_ef, threads=th), bank,
                                             th)                                # as the runtime builds it
            if th == 1:
                rel = max(float(np.max(np.abs(graph.query(f) / exact.query(f) - 1))) for f in frames[:4])
                row["graph_vs_exact_max_rel_diff"] = rel
            ms = _interleaved_ms({"exact": exact.query, "graph": graph.query,
                                  "refined": lambda f, r=refined: r.max_distance(f, r.query(f))}, frames,
                                 args.repeats)
            row.update({f"{k}_ms_{th}t": v for k, v in ms.items()})
            for s in (exact, graph, refined):
                s.close()
        row["load"] = [round(x, 1) for x in os.getloadavg()]
        print(json.dumps(row), flush=True)
        rows.append(row)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "cpus": os.cpu_count()}, indent=2))


if __name__ == "__main__":
    main()
