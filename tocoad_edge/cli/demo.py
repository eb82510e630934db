"""``tocoad-demo [--out DIR]``: the whole job end to end on a generated sample dataset.

generate data → tocoad-train → tocoad-export bundle --int8 → tocoad-eval (FP32 and INT8) → stream a video of the test
images through the detector (overlay video + one JSON line per frame). The data is SYNTHETIC (see
``tocoad_edge/synth/sample_set.py``); its figures say nothing about real parts.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tocoad-demo", description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    p.add_argument("--out", default="demo", help="folder for data, run, bundle, reports (default: ./demo)")
    p.add_argument("--stages", default=None, choices=["baseline", "no-guide", "full"],
                   help="training stages (default: the config default)")
    p.add_argument("--image-size", type=int, default=224, help="model input size")
    p.add_argument("--no-int8", action="store_true", help="skip the INT8 model")
    return p


def _step(name: str) -> float:
    print(f"\n== {name}", flush=True)
    return time.perf_counter()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from ..synth.sample_set import make_sample_dataset

    t = _step("generate a synthetic sample dataset")
    data = make_sample_dataset(out / "data", n_train=60, n_test_good=12, n_test_defect=6, size=256, seed=0)
    print(f"   {data} ({time.perf_counter() - t:.1f} s)")

    cfg_path = out / "config.yaml"
    cfg_path.write_text(f"data: {{image_size: {args.image_size}}}\n", encoding="utf-8")
    from .train import main as train_main

    t = _step("tocoad-train")
    targs = ["--data", str(data), "--out", str(out / "run"), "--config", str(cfg_path)]
    if args.stages:
        targs += ["--stages", args.stages]
    if train_main(targs) != 0:
        return 2
    print(f"   {time.perf_counter() - t:.1f} s")

    from ..export.cli import main as export_main

    t = _step("tocoad-export bundle" + ("" if args.no_int8 else " --int8"))
    eargs = ["bundle", str(out / "run"), "--out", str(out / "bundle"), "--force"] + ([] if args.no_int8 else ["--int8"])
    if export_main(eargs) != 0:
        return 2
    print(f"   {time.perf_counter() - t:.1f} s")

    from .evaluate import main as eval_main

    precisions = ["fp32"] if args.no_int8 else ["fp32", "int8"]
    for precision in precisions:
        t = _step(f"tocoad-eval --precision {precision}")
        if eval_main([str(out / "bundle"), "--data", str(data), "--json", str(out / f"eval_{precision}.json"),
                      "--report", str(out / f"report_{precision}"), "--precision", precision, "--quiet"]) != 0:
            return 2

    t = _step("stream: a video of the test images through the detector")
    from ..stream.demo_video import make_test_video, stream_video

    video = make_test_video(data, out / "test_images.avi")      # lossless: the frames the evaluation scored
    summary = stream_video(out / "bundle", video, out / "overlay.mp4", out / "results.jsonl")
    print(f"   {json.dumps(summary)} ({time.perf_counter() - t:.1f} s)")
    print(f"\nDone. Look at {out / 'report_fp32'} (ROC curves, heat maps) and {out / 'overlay.mp4'}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
