"""``tocoad-eval BUNDLE --data DIR --json OUT.json [--report DIR] [--precision fp32|int8] [--backend ...]``."""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path

from ..errors import TocoadError
from ..runtime.options import PRECISIONS, SEARCHES


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tocoad-eval", description=(
        "Evaluate a bundle on labelled test images (MVTec AD layout: DIR/test/good, DIR/test/<defect>, "
        "DIR/ground_truth/<defect>/<name>_mask.png; a set without ground_truth/ gives image metrics only). "
        "Writes image AUROC, pixel AUROC, AUPRO (FPR <= 0.3), F1-max and, overall and per defect type, "
        "recall at FPR <= 1/2/5/10 %, FPR at recall >= 90/95/99 % and the counts at the bundle's threshold and "
        "review band (README: tocoad-eval JSON)."))
    p.add_argument("bundle", help="bundle folder written by tocoad-export")
    p.add_argument("--data", required=True, help="dataset folder with test/ (and ground_truth/)")
    p.add_argument("--json", required=True, help="write the metrics here")
    p.add_argument("--report", help="folder for ROC curves, score histograms per defect type and heat-map overlays "
                                    "(PNG)")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS, help="which model of the bundle")
    p.add_argument("--backend", default="auto", choices=["auto", "onnxrt", "tensorrt", "torch"],
                   help="inference backend")
    p.add_argument("--search", default="auto", choices=SEARCHES,
                   help="nearest-neighbour search (refined: HNSW map, exact image score)")
    p.add_argument("--threads", type=int, help="CPU threads for the backend")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _fmt(v: float) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"


def line_summary(line: dict) -> list[str]:
    """The overall operating points and the counts at the bundle's thresholds, as a line engineer reads them."""
    if not line:
        return []
    o = line["overall"]
    pct = lambda v: "n/a" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    rec = ", ".join(f"{pct(float(k))}: {pct(v['recall'])}" for k, v in o["recall_at_fpr"].items())
    fpr = ", ".join(f"{pct(float(k))}: {pct(v['fpr'])}" for k, v in o["fpr_at_recall"].items())
    c = o["at_bundle_threshold"]
    band = (f"review band above {line['review_threshold']:.4g}: {c['defective_review']} defective and "
            f"{c['good_review']} good parts to REVIEW" if line["review_threshold"] is not None else "no review band")
    return [f"recall at FPR <= {rec}", f"FPR at recall >= {fpr}",
            f"at the bundle's threshold {line['image_threshold']:.4g}: {c['escapes']} escapes of {o['defective']} "
            f"defective, {c['false_calls']} false calls of {o['good']} good; {band}"]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        from tqdm import tqdm

        from ..data import load_dataset
        from ..eval.report import write_report
        from ..eval.runner import evaluate
        from ..runtime import Detector

        ds = load_dataset(args.data, require_train=False, require_test=True)
        with Detector.open(args.bundle, backend=args.backend, precision=args.precision, search=args.search,
                           threads=args.threads) as det:
            with tqdm(total=len(ds.test), desc="evaluate", disable=args.quiet, leave=False) as bar:
                res, masks, maps = evaluate(det, ds, progress=bar.update)
            out = res.to_json() | {"bundle": str(args.bundle), "model_id": det.model_id, "precision": args.precision,
                                   "backend": det.backend.name, "search": det.search.name, "data": str(args.data)}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        if args.report:
            files = write_report(args.report, ds, res, masks, maps)
            print(f"report: {len(files)} PNG files in {args.report}")
        print(f"image AUROC {_fmt(res.image_auroc)}  pixel AUROC {_fmt(res.pixel_auroc)}  AUPRO {_fmt(res.aupro)}  "
              f"F1-max {_fmt(res.f1_max)}  ({res.images} images, {res.anomalous} anomalous; "
              f"p50 {res.latency_ms_p50:.1f} ms)")
        if res.pixel_metrics != "present":
            print(f"pixel metrics: {res.pixel_metrics}")
        for line in line_summary(res.line):
            print(line)
        return 0
    except TocoadError as exc:
        print(f"tocoad-eval: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
