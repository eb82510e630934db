"""Coreset timing: greedy k-center, 157k → 15.7k real patch features (200 magnetic tile train images).

    python benchmarks/extract_features.py --data ../shared/data/magnetic_tile_dev --out /tmp/mt_feats.npz
    python benchmarks/bench_coreset.py --features /tmp/mt_feats.npz [--images 200] [--check-plain 20000]

Prints wall time, process CPU time and the load average (the machine is shared: CPU time is the fairer
figure), and with ``--check-plain N`` checks the selection equals the plain greedy loop on the first N
patches (plain loop timed too).
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from tocoad_edge.memory.coreset import greedy_coreset, plain_greedy_coreset


def timed(fn, *a, **kw):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(*a, **kw)
    return out, time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--features", required=True)
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--ratio", type=float, default=0.1)
    p.add_argument("--check-plain", type=int, default=0, help="compare with the plain loop on N patches")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    train = np.load(args.features)["train"][:args.images]
    flat = train.reshape(-1, train.shape[-1])
    res = {"patches": int(len(flat)), "dim": int(flat.shape[1]), "ratio": args.ratio, "cpus": os.cpu_count(),
           "load_before": os.getloadavg()}
    idx, wall, cpu = timed(greedy_coreset, flat, args.ratio)
    res.update(selected=int(len(idx)), wall_s=round(wall, 2), cpu_s=round(cpu, 2), load_after=os.getloadavg())
    if args.check_plain:
        sub = flat[:args.check_plain]
        a, wa, ca = timed(greedy_coreset, sub, args.ratio)
        b, wb, cb = timed(plain_greedy_coreset, sub, args.ratio)
        res["check"] = {"patches": int(len(sub)), "equal_to_plain": bool(np.array_equal(a, b)),
                        "fast_wall_s": round(wa, 2), "plain_wall_s": round(wb, 2),
                        "fast_cpu_s": round(ca, 2), "plain_cpu_s": round(cb, 2)}
    print(json.dumps(res, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
