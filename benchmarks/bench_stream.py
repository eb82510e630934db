"""Streaming throughput of ``Detector.predict_stream`` under two thread plans.

    python benchmarks/bench_stream.py BUNDLE --data ../shared/data/magnetic_tile_dev [--frames 120]

``pinned``: one ONNX Runtime thread + one search thread + one BLAS thread (one core per stage, what
tocoad-bench measures). ``unpinned``: every pool at its default size (all CPUs each), the way a naive
deployment runs: the stages compete for the cores. Prints throughput, efficiency against the slowest stage
(stage times measured in isolation with the same plan), and latency p99/p50.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from tocoad_edge.bench.stats import summary
from tocoad_edge.data import load_dataset, read_image
from tocoad_edge.runtime import Detector


def run(bundle, frames, threads, search_threads, n):
    seq = [frames[i % len(frames)] for i in range(n)]
    with Detector.open(bundle, threads=threads, search_threads=search_threads) as det:
        a, b = [], []
        for f in seq[:30]:
            t0 = time.perf_counter()
            e, hw, tm = det.embed(f)
            t1 = time.perf_counter()
            det.score(e, hw, tm)
            a.append((t1 - t0) * 1e3)
            b.append((time.perf_counter() - t1) * 1e3)
        list(det.predict_stream(seq[:5]))
        t0 = time.perf_counter()
        preds = list(det.predict_stream(seq))
        wall = time.perf_counter() - t0
        search = det.describe()["search"]
    fps = n / wall
    lat = summary(p.timings_ms["latency"] for p in preds)
    slow = max(np.median(a), np.median(b))
    return {"threads": {"backbone": threads, "search": search_threads}, "search": search["kind"], "fps": round(fps, 2),
            "embed_p50_ms": round(float(np.median(a)), 2), "score_p50_ms": round(float(np.median(b)), 2),
            "efficiency": round(fps * slow / 1e3, 3), "latency": lat,
            "latency_p99_over_p50": round(lat["p99_ms"] / lat["p50_ms"], 3), "load": os.getloadavg()}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("bundle")
    p.add_argument("--data", required=True)
    p.add_argument("--frames", type=int, default=120)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    ds = load_dataset(args.data, require_test=True)
    frames = [read_image(t.path) for t in ds.test[:40]]
    from tocoad_edge.runtime.threads import blas_threads

    res = {}
    with blas_threads(1):
        res["pinned"] = run(Path(args.bundle), frames, 1, 1, args.frames)
    res["unpinned"] = run(Path(args.bundle), frames, None, None, args.frames)
    print(json.dumps(res, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
