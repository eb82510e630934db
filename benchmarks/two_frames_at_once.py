"""How much of two cores does a frame's work get here? The floor under any two-thread split of one frame.

    python benchmarks/two_frames_at_once.py BUNDLE --data ../shared/data/magnetic_tile_dev [--stage search]

Two processes, each pinned to one of the first two CPUs, each with its own one-thread detector on the same
images. In turns they score the images alone (the other process waits at a barrier, taking turns who runs) and
both at once. ``together / alone`` is what running a second copy of the same work on the other core costs each
copy: memory bandwidth, the shared L3, the host's placement of the two vCPUs. Splitting one frame over two
threads cannot beat ``together / alone / 2`` of the one-thread time (plus whatever part of the frame does not
split), so a ratio near 1 here means the rest of a two-thread frame's loss is in the split itself (hand-offs,
the GIL, the serial parts), not in the machine.

``--stage``: ``predict`` (the whole frame), ``backbone`` (``embed``) or ``search`` (the first stage,
``search.query``, on embeddings computed once).
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

STAGES = ("predict", "backbone", "search")


def _worker(cpu: int, turn_first: bool, args: argparse.Namespace, barrier: Any, results: Any) -> None:
    """One process's turns; any failure breaks the barrier, so that the other process stops waiting, and is
    reported instead of the times."""
    try:
        results.put((cpu, _turns(cpu, turn_first, args, barrier)))
    except threading.BrokenBarrierError:
        results.put((cpu, {"error": "the other process stopped"}))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
        barrier.abort()
        results.put((cpu, {"error": f"{type(exc).__name__}: {exc}"}))


def _turns(cpu: int, turn_first: bool, args: argparse.Namespace, barrier: Any) -> dict[str, float]:
    from tocoad_edge.data import evenly_spread, load_dataset, read_image
    from tocoad_edge.runtime import Detector

    os.sched_setaffinity(0, {cpu})
    items = evenly_spread(list(load_dataset(args.data, require_test=True).test), args.max_images)
    frames = [read_image(t.path) for t in items]
    with Detector.open(args.bundle, search=args.search, threads=1) as det:
        embeddings = [det.embed(f)[0] for f in frames] if args.stage == "search" else []
        for f in frames[:3]:
            det.predict(f)

        def one(i: int) -> float:
            t0 = time.perf_counter()
            if args.stage == "predict":
                det.predict(frames[i])
            elif args.stage == "backbone":
                det.embed(frames[i])
            else:
                det.search.query(embeddings[i])
            return (time.perf_counter() - t0) * 1e3

        times: dict[str, list[float]] = {"alone": [], "together": []}
        for r in range(args.rounds):
            barrier.wait()
            if (r % 2 == 0) == turn_first:         # this process's turn alone; the other waits at the barrier
                times["alone"] += [one(i) for i in range(len(frames))]
            barrier.wait()
            times["together"] += [one(i) for i in range(len(frames))]
    return {k: float(np.median(v)) for k, v in times.items()}


def measure(bundle: str, data: str, *, stage: str = "predict", search: str = "refined", max_images: int = 20,
            rounds: int = 10) -> list[tuple[int, dict[str, float]]]:
    """``[(cpu, {"alone": p50 ms, "together": p50 ms})]`` for the first two CPUs this process may use."""
    from tocoad_edge.errors import InputError

    if stage not in STAGES:
        raise InputError("unknown stage", expected=" or ".join(STAGES), got=repr(stage))
    if rounds < 2:
        raise InputError("each process needs a turn alone", expected="rounds >= 2", got=f"rounds={rounds}")
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_setaffinity") else 0
    if usable < 2:
        raise InputError("two copies at once need two CPUs to pin them to",
                         expected="Linux and at least two CPUs this process may run on",
                         got=f"{usable} CPUs" if usable else "no CPU affinity on this system")
    for what, path in (("bundle", bundle), ("data", data)):
        if not Path(path).is_dir():
            raise InputError(f"the {what} folder does not exist", expected="a folder", got=str(path))
    args = argparse.Namespace(bundle=str(bundle), data=str(data), stage=stage, search=search,
                              max_images=int(max_images), rounds=int(rounds))
    cpus = sorted(os.sched_getaffinity(0))[:2]
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(cpu, k == 0, args, barrier, results)) for k, cpu in enumerate(cpus)]
    for proc in procs:
        proc.start()
    try:
        got = sorted(results.get(timeout=600) for _ in procs)
    finally:
        for proc in procs:
            proc.join(timeout=60)
    failed = [f"CPU {cpu}: {times['error']}" for cpu, times in got if "error" in times]
    if failed:
        raise RuntimeError("a worker process failed: " + "; ".join(failed))
    return got


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("bundle")
    p.add_argument("--data", required=True)
    p.add_argument("--stage", default="predict", choices=STAGES)
    p.add_argument("--search", default="refined")
    p.add_argument("--max-images", type=int, default=20)
    p.add_argument("--rounds", type=int, default=10, help="turns alone (half each) and together")
    args = p.parse_args()
    from tocoad_edge.errors import InputError

    try:
        got = measure(args.bundle, args.data, stage=args.stage, search=args.search, max_images=args.max_images,
                      rounds=args.rounds)
    except (InputError, RuntimeError) as exc:
        p.error(str(exc))
    print(f"| CPU | {args.stage} alone p50 | both at once p50 | together / alone |")
    print("| --- | --- | --- | --- |")
    for cpu, t in got:
        print(f"| {cpu} | {t['alone']:.2f} ms | {t['together']:.2f} ms | {t['together'] / t['alone']:.2f} |")
    worst = max(t["together"] / t["alone"] for _, t in got)
    print(f"a two-thread split of one frame's {args.stage} is at best {worst / 2:.2f}x of one thread here")


if __name__ == "__main__":
    main()
