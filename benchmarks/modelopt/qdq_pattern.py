"""NVIDIA ModelOpt's ONNX INT8 PTQ on the small residual network of ``tests/int8_helpers.py``: writes the Q/DQ
placement ModelOpt chooses as JSON, the fixture ``tests/calibration/test_qdq_placement.py`` compares our writer against.

Runs only in the ModelOpt environment (``benchmarks/modelopt/requirements.txt``); CI reads the committed JSON.

    .venv-modelopt/bin/python benchmarks/modelopt/qdq_pattern.py \
        --out tests/calibration/fixtures/modelopt_qdq_pattern.json

The calibration data are 16 fixed random images (seed 0); placement does not depend on them, only the scales do.
ModelOpt is asked for INT8, ``max`` calibration on the CPU execution provider and float32 for the non-quantized
parts (``high_precision_dtype="fp32"``), so the pattern is that of the Q/DQ placement alone.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from int8_helpers import qdq_pattern, residual_model  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--keep-onnx", help="also save ModelOpt's Q/DQ model here")
    ap.add_argument("--onnx", help="quantize this model instead (the project's backbone export: uint8 NHWC 'image' "
                                   "input; 8 random images of its size calibrate)")
    ap.add_argument("--onnx-desc", default="", help="what --onnx is, for the JSON")
    args = ap.parse_args(argv)
    import onnx
    from modelopt.onnx.quantization import quantize

    size = 16
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "residual.onnx", Path(tmp) / "residual.quant.onnx"
        if args.onnx:
            model = onnx.load(args.onnx)
            shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
            calib = {"image": np.random.default_rng(0).integers(0, 256, [8] + shape[1:], dtype=np.uint8)}
            onnx.save(model, str(src))
        else:
            calib = {"input": np.random.default_rng(0).uniform(-1, 1, (16, 3, size, size)).astype(np.float32)}
            onnx.save(residual_model(size=size), str(src))
        quantize(str(src), quantize_mode="int8", calibration_data=calib, calibration_method="max",
                 calibration_eps=["cpu"], high_precision_dtype="fp32", output_path=str(dst), log_level="WARNING")
        q = onnx.load(str(dst))
        if args.keep_onnx:
            onnx.save(q, args.keep_onnx)
    pattern = qdq_pattern(q)
    pattern["made_by"] = {
        "tool": f"nvidia-modelopt {version('nvidia-modelopt')} modelopt.onnx.quantization.quantize",
        "arguments": "quantize_mode='int8', calibration_method='max', calibration_eps=['cpu'], "
                     "high_precision_dtype='fp32'",
        "network": args.onnx_desc if args.onnx else "tests/int8_helpers.py residual_model(size=16)",
        "environment": f"onnx {version('onnx')}, onnxruntime {version('onnxruntime')} (CPU), "
                       "benchmarks/modelopt/requirements.txt",
        "command": "python benchmarks/modelopt/qdq_pattern.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "ops_in_output": sorted({n.op_type for n in q.graph.node}),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(pattern, indent=1) + "\n")
    print(json.dumps(pattern, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
