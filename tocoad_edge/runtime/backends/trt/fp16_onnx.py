"""FP32 or Q/DQ ONNX → FP16 ONNX for strongly typed TensorRT (≥ 11), where the FP16 builder flag no longer exists
and every float layer runs in the type the ONNX gives it.

The conversion is ``onnxconverter-common``'s ``convert_float_to_float16`` (the tool NVIDIA's TensorRT 11 migration
notes point to besides ModelOpt AutoCast), with

* ``keep_io_types``: the engine's interface does not change (uint8 image in, float32 embeddings out);
* its default op block list (``Resize`` and friends stay float32 behind casts);
* every ``Cast`` *to* float32 blocked: the converter does not rewrite a cast's target type, so the uint8 → float
  cast stays float32 and a cast to float16 follows it (unblocked, ONNX Runtime refuses the model);
* for a Q/DQ model, opset raised to 19 first (``onnx.version_converter``): from 19 on ``QuantizeLinear`` /
  ``DequantizeLinear`` take float16 scales, so the scales become float16 and no cast sits between a
  ``DequantizeLinear`` and its convolution, the form TensorRT fuses into INT8 kernels (ModelOpt writes the same).
"""
from __future__ import annotations

from typing import Any

QDQ_MIN_OPSET = 19


def convert_to_fp16(model: Any) -> Any:     # onnx.ModelProto in and out (onnx is untyped)
    import onnx
    from onnx import TensorProto, version_converter
    from onnxconverter_common import float16

    has_qdq = any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if has_qdq and opset < QDQ_MIN_OPSET:
        model = version_converter.convert_version(model, QDQ_MIN_OPSET)
    casts = [n.name for n in model.graph.node if n.op_type == "Cast"
             and any(a.name == "to" and a.i == TensorProto.FLOAT for a in n.attribute)]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")        # it warns about every value clipped to the float16 range
        out = float16.convert_float_to_float16(model, keep_io_types=True, op_block_list=float16.DEFAULT_OP_BLOCK_LIST,
                                               node_block_list=casts)
    onnx.checker.check_model(out)
    return out
