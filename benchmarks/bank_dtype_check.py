"""Effect of storing the memory bank in float16 on exact image scores, on real frames.

    python benchmarks/bank_dtype_check.py BUNDLE --data ../shared/data/magnetic_tile_dev [--frames 60]

BUNDLE must hold a float32 bank (``--bank-dtype float32``; a float16 bank has nothing to compare with and is
refused). Its FP32 model embeds ``--frames`` test images (spread over the test set); exact search scores them against
BUNDLE's bank as float32 and as float16 widened back (what a default export stores and the runtime loads).
Prints Spearman of the two score lists, the largest absolute and relative score difference and both image
AUROCs (JSON).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from tocoad_edge.data import evenly_spread, load_dataset, read_image
from tocoad_edge.eval.metrics import auroc, spearman
from tocoad_edge.runtime import Detector
from tocoad_edge.runtime.search.exact import ExactSearch


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("bundle")
    p.add_argument("--data", required=True)
    p.add_argument("--frames", type=int, default=60)
    args = p.parse_args()
    items = list(load_dataset(args.data, require_test=True).test)
    items = evenly_spread(items, args.frames)
    det = Detector.open(args.bundle, search="exact", threads=1)
    dim = det.manifest.memory_bank.dim
    patches = np.stack([np.asarray(det.embed(read_image(t.path))[0]).reshape(-1, dim) for t in items])
    det.close()
    stored = np.load(Path(args.bundle) / "coreset.npy", allow_pickle=False)
    if stored.dtype != np.float32:
        raise SystemExit(f"{args.bundle}: coreset.npy is {stored.dtype}, so there is no float32 bank to compare "
                         "with; export the bundle with --bank-dtype float32")
    bank = stored
    s32 = ExactSearch(bank).image_scores(patches)
    s16 = ExactSearch(bank.astype(np.float16).astype(np.float32)).image_scores(patches)
    labels = np.array([t.label for t in items])
    print(json.dumps({"frames": len(items), "spearman": round(spearman(s32, s16), 6),
                      "max_abs_diff": float(np.max(np.abs(s32 - s16))),
                      "max_rel_diff": float(np.max(np.abs(s32 - s16) / s32)),
                      "auroc_float32": auroc(labels, s32), "auroc_float16": auroc(labels, s16)}, indent=2))


if __name__ == "__main__":
    main()
