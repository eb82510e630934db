"""Does the normal-quantile policy keep its promise on real images?

Scores the normal test images (``DIR/test/good``) and the defective ones once with a bundle, then draws many random
splits of the normal images into a calibration part and an unseen part. On each split the policy chooses the
threshold from the calibration part (target false-call rate α, confidence 1 − δ); the realised false-call rate is
counted on the unseen part, and the recall on every defective image. The promise is about the false-call rate of
the population: on a finite unseen part the realised rate also carries that part's own sampling noise, so the
share of splits over α is compared with δ plus that noise (printed as ``expected_exceed_if_true_rate_were_alpha``).

    python benchmarks/threshold_promise.py BUNDLE --data DIR [--alpha 0.05] [--confidence 0.9] [--splits 400]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tocoad_edge.data import load_dataset, read_image  # noqa: E402
from tocoad_edge.eval.policies import min_normal_images, normal_quantile  # noqa: E402
from tocoad_edge.runtime import Detector  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundle")
    p.add_argument("--data", required=True)
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--confidence", type=float, default=0.9)
    p.add_argument("--splits", type=int, default=400)
    p.add_argument("--calibration-share", type=float, default=0.6)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    items = load_dataset(args.data, require_train=False, require_test=True).test
    with Detector.open(args.bundle, search="exact") as det:
        raw = np.array([det.predict(read_image(t.path)).raw_score for t in items])
    labels = np.array([t.label for t in items])
    good, bad = raw[labels == 0], raw[labels == 1]
    n_cal = int(round(len(good) * args.calibration_share))
    need = min_normal_images(args.alpha, args.confidence)
    if n_cal < need:
        raise SystemExit(f"{n_cal} calibration images cannot support alpha={args.alpha} at {args.confidence}: "
                         f"need {need}")
    rng = np.random.default_rng(args.seed)
    realised, recall = [], []
    for _ in range(args.splits):
        perm = rng.permutation(len(good))
        cal, unseen = good[perm[:n_cal]], good[perm[n_cal:]]
        t = normal_quantile(cal, args.alpha, args.confidence).threshold
        realised.append(float((unseen > t).mean()))
        recall.append(float((bad > t).mean()) if bad.size else float("nan"))
    realised = np.array(realised)
    n_unseen = len(good) - n_cal
    # if the true rate were exactly alpha, how often would a part of n_unseen show more than alpha?
    k = math.floor(args.alpha * n_unseen)
    noise = sum(math.comb(n_unseen, i) * args.alpha ** i * (1 - args.alpha) ** (n_unseen - i)
                for i in range(k + 1, n_unseen + 1))
    out = {"bundle": args.bundle, "data": args.data, "normal_images": len(good), "defective_images": int(bad.size),
           "alpha": args.alpha, "confidence": args.confidence, "splits": args.splits, "calibration_images": n_cal,
           "unseen_images": n_unseen, "share_of_splits_over_alpha": round(float((realised > args.alpha).mean()), 4),
           "delta": round(1 - args.confidence, 4),
           "expected_exceed_if_true_rate_were_alpha": round(noise, 4),
           "realised_false_call_rate_mean": round(float(realised.mean()), 4),
           "realised_false_call_rate_p95": round(float(np.percentile(realised, 95)), 4),
           "recall_mean": round(float(np.nanmean(recall)), 4) if bad.size else None}
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
