"""Where a bundle's INT8 error comes from: each quantizable layer quantized *alone* (everything else float), the
relative error of the patch embeddings on held-out normal images, with the calibrated range of its input.

    python benchmarks/int8_layer_sensitivity.py RUN BUNDLE [--method entropy] [--calibration-images 64]
                                                [--images 6] [--json OUT.json]

RUN is the training run folder (its held-out and training images are read back from run.json), BUNDLE a bundle
exported from it (only its FP32 ``backbone.onnx`` is used). Prints one line per layer, most harmful first, and
the error of every layer INT8 per range method; ONNX Runtime CPU (the emulation of Q/DQ the gate measures).
No test labels are read.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    import onnx

    from tocoad_edge.calibration.gate import relative_error
    from tocoad_edge.calibration.pipeline import OrtRunner, _histograms, activation_scales
    from tocoad_edge.calibration.qdq import build_qdq_model, find_quantizable_layers
    from tocoad_edge.calibration.ranges import METHODS
    from tocoad_edge.data.run_images import calibration_images, holdout_images

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run")
    p.add_argument("bundle")
    p.add_argument("--method", default="entropy", choices=METHODS)
    p.add_argument("--calibration-images", type=int, default=64)
    p.add_argument("--images", type=int, default=6, help="held-out normal images the error is measured on")
    p.add_argument("--json", help="also write the result here")
    a = p.parse_args()

    meta = json.loads((Path(a.run) / "run.json").read_text())
    size = int(meta["image_size"])
    fp32_path = Path(a.bundle) / "backbone.onnx"
    fp32 = onnx.load(str(fp32_path))
    layers = find_quantizable_layers(fp32)
    names = frozenset(ly.node for ly in layers)
    hists = _histograms(fp32, layers, calibration_images(meta, size, a.calibration_images, seed=0), None, fp32_path)
    normals = holdout_images(meta, size, limit=a.images)
    runner = OrtRunner()
    ref = runner.embeddings(fp32, normals)

    def error(scales, keep) -> float:
        return round(relative_error(ref, runner.embeddings(build_qdq_model(fp32, scales, keep, layers), normals)), 4)

    all_int8 = {m: error(activation_scales(hists, m), frozenset()) for m in METHODS}
    scales = activation_scales(hists, a.method)
    per_layer = [{"layer": ly.node, "error_alone_int8": error(scales, names - {ly.node}),
                  "input_absmax": round(hists[ly.activation].absmax, 3),
                  "input_amax": round(scales[ly.activation] * 127, 3)} for ly in layers]
    per_layer.sort(key=lambda r: -r["error_alone_int8"])
    result = {"bundle": str(a.bundle), "method": a.method, "images": len(normals),
              "all_layers_int8_error": all_int8, "layers": per_layer}
    for r in per_layer:
        print(f"{r['error_alone_int8']:.4f}  {r['layer']}  (|x| max {r['input_absmax']}, amax {r['input_amax']})")
    print(json.dumps({"all_layers_int8_error": all_int8}))
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
