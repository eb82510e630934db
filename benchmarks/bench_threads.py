"""Single-frame latency with one and with two threads, interleaved on the same decoded images.

    python benchmarks/bench_threads.py BUNDLE [BUNDLE2 ...] --data ../shared/data/magnetic_tile_dev \
        --json /tmp/threads.json [--search exact,graph,refined]

    # old (full-dimension index, float32 bank) vs new (projected index, float16 bank) default bundle:
    python benchmarks/bench_threads.py /work/runs/mt_full_bundle /work/runs/fastsearch/mt_bundle \
        --data ../shared/data/magnetic_tile_dev --search refined --json /tmp/threads.json

For each bundle and search kind, two detectors are opened (``threads=1`` and ``threads=2``); each test image is
decoded once and scored by every detector in turn (so load from other processes hits all of them alike; with
``--block N`` each detector scores N images per turn, who goes first alternating: each detector holds its own
bank, index and bound matrix, and image by image every frame starts with caches the others filled). Prints
p50 / p99 of ``predict`` and of each stage, the 2-thread / 1-thread p50 ratio, every detector's thread plan
(ONNX Runtime pool and spin-wait, search split, BLAS pools) and the load average before and after.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from tocoad_edge.data import evenly_spread, load_dataset, read_image
from tocoad_edge.runtime import Detector

sys.path.insert(0, str(Path(__file__).resolve().parent))
from second_core_check import probe, summarise, summary_line  # noqa: E402  (same folder)
from turns import add_block_option, turns  # noqa: E402  (same folder)


def _pct(v: list[float]) -> dict:
    return {"p50": round(float(np.percentile(v, 50)), 2), "p99": round(float(np.percentile(v, 99)), 2)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("bundles", nargs="+")
    p.add_argument("--data", required=True)
    p.add_argument("--search", default="exact,graph,refined")
    p.add_argument("--max-images", type=int, default=60)
    add_block_option(p)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--json", default=None)
    p.add_argument("--core-check", type=float, default=10.0,
                   help="seconds of second_core_check.py before and after (0: none), on the first bundle")
    args = p.parse_args()
    items = list(load_dataset(args.data, require_test=True).test)
    items = evenly_spread(items, args.max_images)
    frames = [read_image(t.path) for t in items]
    load_before = os.getloadavg()
    core_check = {"before": summarise(probe(args.bundles[0], args.core_check))} if args.core_check > 0 else {}
    dets = {}
    names = [Path(b).name for b in args.bundles]
    for bundle, name in zip(args.bundles, names):
        for kind in args.search.split(","):
            for th in (1, 2):
                dets[f"{name}:{kind}_{th}t"] = Detector.open(bundle, search=kind, threads=th)
    for det in dets.values():
        for f in frames[:args.warmup]:
            det.predict(f)
    times: dict[str, dict[str, list[float]]] = {k: {} for k in dets}
    for (k, det), turn in turns(list(dets.items()), len(frames), args.block):
        for i in turn:
            for stage, ms in det.predict(frames[i]).timings_ms.items():
                times[k].setdefault(stage, []).append(ms)
    if args.core_check > 0:
        core_check["after"] = summarise(probe(args.bundles[0], args.core_check))
    out = {"bundles": list(args.bundles), "images": len(frames), "block": args.block, "load_before": load_before,
           "second_core_check": core_check,
           "load_after": os.getloadavg(), "cpus": os.cpu_count(), "detectors": {}}
    for k, det in dets.items():
        out["detectors"][k] = {"total": _pct(times[k]["total"]),
                               "stages": {s: _pct(v) for s, v in times[k].items() if s != "total"},
                               "threads": det.describe()["threads"], "search": det.describe()["search"]}
        det.close()
    for key in sorted({k.rsplit("_", 1)[0] for k in dets}):
        one, two = out["detectors"][f"{key}_1t"], out["detectors"][f"{key}_2t"]
        out[f"{key}_p50_2t_over_1t"] = round(two["total"]["p50"] / one["total"]["p50"], 3)
        stages = ", ".join(f"{s} {one['stages'][s]['p50']} / {two['stages'][s]['p50']}" for s in one["stages"])
        print(f"{key}: p50 / p99 1 thread {one['total']['p50']} / {one['total']['p99']} ms, 2 threads "
              f"{two['total']['p50']} / {two['total']['p99']} ms, ratio {out[f'{key}_p50_2t_over_1t']} "
              f"(stage p50 1t / 2t: {stages})")
    for bundle, name in zip(args.bundles, names):
        sizes = {f.name: f.stat().st_size for f in sorted(Path(bundle).iterdir()) if f.is_file()}
        out.setdefault("bundle_bytes", {})[name] = sizes
        print(f"{name}: {sum(sizes.values()) / 1e6:.1f} MB ("
              + ", ".join(f"{n} {b / 1e6:.1f}" for n, b in sizes.items() if b >= 100_000) + ")")
    print(f"load {load_before} -> {out['load_after']}")
    for when, c in core_check.items():
        print(f"second core {when}: {summary_line(c)}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
