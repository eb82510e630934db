"""``tocoad-threshold BUNDLE --data DIR --policy normal-quantile|labelled --target-fpr A [--review-fpr B]
[--image-score max|smoothed-max]``.

Scores the images with the bundle, chooses the thresholds by the policy (``eval/policies.py``) and rewrites only
the decision section of the manifest (``bundle/decision.py``). A running detector takes it with
``Detector.reload_decision()``; ``--dry-run`` only prints what it would write.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import DataError, TocoadError
from ..bundle.manifest import IMAGE_SCORES
from ..runtime.options import PRECISIONS, SEARCHES


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tocoad-threshold", description=(
        "Choose a bundle's OK/NG threshold (and an optional REVIEW band below it) from images of your line, and "
        "write it into the bundle's manifest. normal-quantile: normal images only, with a finite-sample promise on "
        "the false-call rate. labelled: good and defective images, the highest recall at the false-call rate."))
    p.add_argument("bundle", help="bundle folder written by 'tocoad-export bundle'")
    p.add_argument("--data", required=True, help="MVTec-layout folder (test/good, test/<defect>) or, for "
                                                 "normal-quantile, a plain folder of normal images")
    p.add_argument("--policy", required=True, choices=["normal-quantile", "labelled"])
    p.add_argument("--target-fpr", type=float, required=True, help="false-call rate for NG, e.g. 0.01")
    p.add_argument("--confidence", type=float, default=0.95,
                   help="normal-quantile: the promise holds with this probability; labelled: recall interval level")
    # --review-band: the name the review band goes by in the docs and in issue #15's command line
    p.add_argument("--review-fpr", "--review-band", dest="review_fpr", type=float, metavar="REVIEW_FPR",
                   help="add a REVIEW band: parts above the threshold for this (higher) false-call rate and not NG "
                        "go to REVIEW (--review-band is the same option)")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS)
    p.add_argument("--backend", default="auto")
    p.add_argument("--search", default="exact", choices=SEARCHES,
                   help="exact by default: thresholds are set on exact image scores")
    p.add_argument("--image-score", choices=IMAGE_SCORES,
                   help="score images this way from now on (default: as the bundle does), e.g. smoothed-max for a "
                        "bundle exported before it was the default; the thresholds are set on it")
    p.add_argument("--sign-key", help="Ed25519 private key PEM: re-sign a signed bundle after the change")
    p.add_argument("--drop-signature", action="store_true", help="remove the signature of a signed bundle instead")
    p.add_argument("--dry-run", action="store_true", help="print the decision, change nothing")
    p.add_argument("--json", help="also write the decision record here")
    return p


def _images(data: Path, policy: str) -> tuple[list[Path], np.ndarray, str]:
    """(paths, labels 0/1, how they were found)."""
    from ..data import IMAGE_EXTENSIONS, load_dataset

    if (data / "test").is_dir():
        ds = load_dataset(data, require_train=False, require_test=True)
        items = ds.test if policy == "labelled" else [t for t in ds.test if t.label == 0]
        return [t.path for t in items], np.array([t.label for t in items], dtype=int), f"{data}/test"
    if policy == "labelled":
        raise DataError(f"{data} has no test/ folder", expected="test/good and test/<defect> for --policy labelled",
                        got="a plain folder", fix="arrange the images in the MVTec layout (README: Your own data)")
    paths = sorted(p for p in data.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS) if data.is_dir() else []
    if not paths:
        raise DataError(f"no images in {data}", expected=f"image files ({', '.join(IMAGE_EXTENSIONS)})",
                        got="none", fix="give the folder of normal images collected on the line")
    return paths, np.zeros(len(paths), dtype=int), str(data)


def _scores(args: argparse.Namespace, paths: list[Path]) -> tuple[np.ndarray, str]:
    """The raw scores of ``paths``, and the image score they are (``--image-score`` or the bundle's)."""
    from ..data import read_image
    from ..runtime import Detector

    with Detector.open(args.bundle, backend=args.backend, precision=args.precision, search=args.search) as det:
        if args.image_score:            # score as the rewritten manifest will: only the scoring section changes
            det.manifest = dataclasses.replace(det.manifest, scoring=dataclasses.replace(
                det.manifest.scoring, image_score=args.image_score))
        scores = np.array([det.predict(read_image(p)).raw_score for p in paths], dtype=np.float64)
        return scores, det.manifest.scoring.image_score


def choose(policy: str, labels: np.ndarray, scores: np.ndarray, target_fpr: float, confidence: float,
           review_fpr: float | None) -> tuple[dict, float, float | None]:
    """(decision record, image threshold, review threshold) for ``policy``."""
    from ..eval import policies

    def pick(fpr: float) -> policies.ThresholdChoice:
        if policy == "labelled":
            return policies.labelled(labels, scores, fpr, confidence)
        return policies.normal_quantile(scores[labels == 0], fpr, confidence)

    if review_fpr is not None and not review_fpr > target_fpr:
        raise DataError("the review false-call rate must be above the NG target", expected=f"> {target_fpr}",
                        got=str(review_fpr), fix="e.g. --target-fpr 0.01 --review-fpr 0.05")
    ng = pick(target_fpr)
    review = pick(review_fpr) if review_fpr is not None else None
    review_threshold = review.threshold if review is not None and review.threshold < ng.threshold else None
    record = {"policy": policy, "ng": ng.to_json(), **({"review": review.to_json()} if review else {}),
              "review_threshold": review_threshold}
    return record, ng.threshold, review_threshold


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        paths, labels, source = _images(Path(args.data), args.policy)
        scores, image_score = _scores(args, paths)
        record, ng_t, review_t = choose(args.policy, labels, scores, args.target_fpr, args.confidence,
                                        args.review_fpr)
        record |= {"data": source, "images": len(paths), "precision": args.precision, "search": args.search,
                   "image_score": image_score,
                   "written_by": f"tocoad-threshold {__version__}", "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        print(json.dumps(record, indent=2))
        if args.json:
            Path(args.json).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        if args.dry_run:
            print("dry run: the bundle is unchanged")
            return 0
        from ..bundle.decision import write_decision

        write_decision(args.bundle, ng_t, review_t, record, sign_key=Path(args.sign_key) if args.sign_key else None,
                       drop_signature=args.drop_signature, image_score=args.image_score)
        print(f"decision written to {Path(args.bundle) / 'manifest.json'}; a running detector takes it with "
              f"Detector.reload_decision()")
        return 0
    except TocoadError as exc:
        print(f"tocoad-threshold: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
