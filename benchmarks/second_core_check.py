"""Is the second core really there? The bundle's backbone alone, in short blocks: one ONNX Runtime thread pinned to
each of the first two CPUs in turn, then two threads. A block where each CPU alone runs at full speed but two
threads gain little over one means the two CPUs could not both run at once in that stretch (on a VM: the host
scheduled them onto one physical core, or another tenant took the core); any two-thread timing from that stretch
says nothing about our code, and anomalib's two-thread runs suffer the same.

    python benchmarks/second_core_check.py BUNDLE [--seconds 60 --runs 15]

On the 2-core development VM: each CPU alone ran the backbone at 7.9-8.1 ms throughout, two threads at 4.2-4.5 ms
in most blocks and at 7.2-7.5 ms in others (17 % of the blocks of one 150 s run), in stretches of a few seconds to
half a minute. Run it before and after a two-thread benchmark and quote it with the benchmark.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from tocoad_edge.runtime.backends.onnxrt import session_options

# Two threads on a usable second core run the backbone at about 0.55-0.6× one thread here; above 0.75× the second
# core did not help.
SLOW_RATIO = 0.75


def probe(bundle: str | Path, seconds: float, runs: int = 15, echo: bool = False) -> list[dict[str, float]]:
    """Blocks of ``runs`` backbone runs each, for ``seconds``: one thread pinned to each of the first two CPUs
    this process may use, then two threads on both; the calling thread's CPU set is restored after."""
    if not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("needs Linux and at least two CPUs this process may run on")
    allowed = os.sched_getaffinity(0)
    cpus = sorted(allowed)[:2]
    manifest = json.loads((Path(bundle) / "manifest.json").read_text())
    model = str(Path(bundle) / manifest["models"]["fp32"]["file"])
    one, two = (ort.InferenceSession(model, session_options(ort, th), providers=["CPUExecutionProvider"])
                for th in (1, 2))
    inp = one.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    x = (np.random.default_rng(0).random(shape) * 255).astype(np.uint8 if "uint8" in inp.type else np.float32)

    def p50(session: ort.InferenceSession, cpu_set: set[int]) -> float:
        os.sched_setaffinity(0, cpu_set)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            session.run(None, {inp.name: x})
            times.append((time.perf_counter() - t0) * 1e3)
        return float(np.median(times))

    if echo:
        print(f"| time | 1 thread on CPU {cpus[0]} | 1 thread on CPU {cpus[1]} | 2 threads | 2 / 1 |")
        print("| --- | --- | --- | --- | --- |")
    blocks: list[dict[str, float]] = []
    end = time.time() + seconds
    try:
        while time.time() < end:
            a, b = p50(one, {cpus[0]}), p50(one, {cpus[1]})
            both = p50(two, set(cpus))
            blocks.append({"cpu_a_ms": round(a, 2), "cpu_b_ms": round(b, 2), "both_ms": round(both, 2),
                           "ratio": round(both / min(a, b), 3)})
            if echo:
                print(f"| {time.strftime('%H:%M:%S')} | {a:.2f} ms | {b:.2f} ms | {both:.2f} ms | "
                      f"{both / min(a, b):.2f} |", flush=True)
    finally:
        os.sched_setaffinity(0, allowed)
    return blocks


def summarise(blocks: list[dict[str, float]], slow_ratio: float = SLOW_RATIO) -> dict[str, object]:
    """How many blocks had no usable second core, and the median ratio."""
    return {"blocks": len(blocks), "without_second_core": sum(b["ratio"] > slow_ratio for b in blocks),
            "slow_ratio": slow_ratio, "median_ratio": round(float(np.median([b["ratio"] for b in blocks])), 3)
            if blocks else None}


def summary_line(summary: dict[str, object]) -> str:
    """``summarise``'s counts in one line, for the benches' printouts."""
    return (f"{summary['without_second_core']} of {summary['blocks']} blocks without a usable second core "
            f"(backbone alone, 2 / 1 threads above {summary['slow_ratio']}; median {summary['median_ratio']})")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("bundle")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--runs", type=int, default=15, help="runs per column in each block")
    p.add_argument("--slow-ratio", type=float, default=SLOW_RATIO,
                   help="a block whose 2-thread / 1-thread p50 is above this counts as one without a second core")
    args = p.parse_args()
    print(summary_line(summarise(probe(args.bundle, args.seconds, args.runs, echo=True), args.slow_ratio)))


if __name__ == "__main__":
    main()
