"""How steady is this machine? The same frame through each stage, many times, one thread each.

    python benchmarks/jitter_probe.py BUNDLE --data ../shared/data/magnetic_tile_dev [--repeats 150]

The work is identical in every repetition (same frame, same embeddings), so any spread in its time is the
machine's: shared caches and memory bandwidth, frequency changes, other tenants. It prints p50 / p90 / p99 and
p99/p50 for the ONNX Runtime backbone, the HNSW query of the map (784 patches at the bundle's refined ef),
the exact re-check's matrix-vector pass and the exact search's full GEMM, plus the CPU steal ticks of
``/proc/stat`` over the run. If a stage's p99/p50 here is already above the streaming latency target, no
pipeline can meet the target on this machine: the tail is the environment's, not the pipeline's
(docs/performance.md, "Why the tail").
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from tocoad_edge.data import load_dataset, read_image
from tocoad_edge.runtime import Detector
from tocoad_edge.runtime.threads import blas_threads


def _cpu_ticks() -> dict[str, int]:
    """Aggregate CPU ticks from /proc/stat (Linux); empty elsewhere."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return {}
    names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    return {n: int(v) for n, v in zip(names, fields)}


def _spread(times_ms: list[float]) -> dict[str, float]:
    p50, p90, p99 = (float(np.percentile(times_ms, q)) for q in (50, 90, 99))
    return {"p50_ms": round(p50, 2), "p90_ms": round(p90, 2), "p99_ms": round(p99, 2),
            "max_ms": round(float(np.max(times_ms)), 2), "p99_over_p50": round(p99 / p50, 3)}


def probe(bundle: Path, data: Path, repeats: int) -> dict:
    test = load_dataset(data, require_test=True).test
    frame = read_image(test[len(test) // 2].path)
    with Detector.open(bundle, threads=1, search_threads=1, search="refined") as det, blas_threads(1):
        emb, _, _ = det.embed(frame)
        stages = {
            "backbone (ONNX Runtime)": lambda: det.embed(frame),
            f"hnsw map query (ef {det.search.approx.ef})": lambda: det.search.approx.query(emb),
            "exact matrix-vector pass (1 patch)": lambda: det.search.exact.query(emb[:1]),
            f"exact GEMM ({len(emb)} patches)": lambda: det.search.exact.query(emb),
        }
        out: dict = {"bundle": str(bundle), "repeats": repeats, "stages": {}}
        before = _cpu_ticks()
        for name, fn in stages.items():
            fn()                                          # warm-up
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t0) * 1e3)
            out["stages"][name] = _spread(times)
        after = _cpu_ticks()
    out["cpu_ticks"] = {k: after[k] - before.get(k, 0) for k in after}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundle", type=Path)
    p.add_argument("--data", type=Path, required=True, help="dataset folder (MVTec layout) with a test split")
    p.add_argument("--repeats", type=int, default=150, help="timed repetitions per stage (>= 10)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    if args.repeats < 10:
        p.error(f"--repeats: expected an integer >= 10 (a p99 needs samples), got {args.repeats}")
    res = probe(args.bundle, args.data, args.repeats)
    for name, s in res["stages"].items():
        print(f"{name:40s} p50 {s['p50_ms']:8.2f} ms  p90 {s['p90_ms']:8.2f}  p99 {s['p99_ms']:8.2f}  "
              f"p99/p50 {s['p99_over_p50']:.2f}")
    print("cpu ticks over the run:", res["cpu_ticks"])
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
