"""``tocoad-train --data DIR --out RUN [--config FILE.yaml] [--stages baseline|no-guide|full]
[--select [--candidates FILE.yaml]]``."""
from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace

from ..errors import TocoadError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tocoad-train", description=(
        "Train a ToCoAD detector on normal images (MVTec AD layout: DIR/train/good). Writes a run folder "
        "(weights, memory bank, resolved config, log) for tocoad-export."))
    p.add_argument("--data", required=True, help="dataset folder with train/good (MVTec AD layout)")
    p.add_argument("--out", required=True, help="run folder to write")
    p.add_argument("--config", help="YAML config (see docs/config.md); flags below override it")
    p.add_argument("--stages", choices=["baseline", "no-guide", "full"],
                   help="baseline: frozen ImageNet backbone; no-guide: contrastive fine-tuning without the "
                        "negative guide; full: the ToCoAD method")
    p.add_argument("--seed", type=int, help="random seed (default from config: 0)")
    p.add_argument("--coreset-ratio", type=float, help="fraction of patches kept in the memory bank")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--textures", help="folder of texture images (e.g. DTD) for the anomaly generator")
    p.add_argument("--select", action="store_true",
                   help="model selection: train each candidate (default: baseline and full) without a held-out "
                        "share of the normal images, score them on G's synthetic anomalies over those, keep the "
                        "baseline unless a candidate beats it by the margin, then train the pick "
                        "(docs/model_selection.md)")
    p.add_argument("--candidates", help="YAML candidates file for --select (named config overrides, margin, ...)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        import yaml

        from ..train.config import config_to_dict, load_train_config
        from ..train.trainer import train

        _check_select_flags(args)
        cfg = load_train_config(args.config)
        if args.stages:
            cfg = replace(cfg, stages=args.stages)
        if args.seed is not None:
            cfg = replace(cfg, seed=args.seed)
        if args.threads is not None:
            cfg = replace(cfg, threads=args.threads)
        if args.coreset_ratio is not None:
            cfg = replace(cfg, memory=replace(cfg.memory, coreset_ratio=args.coreset_ratio))
        if args.textures is not None:
            cfg = apply_textures(cfg, args.textures)
        if args.print_config:
            print(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
            return 0
        if args.select:
            from ..train.selection.config import load_select_config
            from ..train.selection.runner import run_selection

            run = run_selection(args.data, args.out, cfg, load_select_config(args.candidates),
                                show_progress=not args.quiet)
            print(f"selection: {run / 'select' / 'report.md'}")
        else:
            run = train(args.data, args.out, cfg, show_progress=not args.quiet)
        print(f"run folder: {run}")
        return 0
    except TocoadError as exc:
        print(f"tocoad-train: error: {exc}", file=sys.stderr)
        return 2


def _check_select_flags(args: argparse.Namespace) -> None:
    from ..errors import ConfigError

    if args.candidates and not args.select:
        raise ConfigError("--candidates needs --select", fix="add --select, or drop --candidates")
    if args.select and args.stages:
        raise ConfigError("--stages and --select exclude each other: the candidates set the stages",
                          got=f"--stages {args.stages}",
                          fix="drop --stages, or list the stages you want compared as candidates (--candidates)")


def apply_textures(cfg, textures: str):
    """Point the anomaly generator at a texture folder (needs the ToCoAD ``synth`` config section)."""
    from ..errors import ConfigError

    synth = getattr(cfg, "synth", None)
    if synth is None or not hasattr(synth, "textures"):
        raise ConfigError("--textures needs the ToCoAD anomaly generator, which this build does not have")
    return replace(cfg, synth=replace(synth, textures=textures))


if __name__ == "__main__":
    sys.exit(main())
