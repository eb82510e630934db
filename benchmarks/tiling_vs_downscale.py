"""Tiling vs the 224 px downscale: the same frozen-backbone model (``--stages baseline``) trained twice per set, once
with frames resized to 224 × 224 and once with ``data.tiling`` (224 px tiles at native resolution), then
``tocoad-eval`` (exact search) and the predict latency of both bundles measured interleaved in one loop.

    python benchmarks/tiling_vs_downscale.py --out /tmp/tiling [--sets magnetic_tile_dev ...] [--data ../shared/data]

Writes OUT/<set>/<mode>/{config.yaml,run/,bundle/,metrics.json,*.out}, OUT/table.json, and prints a Markdown table.
Both modes cap the patches the coreset sees at ``--max-patches`` (default 262,144, about what 334 downscaled
magnetic-tile images give), so both banks have the same size and coreset cost; only the input differs.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_SETS = ("magnetic_tile_dev", "mvtec_hazelnut_reduced", "mvtec_transistor_reduced")
MODES = ("downscale", "tiled")


def config_text(mode: str, overlap: float, scale: float, max_patches: int, threads: int) -> str:
    tiling = f"{{enabled: true, overlap: {overlap}, scale: {scale}}}" if mode == "tiled" else "{enabled: false}"
    return (f"stages: baseline\nseed: 0\nthreads: {threads}\n"
            f"data: {{image_size: 224, tiling: {tiling}}}\n"
            f"memory: {{coreset_ratio: 0.1, max_patches: {max_patches}}}\n")


def run_step(cmd: list[str], log: Path) -> float:
    t0 = time.perf_counter()
    with open(log, "w") as f:
        subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, check=True)
    return time.perf_counter() - t0


def build_and_eval(data: Path, out: Path, mode: str, args: argparse.Namespace) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    cfg = out / "config.yaml"
    cfg.write_text(config_text(mode, args.overlap, args.scale, args.max_patches, args.threads), encoding="utf-8")
    py = sys.executable
    train_s = run_step([py, "-m", "tocoad_edge.cli.train", "--data", str(data), "--out", str(out / "run"),
                        "--config", str(cfg), "--quiet"], out / "train.out")
    export_s = run_step([py, "-m", "tocoad_edge.export.cli", "bundle", str(out / "run"), "--out", str(out / "bundle"),
                         "--force"], out / "export.out")
    run_step([py, "-m", "tocoad_edge.cli.evaluate", str(out / "bundle"), "--data", str(data), "--json",
              str(out / "metrics.json"), "--search", "exact", "--threads", str(args.threads), "--quiet"],
             out / "eval.out")
    m = json.loads((out / "metrics.json").read_text())
    rec = (m.get("line") or {}).get("overall", {}).get("recall_at_fpr", {}).get("0.05", {}) or {}
    return {"image_auroc": m["image_auroc"], "pixel_auroc": m["pixel_auroc"], "aupro": m["aupro"],
            "recall_at_fpr_0.05": rec.get("recall"), "train_s": round(train_s, 1), "export_s": round(export_s, 1),
            "bank_entries": json.loads((out / "bundle" / "manifest.json").read_text())["memory_bank"]["entries"]}


def interleaved_latency(data: Path, bundles: dict[str, Path], images: int, threads: int) -> dict[str, dict]:
    """predict() p50/p99 of each bundle on the same test images, alternating bundles image by image (so machine
    load hits both alike); search 'refined' (the one search: auto picks on these banks), one thread per stage."""
    from tocoad_edge.data import load_dataset, read_image
    from tocoad_edge.runtime import Detector

    paths = [t.path for t in load_dataset(data).test][:images]
    frames = [read_image(p) for p in paths]
    dets = {k: Detector.open(b, search="refined", threads=threads, search_threads=threads) for k, b in bundles.items()}
    lat: dict[str, list[float]] = {k: [] for k in dets}
    try:
        for d in dets.values():
            d.predict(frames[0])                        # warm-up
        for f in frames:
            for k, d in dets.items():
                t0 = time.perf_counter()
                d.predict(f)
                lat[k].append((time.perf_counter() - t0) * 1e3)
    finally:
        for d in dets.values():
            d.close()
    return {k: {"p50_ms": float(np.percentile(v, 50)), "p99_ms": float(np.percentile(v, 99)), "frames": len(v)}
            for k, v in lat.items()}


def fmt(v: float | None, digits: int = 3) -> str:
    return "n/a" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="work folder (runs, bundles, metrics, table.json)")
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    p.add_argument("--sets", nargs="+", default=list(DEFAULT_SETS))
    p.add_argument("--overlap", type=float, default=0.25)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--max-patches", type=int, default=262144)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--latency-images", type=int, default=40)
    p.add_argument("--skip-build", action="store_true", help="reuse OUT's bundles and metrics (latency only)")
    args = p.parse_args(argv)
    out = Path(args.out)
    table: dict[str, dict] = {}
    for name in args.sets:
        data = Path(args.data) / name
        rows = {}
        for mode in MODES:
            o = out / name / mode
            if args.skip_build:
                rows[mode] = json.loads((o / "row.json").read_text())
            else:
                rows[mode] = build_and_eval(data, o, mode, args)
                (o / "row.json").write_text(json.dumps(rows[mode], indent=2))
            print(f"{name} {mode}: {rows[mode]}", flush=True)
        lat = interleaved_latency(data, {m: out / name / m / "bundle" for m in MODES}, args.latency_images,
                                  args.threads)
        for mode in MODES:
            rows[mode]["latency"] = lat[mode]
        table[name] = rows
        (out / "table.json").write_text(json.dumps(table, indent=2))
    print("\n| data | input | image AUROC | pixel AUROC | AUPRO | recall at FPR ≤ 5 % | predict p50 (ms) | bank |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, rows in table.items():
        for mode, r in rows.items():
            label = ("224 downscale" if mode == "downscale"
                     else f"224 tiles (overlap {args.overlap}, scale {args.scale})")
            print(f"| `{name}` | {label} | {fmt(r['image_auroc'])} | {fmt(r['pixel_auroc'])} | {fmt(r['aupro'])} | "
                  f"{fmt(r['recall_at_fpr_0.05'])} | {r['latency']['p50_ms']:.0f} | {r['bank_entries']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
