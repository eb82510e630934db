"""``tocoad-bench BUNDLE --data DIR --json OUT``: our runtime against the reference PatchCore pipeline.

Measured in one run, on the same images, bank and weights:

- ``ours``: ``Detector.predict`` (ONNX Runtime backbone, ``search`` as chosen, scoring) frame by frame;
- ``reference``: torch FP32 backbone + exact ``torch.cdist`` nearest neighbour + the same scoring;
- ``stream``: ``Detector.predict_stream`` with one thread per stage (overlap of backbone and search).

The two single-frame pipelines run interleaved (ours, reference, ours, ...) so a busy neighbour slows
both alike; the ratio ``speedup_p50`` = reference p50 / ours p50 is the figure to quote. Thread pools
are pinned and recorded; the load average is recorded before and after.
"""
from __future__ import annotations

import argparse
import math
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from ..errors import DataError, TocoadError
from ..runtime.options import PRECISIONS, SEARCHES
from ..runtime.pipeline import DEFAULT_DEPTH

log = logging.getLogger("tocoad_edge.bench")
STAGES = ("preprocess", "backbone", "search", "postprocess")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tocoad-bench", description=(
        "Latency (p50/p99 per stage and end to end), FPS, peak RSS and image AUROC of a bundle, against a "
        "reference PatchCore pipeline (torch FP32 backbone + torch.cdist on the same bank) in the same run."))
    p.add_argument("bundle", help="bundle folder written by tocoad-export")
    p.add_argument("--data", required=True, help="labelled images in the MVTec AD layout (test/good, test/<defect>)")
    p.add_argument("--json", required=True, help="where to write the results")
    p.add_argument("--run", help="training run folder (reference weights exactly as trained; needed for "
                                 "fine-tuned or projected bundles)")
    p.add_argument("--threads", type=int, default=None, help="threads for each pipeline (default: all CPUs)")
    p.add_argument("--search", default="auto", choices=SEARCHES, help="our search")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS)
    p.add_argument("--max-images", type=int, default=None, help="use at most N test images")
    p.add_argument("--warmup", type=int, default=3, help="untimed frames before measuring")
    p.add_argument("--stream-frames", type=int, default=120, help="frames for the streaming measurement (0: skip)")
    p.add_argument("--stream-depth", type=int, default=DEFAULT_DEPTH,
                   help=f"frames in flight between the stages in the streaming measurement (default {DEFAULT_DEPTH}, "
                        "predict_stream's)")
    p.add_argument("--no-reference", action="store_true", help="skip the torch reference")
    return p


def _load_images(data: Path, max_images: int | None) -> tuple[list[np.ndarray], np.ndarray, list[str]]:
    from ..data import evenly_spread, load_dataset, read_image

    ds = load_dataset(data, require_train=False, require_test=True)
    items = list(ds.test)
    if max_images is not None:
        items = evenly_spread(items, max_images)
    if not items:
        raise DataError(f"no test images in {data}", fix="give --data a folder with test/good and test/<defect>")
    return [read_image(t.path) for t in items], np.array([t.label for t in items]), [t.path.name for t in items]


def _stage_summaries(rows: list[dict]) -> dict:
    from .stats import summary

    keys = [k for k in rows[0] if k != "total"] if rows else []
    return {k: summary(r[k] for r in rows) for k in keys}


def _pin_threads(threads: int) -> dict:
    from ..runtime.threads import blas_info, set_blas_threads

    set_blas_threads(threads)
    return {"cpus_available": len(os.sched_getaffinity(0)), "per_pipeline": threads, "blas": blas_info()}


def _stream(bundle: Path, frames: list[np.ndarray], n: int, precision: str, search: str, depth: int) -> dict:
    """predict_stream with one ONNX Runtime thread and one search thread (one core per stage)."""
    from .stats import summary
    from ..runtime import Detector
    from ..runtime.threads import blas_threads

    seq = [frames[i % len(frames)] for i in range(n)]
    with Detector.open(bundle, threads=1, search_threads=1, precision=precision, search=search) as det, \
            blas_threads(1):
        # Stage times in isolation with the same thread plan (the denominator of the efficiency).
        for f in seq[:3]:
            det.predict(f)
        iso_a, iso_b = [], []
        for f in seq[:min(len(seq), 40)]:
            t0 = time.perf_counter()
            emb, hw, tm = det.embed(f)
            t1 = time.perf_counter()
            det.score(emb, hw, tm)
            t2 = time.perf_counter()
            iso_a.append((t1 - t0) * 1e3)
            iso_b.append((t2 - t1) * 1e3)
        list(det.predict_stream(seq[:5], depth=depth))         # warm-up
        preds, done = [], []
        t0 = time.perf_counter()
        for p in det.predict_stream(seq, depth=depth):
            preds.append(p)
            done.append(time.perf_counter())
        wall = time.perf_counter() - t0
        plan = det.describe()
    assert [p.frame_id for p in preds] == list(range(n)), "stream lost or reordered a frame"
    fps = n / wall
    a = [p.timings_ms["preprocess"] + p.timings_ms["backbone"] for p in preds]
    b = [p.timings_ms["search"] + p.timings_ms["postprocess"] for p in preds]
    lat = [p.timings_ms["latency"] for p in preds]
    intervals = np.diff(np.array(done)) * 1e3
    slow_iso = max(np.median(iso_a), np.median(iso_b))
    slow_in = max(np.median(a), np.median(b))
    lat_s, int_s = summary(lat), summary(intervals)
    return {
        "frames": n, "depth": depth, "fps": round(fps, 2),
        "threads": plan["threads"], "search": plan["search"],
        "stage_embed_isolated": summary(iso_a), "stage_score_isolated": summary(iso_b),
        "stage_embed_in_stream": summary(a), "stage_score_in_stream": summary(b),
        "latency": lat_s, "interval": int_s,
        "efficiency_vs_isolated_slowest_stage": round(fps / (1e3 / slow_iso), 3),
        "efficiency_vs_in_stream_slowest_stage": round(fps / (1e3 / slow_in), 3),
        # a serial stage serves at most 1 / (its mean time per frame): the ceiling of any pipeline; the medians
        # above overstate that ceiling when a stage's times are right-skewed (a noisy search on a shared host)
        "efficiency_vs_in_stream_slowest_stage_mean": round(fps / (1e3 / max(np.mean(a), np.mean(b))), 3),
        "latency_p99_over_p50": round(lat_s["p99_ms"] / lat_s["p50_ms"], 3),
        "interval_p99_over_p50": round(int_s["p99_ms"] / int_s["p50_ms"], 3),
    }


def run_bench(args) -> dict:
    from ..eval.metrics import auroc
    from .stats import peak_rss_mb, summary
    from ..runtime import Detector
    from ..runtime.threads import blas_threads, cpu_count

    bundle = Path(args.bundle)
    threads = args.threads or cpu_count()
    out: dict = {"bundle": str(bundle), "data": str(args.data), "load_before": os.getloadavg(),
                 "machine": {"platform": platform.platform(), "processor": platform.processor(),
                             "python": platform.python_version(), "cpu_count": os.cpu_count()}}
    out["threads"] = _pin_threads(threads)
    frames, labels, names = _load_images(Path(args.data), args.max_images)
    out["images"] = {"count": len(frames), "anomalous": int(labels.sum())}

    det = Detector.open(bundle, threads=threads, precision=args.precision, search=args.search)
    out["ours_config"] = det.describe()
    ref = None
    if not args.no_reference:
        for f in frames[:args.warmup]:
            det.predict(f)
        out["peak_rss_mb_ours_only"] = peak_rss_mb()          # before torch is imported
        from .reference import ReferencePipeline

        bank = det.search.bank if hasattr(det.search, "bank") else np.load(
            bundle / det.manifest.memory_bank.file, allow_pickle=False)
        ref = ReferencePipeline(det.manifest, np.asarray(bank, dtype=np.float32), args.run, threads)
        out["reference_config"] = {"backbone": "torch FP32 " + det.manifest.features.backbone,
                                   "weights": ref.weights_source, "search": "torch.cdist exact",
                                   "torch_threads": ref.torch.get_num_threads()}
        e_ours = det.embed(frames[0])[0]
        out["reference_config"]["embedding_max_abs_diff_vs_onnx"] = float(np.abs(ref.embed(frames[0]) - e_ours).max())
    for f in frames[:args.warmup]:
        det.predict(f)
        if ref is not None:
            ref.predict(f)

    ours_rows, ours_e2e, ours_scores = [], [], []
    ref_rows, ref_e2e, ref_scores = [], [], []
    with blas_threads(threads):
        for f in frames:
            t0 = time.perf_counter()
            p = det.predict(f)
            ours_e2e.append((time.perf_counter() - t0) * 1e3)
            ours_rows.append({k: p.timings_ms[k] for k in STAGES})
            ours_scores.append(p.raw_score)
            if ref is not None:
                t0 = time.perf_counter()
                s, tm = ref.predict(f)
                ref_e2e.append((time.perf_counter() - t0) * 1e3)
                ref_rows.append(tm)
                ref_scores.append(s)
    det.close()

    def block(e2e, rows, scores):
        s = summary(e2e)
        a = auroc(labels, scores)
        return {"p50_ms": s["p50_ms"], "p99_ms": s["p99_ms"], "mean_ms": s["mean_ms"],
                "fps": round(1e3 / s["mean_ms"], 2), "stages": _stage_summaries(rows),
                "image_auroc": None if math.isnan(a) else round(a, 4)}

    out["ours"] = block(ours_e2e, ours_rows, ours_scores)
    if ref is not None:
        out["reference"] = block(ref_e2e, ref_rows, ref_scores)
        out["speedup_p50"] = round(out["reference"]["p50_ms"] / out["ours"]["p50_ms"], 2)
        if out["ours"]["image_auroc"] is not None:
            out["auroc_loss_pt"] = round(100 * (out["reference"]["image_auroc"] - out["ours"]["image_auroc"]), 2)
    else:
        out["reference"] = None
        out["speedup_p50"] = None
    if args.stream_frames:
        # the search the single-frame run used (``auto`` would time the candidates again and could pick another)
        kind = out["ours_config"]["search"]["kind"]
        out["stream"] = _stream(bundle, frames, args.stream_frames, args.precision, kind, args.stream_depth)
    out["peak_rss_mb"] = peak_rss_mb()
    out["load_after"] = os.getloadavg()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.stream_depth < 1:
        parser.error(f"--stream-depth: expected an integer >= 1 (frames in flight), got {args.stream_depth}")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        res = run_bench(args)
    except TocoadError as exc:
        print(f"tocoad-bench: error: {exc}", file=sys.stderr)
        return 2
    Path(args.json).write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    o, r = res["ours"], res.get("reference")
    print(f"ours: p50 {o['p50_ms']:.1f} ms, p99 {o['p99_ms']:.1f} ms, {o['fps']:.1f} FPS, AUROC {o['image_auroc']}")
    if r:
        print(f"reference: p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, {r['fps']:.1f} FPS, "
              f"AUROC {r['image_auroc']}; speedup p50 {res['speedup_p50']}x")
    if "stream" in res:
        s = res["stream"]
        print(f"stream: {s['fps']:.1f} FPS, efficiency {s['efficiency_vs_isolated_slowest_stage']} (isolated stages), "
              f"{s['efficiency_vs_in_stream_slowest_stage']} (in-stream stages), "
              f"{s['efficiency_vs_in_stream_slowest_stage_mean']} (in-stream stage means), latency p50 "
              f"{s['latency']['p50_ms']:.0f} ms, p99/p50 {s['latency_p99_over_p50']}")
    print(f"results: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
