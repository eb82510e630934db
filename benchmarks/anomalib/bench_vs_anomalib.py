"""tocoad-edge's runtime against anomalib's exported PatchCore, in one process, on the same decoded images.

    nice -n 10 .venv/bin/python benchmarks/anomalib/bench_vs_anomalib.py \
        [--bundle /work/runs/mt_full_bundle] [--anomalib /work/runs/anomalib] [--search refined] \
        [--data ../shared/data/magnetic_tile_dev] [--json /work/runs/anomalib/bench.json]

Runs in the project's virtualenv (onnxruntime, no torch): ``tocoad_edge.runtime.Detector`` and an
``onnxruntime.InferenceSession`` of the model ``train_export.py`` wrote. Every test image is decoded once (uint8
BGR, ``tocoad_edge.data.read_image``); for each image every runner is timed in turn (tocoad-edge and anomalib at
1 and 2 threads; who goes first alternates image by image), so load from other processes hits all alike.

``--block N`` gives each runner N consecutive images per turn (who goes first alternates block by block). Image
by image (N = 1, the default) every runner starts each frame with caches the other runners have filled (anomalib
streams its 17 MB bank, we touch part of a 40 MB bank, a 7 MB index and a 10 MB bound matrix; a build box has a
32 MB L3 or less). A line runs one model frame after frame, so N = 10 is closer to what each side sees deployed;
blocks that short (under a second) still spread the host's slow and fast stretches over both sides.

Timed per side, from the decoded uint8 frame to the outputs:
- tocoad-edge: ``Detector.predict(frame)`` (its resize, backbone, search, map), ``threads=N`` (ONNX Runtime
  intra-op and search pools, see ``Detector.describe``).
- anomalib: BGR uint8 → RGB float32 NCHW in 0..1 (what its graph takes) + ``session.run`` (resize to 224,
  normalisation, backbone, the distance MatMul over its bank and its map are all in the graph), ORT
  ``intra_op_num_threads=N``, ``inter_op_num_threads=1``; its workers spin during a run and stop at its end, like
  tocoad-edge's (``--anomalib-spin run``, the default: ORT's own default keeps them spinning after a run, into
  the next runner's timed call).

Before and after the timed loop (``--core-check SECONDS``) the bundle's backbone runs alone on each CPU and on both
(``benchmarks/second_core_check.py``): on a VM the second core is not always usable, and a two-thread row from
such a stretch measures the host, not the code. Both counts go into the JSON and the printout.

Accuracy on the whole test split, from each side's raw outputs (ours: ``raw_score`` and the map; anomalib:
``pred_score`` and ``anomaly_map``, exported without its clamping normalisation): image AUROC, recall at a false
call rate ≤ 5 %, pixel AUROC and AUPRO (``tocoad_edge.eval.metrics``). Maps and masks are compared at
``tocoad-eval``'s resolution (``eval.runner.at_eval_resolution``: the frame shrunk to a longest side ≤ 256, mask
nearest, map bilinear; anomalib's 224 × 224 map is resized bilinearly to that same shape).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

import tocoad_edge
from tocoad_edge.bench.stats import summary
from tocoad_edge.data import evenly_spread, load_dataset, read_image, read_mask
from tocoad_edge.eval.metrics import aupro, auroc, pixel_auroc, recall_at_fpr
from tocoad_edge.eval.runner import at_eval_resolution
from tocoad_edge.runtime import Detector
from tocoad_edge.runtime.options import PRECISIONS, SEARCHES
from tocoad_edge.runtime.threads import blas_info

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from second_core_check import probe, summarise, summary_line  # noqa: E402  (benchmarks/)
from turns import add_block_option, turns  # noqa: E402  (benchmarks/)

MAX_FPR = 0.05


class AnomalibOnnx:
    """anomalib's exported PatchCore in an ORT session: decoded BGR frame → (raw image score, raw map)."""

    def __init__(self, path: Path, threads: int, spin: str):
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        if spin == "off":
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        elif spin == "run":
            opts.add_session_config_entry("session.force_spinning_stop", "1")
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.outputs = ["pred_score", "anomaly_map"]
        self.threads = {"intra_op": threads, "inter_op": 1, "spin_wait": "none (one thread)" if threads == 1
                        else {"off": "off", "run": "during a run, stopped at its end"}.get(spin, "onnxruntime default")}

    def predict(self, bgr: np.ndarray) -> tuple[float, np.ndarray]:
        x = (np.ascontiguousarray(bgr[:, :, ::-1].transpose(2, 0, 1))[None].astype(np.float32) * (1.0 / 255.0))
        score, amap = self.session.run(self.outputs, {self.input_name: x})
        return float(np.ravel(score)[0]), amap[0, 0] if amap.ndim == 4 else amap[0]


def _accuracy(labels: np.ndarray, scores: list[float], masks: list[np.ndarray], maps: list[np.ndarray]) -> dict:
    s = np.asarray(scores, dtype=np.float64)
    recall, _ = recall_at_fpr(labels, s, MAX_FPR)
    return {"image_auroc": round(auroc(labels, s), 4), f"recall_at_fpr_{MAX_FPR}": round(recall, 4),
            "pixel_auroc": round(pixel_auroc(masks, maps), 4), "aupro": round(aupro(masks, maps), 4)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", default="/work/runs/mt_full_bundle")
    p.add_argument("--anomalib", default="/work/runs/anomalib",
                   help="train_export.py's --out folder (anomalib_model.json) or the .onnx itself")
    p.add_argument("--data", default="../shared/data/magnetic_tile_dev")
    p.add_argument("--search", default="refined", choices=SEARCHES)
    p.add_argument("--precision", default="fp32", choices=PRECISIONS)
    p.add_argument("--anomalib-spin", choices=("run", "default", "off"), default="run",
                   help="run: its workers spin during a run and stop at its end, as tocoad-edge's do (neither side "
                        "leaves a worker spinning into the other's timed run); default: ORT's own (keeps spinning "
                        "after a run); off: never spin")
    p.add_argument("--threads", default="1,2",
                   help="thread counts timed in this process, e.g. 1,2 or 2 (one process per count keeps one "
                        "count's thread pools out of the other's timings)")
    add_block_option(p)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--max-images", type=int, default=0, help="0: the whole test split; else spread over it")
    p.add_argument("--json", default="/work/runs/anomalib/bench_vs_anomalib.json")
    p.add_argument("--core-check", type=float, default=10.0,
                   help="seconds of benchmarks/second_core_check.py before and after the timed loop (0: none); "
                        "says whether the machine could run two threads at once while the two-thread rows ran")
    args = p.parse_args()
    THREADS = tuple(int(t) for t in args.threads.split(","))

    src = Path(args.anomalib)
    meta = json.loads((src / "anomalib_model.json").read_text()) if src.is_dir() else {}
    onnx_path = Path(meta["onnx"]) if meta else src
    items = list(load_dataset(args.data, require_test=True).test)
    if args.max_images:
        items = evenly_spread(items, args.max_images)       # a prefix would be good images only
    frames = [read_image(t.path) for t in items]
    labels = np.array([t.label for t in items])
    load_before = os.getloadavg()
    core_check = {"before": summarise(probe(args.bundle, args.core_check))} if args.core_check > 0 else {}

    ours = {th: Detector.open(args.bundle, search=args.search, threads=th, precision=args.precision)
            for th in THREADS}
    theirs = {th: AnomalibOnnx(onnx_path, th, args.anomalib_spin) for th in THREADS}
    runners = [(f"tocoad_{th}t", ours[th].predict) for th in THREADS] + \
              [(f"anomalib_{th}t", theirs[th].predict) for th in THREADS]
    for _, run in runners:
        for f in frames[:args.warmup]:
            run(f)
    times: dict[str, list[float]] = {name: [] for name, _ in runners}
    results: dict[str, list] = {"tocoad": [], "anomalib": []}
    stages: dict[str, dict[str, list[float]]] = {name: {} for name, _ in runners if name.startswith("tocoad")}
    t_start = time.perf_counter()
    for (name, run), turn in turns(runners, len(frames), args.block):
        for i in turn:
            t0 = time.perf_counter()
            res = run(frames[i])
            times[name].append((time.perf_counter() - t0) * 1e3)
            if name in stages:
                for stage, ms in res.timings_ms.items():
                    stages[name].setdefault(stage, []).append(ms)
            if name == f"tocoad_{THREADS[0]}t":
                results["tocoad"].append((res.raw_score, res.anomaly_map))
            elif name == f"anomalib_{THREADS[0]}t":
                results["anomalib"].append(res)
    wall_s = time.perf_counter() - t_start
    if args.core_check > 0:
        core_check["after"] = summarise(probe(args.bundle, args.core_check))
    load_after = os.getloadavg()

    masks_full = [read_mask(t.mask_path, f.shape[:2]) for t, f in zip(items, frames)]
    accuracy = {}
    for side, res in results.items():
        pairs = [at_eval_resolution(amap, m) for (_, amap), m in zip(res, masks_full)]
        accuracy[side] = _accuracy(labels, [s for s, _ in res], [m for _, m in pairs], [a for a, _ in pairs])

    latency = {name: summary(v) for name, v in times.items()}
    rows = []
    for th in THREADS:
        a, b = latency[f"tocoad_{th}t"], latency[f"anomalib_{th}t"]
        a = dict(a, stages_p50_ms={k: round(float(np.median(v)), 2) for k, v in stages[f"tocoad_{th}t"].items()})
        rows.append({"threads": th, "tocoad": a, "anomalib": b,
                     "anomalib_over_tocoad_p50": round(b["p50_ms"] / a["p50_ms"], 2)})
    manifest = ours[THREADS[0]].manifest
    out = {
        "data": str(Path(args.data).resolve()), "images": len(frames), "anomalous": int(labels.sum()),
        "latency": rows, "block": args.block, "accuracy": accuracy,
        "tocoad": {"bundle": str(Path(args.bundle).resolve()), "model_id": manifest.model_id,
                   "search": args.search, "precision": args.precision,
                   "bank": {"entries": manifest.memory_bank.entries, "dim": manifest.memory_bank.dim},
                   "detectors": {th: ours[th].describe() for th in THREADS}},
        "anomalib": {"onnx": str(onnx_path), "model": meta,
                     "sessions": {th: theirs[th].threads for th in THREADS}},
        "load_before": load_before, "load_after": load_after, "cpus": os.cpu_count(), "nice": os.nice(0),
        "wall_s": round(wall_s, 1), "blas": blas_info(), "second_core_check": core_check,
        "versions": {"tocoad_edge": tocoad_edge.__version__, "onnxruntime": ort.__version__,
                     "numpy": np.__version__, "python": platform.python_version()},
    }
    for det in ours.values():
        det.close()

    bank = meta.get("bank", {})
    print(f"{len(frames)} images ({out['anomalous']} defective), tocoad-edge bank {manifest.memory_bank.entries} × "
          f"{manifest.memory_bank.dim} (search {args.search}), anomalib bank {bank.get('entries', '?')} × "
          f"{bank.get('dim', '?')} ({bank.get('kind', '?')}); {args.block} frame(s) per turn; "
          f"load {load_before} -> {load_after}, nice {out['nice']}")
    print("| threads | tocoad-edge p50 / p99 | anomalib ONNX p50 / p99 | anomalib / tocoad-edge (p50) |")
    print("| --- | --- | --- | --- |")
    for r in rows:
        a, b = r["tocoad"], r["anomalib"]
        print(f"| {r['threads']} | {a['p50_ms']:.1f} / {a['p99_ms']:.1f} ms | {b['p50_ms']:.1f} / {b['p99_ms']:.1f} ms "
              f"| {r['anomalib_over_tocoad_p50']}× |")
    for r in rows:
        print(f"tocoad-edge {r['threads']} thread(s), stage p50: " +
              ", ".join(f"{k} {v:.2f} ms" for k, v in r["tocoad"]["stages_p50_ms"].items()))
    for when, c in core_check.items():
        print(f"second core {when}: {summary_line(c)}")
    keys = list(accuracy["tocoad"])
    print("\n| | " + " | ".join(keys) + " |")
    print("| --- " * (len(keys) + 1) + "|")
    for side, acc in accuracy.items():
        print(f"| {side} | " + " | ".join(f"{acc[k]:.4f}" for k in keys) + " |")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2, default=str) + "\n")
        print(f"\nJSON: {args.json}")


if __name__ == "__main__":
    main()
