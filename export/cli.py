"""``tocoad-export RUN --out BUNDLE [--int8]`` and ``tocoad-export --engine-only BUNDLE``."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from tocoad_edge.errors import TocoadError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tocoad-export", description=(
        "Export a training run to a deployable bundle: ONNX (preprocessing and local aggregation in the graph), "
        "optional INT8 Q/DQ model, memory bank, HNSW index, manifest with sha256 of every file, parity report."))
    p.add_argument("run", nargs="?", help="run folder written by tocoad-train")
    p.add_argument("--out", help="bundle folder to write")
    p.add_argument("--int8", action="store_true", help="also write an INT8 (Q/DQ) model, calibrated on normal images "
                                                       "and checked by the accuracy gate")
    p.add_argument("--allow-degraded", action="store_true", help="write the INT8 model even if the accuracy gate fails")
    p.add_argument("--calibration-images", type=int, default=256, help="normal images used for INT8 calibration")
    p.add_argument("--calibration-method", default="auto", choices=["auto", "max", "percentile", "entropy"],
                   help="activation range algorithm")
    p.add_argument("--dynamic-batch", action="store_true", help="export with a dynamic batch axis (default: batch 1)")
    p.add_argument("--bank-dtype", default="float32", choices=["float32", "float16"], help="memory bank storage")
    p.add_argument("--hnsw-m", type=int, default=16, help="HNSW graph degree M")
    p.add_argument("--hnsw-ef-construction", type=int, default=200, help="HNSW ef_construction")
    p.add_argument("--data", help="labelled test data (MVTec layout) for the parity report's real-data section")
    p.add_argument("--engine-only", metavar="BUNDLE", help="build the TensorRT engine for this device into BUNDLE")
    p.add_argument("--precision", default="int8", choices=["fp16", "int8"], help="engine precision (--engine-only)")
    p.add_argument("--dla-core", type=int, help="build for this DLA core, GPU fallback on (--engine-only, Jetson)")
    p.add_argument("--workspace-mb", type=int, default=1024, help="TensorRT builder workspace limit (--engine-only)")
    p.add_argument("--force", action="store_true", help="replace an existing bundle folder")
    p.add_argument("--sign-key", help="Ed25519 private key PEM: sign the manifest (see tocoad-sign)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        if args.engine_only:
            from tocoad_edge.runtime.backends.trt.build import build_engine_into_bundle

            path = build_engine_into_bundle(Path(args.engine_only), precision=args.precision,
                                            dla_core=args.dla_core, workspace_mb=args.workspace_mb)
            print(f"engine written: {path}")
            return 0
        if not args.run or not args.out:
            build_parser().error("RUN and --out are required (or --engine-only BUNDLE)")
        from .bundle_writer import ExportOptions, manifest_summary, write_bundle

        opts = ExportOptions(int8=args.int8, dynamic_batch=args.dynamic_batch, allow_degraded=args.allow_degraded,
                             calibration_images=args.calibration_images, calibration_method=args.calibration_method,
                             hnsw_M=args.hnsw_m, hnsw_ef_construction=args.hnsw_ef_construction,
                             bank_dtype=args.bank_dtype, data_dir=Path(args.data) if args.data else None,
                             force=args.force, sign_key=Path(args.sign_key) if args.sign_key else None)
        out = write_bundle(args.run, args.out, opts)
        print(f"bundle: {out}\n{manifest_summary(out)}")
        return 0
    except TocoadError as exc:
        print(f"tocoad-export: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
