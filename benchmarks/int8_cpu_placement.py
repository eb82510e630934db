"""Why the bundle's INT8 model is slower than FP32 on ONNX Runtime's CPU provider, VNNI or not: its Q/DQ placement.

    python benchmarks/int8_cpu_placement.py BUNDLE --data ../shared/data/magnetic_tile_dev [--calibration 64]
                                            [--frames 30] [--json OUT.json]

The bundle's INT8 model places Q/DQ the way TensorRT fuses it (on the inputs of each weighted layer, not on its
output: docs/int8_and_tensorrt.md). ONNX Runtime's CPU provider turns a ``DequantizeLinear → Conv →
QuantizeLinear`` group into an int8 ``QLinearConv``; without the output ``QuantizeLinear`` it runs the convolution
in float on dequantized inputs, and every ``DequantizeLinear`` is extra work. For comparison this script quantizes
the bundle's FP32 model with ONNX Runtime's own tool (``quantize_static``, QDQ format, per-channel s8 weights, u8
activations, MinMax ranges from ``--calibration`` training images), keeping in float the layers the export kept
in float (the manifest's ``calibration.layers_float``). Per model: one-thread p50 of the backbone on ``--frames``
test images (all models in turn on each frame), the embeddings' relative error against FP32 (the measure the
export's INT8 gate bounds), and the node types in ONNX Runtime's optimized graph (how many convolutions became int8
kernels). No test label is read.

Not part of the product: the export ships only the TensorRT placement, and the runtime uses FP32 on x86.
"""
from __future__ import annotations

import argparse
import collections
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def optimized_op_counts(ort, path: str, folder: Path) -> dict[str, int]:
    """Node types of ONNX Runtime's optimized graph of ``path`` (CPU provider, all graph optimizations)."""
    import onnx

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3         # its warning that an optimized graph is specific to this CPU: we only count
    opts.optimized_model_filepath = str(folder / f"{Path(path).stem}.optimized.onnx")
    ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    return dict(collections.Counter(n.op_type for n in onnx.load(opts.optimized_model_filepath).graph.node))


def main() -> None:
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from tocoad_edge.calibration.gate import relative_error
    from tocoad_edge.data import load_dataset, read_image
    from tocoad_edge.runtime.backends.onnxrt import session_options
    from tocoad_edge.runtime.frames import to_bgr_frame, to_model_input

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("bundle")
    p.add_argument("--data", required=True)
    p.add_argument("--calibration", type=int, default=64, help="training images for ONNX Runtime's ranges")
    p.add_argument("--frames", type=int, default=30)
    p.add_argument("--json", default=None)
    a = p.parse_args()

    bundle = Path(a.bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    if "int8" not in manifest["models"]:
        raise SystemExit(f"{bundle} has no INT8 model: export it with --int8")
    keep_float = manifest["calibration"]["layers_float"]          # what the export kept in float
    height, width = manifest["input"]["height"], manifest["input"]["width"]
    fp32, int8 = (str(bundle / manifest["models"][k]["file"]) for k in ("fp32", "int8"))
    ds = load_dataset(a.data, require_test=True)

    def model_input(path: Path) -> np.ndarray:
        return to_model_input(to_bgr_frame(read_image(path)), height, width)

    calibration = [model_input(path) for path in ds.train[:a.calibration]]
    step = max(1, len(ds.test) // a.frames)
    frames = [model_input(item.path) for item in ds.test[::step][:a.frames]]
    input_name = ort.InferenceSession(fp32, providers=["CPUExecutionProvider"]).get_inputs()[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(calibration)

        def get_next(self):
            x = next(self._it, None)
            return None if x is None else {input_name: x}

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ortq = str(folder / "backbone.ortq.onnx")
        quantize_static(fp32, ortq, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=keep_float)
        paths = {"fp32": fp32, "int8 (bundle, TensorRT placement)": int8,
                 "int8 (ONNX Runtime placement)": ortq}
        sessions = {k: ort.InferenceSession(v, session_options(ort, 1), providers=["CPUExecutionProvider"])
                    for k, v in paths.items()}
        ops = {k: optimized_op_counts(ort, v, folder) for k, v in paths.items()}
        times: dict[str, list[float]] = {k: [] for k in paths}
        errors: dict[str, list[float]] = {k: [] for k in paths}
        for x in frames[:3]:                                            # warm-up
            for s in sessions.values():
                s.run(None, {input_name: x})
        for x in frames:
            outs = {}
            for k, s in sessions.items():
                t0 = time.perf_counter()
                outs[k] = s.run(None, {input_name: x})[0]
                times[k].append((time.perf_counter() - t0) * 1e3)
            for k in paths:
                errors[k].append(relative_error(outs["fp32"], outs[k]))

    print(f"{len(frames)} frames, 1 thread, float layers kept: {len(keep_float)} ({', '.join(keep_float)})")
    print("| model | p50 ms | / FP32 | embedding error vs FP32 | int8 convolutions | float convolutions | "
          "DequantizeLinear |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    rows = []
    base = float(np.median(times["fp32"]))
    for k in paths:
        o = ops[k]
        row = {"model": k, "p50_ms": round(float(np.median(times[k])), 2),
               "ratio": round(float(np.median(times[k])) / base, 3), "error": round(float(np.mean(errors[k])), 4),
               "int8_convs": o.get("QLinearConv", 0) + o.get("ConvInteger", 0),
               "float_convs": o.get("Conv", 0) + o.get("FusedConv", 0) + o.get("NhwcFusedConv", 0),
               "dequantize": o.get("DequantizeLinear", 0), "ops": o}
        rows.append(row)
        print(f"| {k} | {row['p50_ms']} | {row['ratio']} | {100 * row['error']:.1f} % | {row['int8_convs']} | "
              f"{row['float_convs']} | {row['dequantize']} |")
    if a.json:
        Path(a.json).write_text(json.dumps({"bundle": str(bundle), "frames": len(frames), "float_layers": keep_float,
                                            "onnxruntime": ort.__version__, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
