"""``tocoad-export bundle RUN --out BUNDLE [--int8]`` (workstation) and ``tocoad-export engine BUNDLE`` (on the
device). A thin layer: flags map onto ``ExportOptions`` / ``build_engine_into_bundle`` arguments.

The spellings before the subcommands (``tocoad-export RUN --out B``, ``tocoad-export --engine-only B``) still work
for one release and print how to spell them now.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from tocoad_edge.calibration.float_layers import DEFAULT_FLOAT_RULE, FLOAT_RULES
from tocoad_edge.errors import TocoadError

COMMANDS = ("bundle", "engine")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tocoad-export", description=(
        "bundle: export a training run to a deployable bundle (ONNX with preprocessing and local aggregation in the "
        "graph, optional INT8 Q/DQ model, memory bank, HNSW index, manifest with sha256 of every file, parity "
        "report). engine: build the TensorRT engine for this device into a bundle."))
    sub = p.add_subparsers(dest="command", required=True, metavar="{bundle,engine}")

    b = sub.add_parser("bundle", help="training run → bundle (workstation)")
    b.add_argument("run", help="run folder written by tocoad-train")
    b.add_argument("--out", required=True, help="bundle folder to write")
    b.add_argument("--int8", action="store_true", help="also write an INT8 (Q/DQ) model, calibrated on normal images "
                                                       "and checked by the accuracy gate")
    b.add_argument("--allow-degraded", action="store_true", help="write the INT8 model even if the accuracy gate fails")
    b.add_argument("--calibration-images", type=int, default=256, help="normal images used for INT8 calibration")
    b.add_argument("--calibration-method", default="auto", choices=["auto", "max", "percentile", "entropy"],
                   help="activation range algorithm")
    b.add_argument("--int8-float", default=DEFAULT_FLOAT_RULE, choices=list(FLOAT_RULES),
                   help="layers kept in float (FP16 on TensorRT) in every INT8 configuration: the stem convolution "
                        "that reads the normalised image and/or the layers that write the embeddings "
                        "(default %(default)s; 'none' is ModelOpt's default placement)")
    b.add_argument("--dynamic-batch", action="store_true", help="export with a dynamic batch axis (default: batch 1)")
    b.add_argument("--bank-dtype", default="float16", choices=["float16", "float32"], help=(
        "memory bank storage (widened to float32 once at load; float16 halves coreset.npy and moved exact image "
        "scores by < 1e-3 relative on magnetic tile, docs/performance.md)"))
    b.add_argument("--search-index", default="projected", choices=["projected", "full"], help=(
        "projected (default): hnswlib over a PCA projection of the bank to --search-dims, each query's "
        "--search-candidates neighbours re-ranked in the full dimension (26k x 384 bank: index 7 MB instead of "
        "44 MB, search a few times faster); "
        "full: hnswlib over the bank itself (the only kind before manifest schema 2)"))
    b.add_argument("--search-dims", type=int, default=32, help="projected index: dimensions of the projection")
    b.add_argument("--search-candidates", type=int, default=8,
                   help="projected index: neighbours each patch walks to, re-ranked in the full dimension")
    b.add_argument("--search-lend", type=int, default=2, help=(
        "projected index: of those, the best each patch lends its four grid neighbours, re-ranked there too "
        "(0: none; 16 candidates and 0 was the default before lending, docs/performance.md)"))
    b.add_argument("--with-torch-weights", action="store_true", help=(
        "also ship backbone.safetensors (12 MB for EfficientNet-Lite0), read only by the optional torch backend"))
    b.add_argument("--bank", default="full", help=(
        "memory bank compression: 'full' (default) keeps the trained bank; 'auto' measures smaller coresets "
        "(5/2/1 %% of the training patches), PCA to 256/128/64 dims and float16 against the trained bank on "
        "held-out + synthetic images and keeps the cheapest that passes the gate (Spearman >= 0.99, synthetic "
        "AUROC drop <= 0.5 pt; on magnetic tile its choice still lost 1.1 pt real image AUROC, "
        "docs/performance.md); or one candidate RATIOxDIMSxDTYPE, e.g. 2%%x128xfloat16"))
    b.add_argument("--hnsw-m", type=int, default=16, help="HNSW graph degree M")
    b.add_argument("--hnsw-ef-construction", type=int, default=200, help="HNSW ef_construction")
    b.add_argument("--data", help="labelled test data (MVTec layout) for the parity report's real-data section")
    b.add_argument("--force", action="store_true", help="replace an existing bundle folder")
    b.add_argument("--sign-key", help="Ed25519 private key PEM: sign the manifest (see tocoad-sign)")

    e = sub.add_parser("engine", help="bundle → TensorRT engine for this GPU (on the device)")
    e.add_argument("bundle", help="bundle folder written by 'tocoad-export bundle'")
    e.add_argument("--precision", default="int8", choices=["fp16", "int8"], help="engine precision")
    e.add_argument("--dla-core", type=int, help="not supported yet (refused with the reason): DLA needs a device check")
    e.add_argument("--workspace-mb", type=int, default=1024, help="TensorRT builder workspace limit")
    e.add_argument("--device-key", help="Ed25519 private key PEM of this device: sign the engine record "
                   "(engines.sig), so devices that require signed bundles use the engine (engine_public_key)")
    e.add_argument("--no-search-engine", dest="search_engine", action="store_false",
                   help="skip the FP16 memory-bank search engine (search='graph' then runs on ONNX Runtime)")
    return p


def modernise_argv(argv: list[str]) -> tuple[list[str], str | None]:
    """Old spellings → (new argv, the notice to print); new spellings pass through with no notice."""
    if not argv or argv[0] in COMMANDS or argv[0] in ("-h", "--help"):
        return argv, None
    if "--engine-only" in argv:
        i = argv.index("--engine-only")
        if i + 1 >= len(argv):
            return argv, None                     # let argparse say what is missing
        bundle = argv[i + 1]
        rest = argv[:i] + argv[i + 2:]
        new = ["engine", bundle, *rest]
    else:
        new = ["bundle", *argv]
    return new, ("tocoad-export: note: this spelling is deprecated and will be removed in the next release; "
                 "spell it: tocoad-export " + " ".join(new))


def main(argv: list[str] | None = None) -> int:
    argv, notice = modernise_argv(list(sys.argv[1:] if argv is None else argv))
    if notice:
        print(notice, file=sys.stderr)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        return _engine(args) if args.command == "engine" else _bundle(args)
    except TocoadError as exc:
        print(f"tocoad-export: error: {exc}", file=sys.stderr)
        return 2


def _engine(args: argparse.Namespace) -> int:
    from tocoad_edge.runtime.backends.trt.build import build_engine_into_bundle

    path = build_engine_into_bundle(Path(args.bundle), precision=args.precision, dla_core=args.dla_core,
                                    workspace_mb=args.workspace_mb, device_key=args.device_key,
                                    search_engine=args.search_engine)
    print(f"engine written: {path}" + (" (and the memory-bank search engine)" if args.search_engine else ""))
    return 0


def _bank_option(text: str) -> str:
    """Checked here so a typo fails before the export's slow steps."""
    from .bank_compression import parse_bank_option

    parse_bank_option(text)
    return text


def _positive(value: int, flag: str) -> int:
    if value < 1:
        from tocoad_edge.errors import ConfigError

        raise ConfigError(f"{flag} must be at least 1", expected="an integer >= 1", got=str(value),
                          fix=f"give {flag} a positive number, or leave it at its default")
    return value


def _non_negative(value: int, flag: str) -> int:
    if value < 0:
        from tocoad_edge.errors import ConfigError

        raise ConfigError(f"{flag} must not be negative", expected="an integer >= 0", got=str(value),
                          fix=f"give {flag} 0 or more, or leave it at its default")
    return value


def _bundle(args: argparse.Namespace) -> int:
    from .bundle_writer import ExportOptions, manifest_summary, write_bundle

    candidates = _positive(args.search_candidates, "--search-candidates")
    lend = _non_negative(args.search_lend, "--search-lend")
    if lend > candidates:
        from tocoad_edge.errors import ConfigError

        raise ConfigError("--search-lend is larger than --search-candidates: a patch can only lend rows it found",
                          expected=f"0 .. {candidates}", got=str(lend),
                          fix="lower --search-lend or raise --search-candidates")
    opts = ExportOptions(int8=args.int8, dynamic_batch=args.dynamic_batch, allow_degraded=args.allow_degraded,
                         calibration_images=args.calibration_images, calibration_method=args.calibration_method,
                         int8_float=args.int8_float,
                         hnsw_M=args.hnsw_m, hnsw_ef_construction=args.hnsw_ef_construction,
                         bank_dtype=args.bank_dtype, bank=_bank_option(args.bank),
                         search_index=args.search_index, search_dims=_positive(args.search_dims, "--search-dims"),
                         search_candidates=candidates, search_lend=lend,
                         with_torch_weights=args.with_torch_weights,
                         data_dir=Path(args.data) if args.data else None,
                         force=args.force, sign_key=Path(args.sign_key) if args.sign_key else None)
    out = write_bundle(args.run, args.out, opts)
    print(f"bundle: {out}\n{manifest_summary(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
