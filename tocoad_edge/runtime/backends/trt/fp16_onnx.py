"""FP32 ONNX → FP16 ONNX for strongly typed TensorRT (≥ 11), where the FP16 builder flag no longer exists.

The uint8 input keeps its type; the first ``Cast`` to float becomes a cast to float16; float initializers and
``Constant`` tensors become float16, except the ``scales`` / ``roi`` inputs of ``Resize`` (float32 by the ONNX
spec); the output is cast back to float32, so the engine's interface does not change.
"""
from __future__ import annotations

from typing import Any

import numpy as np

_KEEP_FLOAT_INPUTS = {"Resize": (1, 2)}


def convert_to_fp16(model: Any) -> Any:     # onnx.ModelProto in and out (onnx is untyped)
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    keep = {n.input[i] for n in g.node for i in _KEEP_FLOAT_INPUTS.get(n.op_type, ()) if i < len(n.input)}
    for i, init in enumerate(g.initializer):
        if init.data_type == TensorProto.FLOAT and init.name not in keep:
            g.initializer[i].CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16),
                                                              init.name))
    for n in g.node:
        if n.op_type == "Cast":
            for a in n.attribute:
                if a.name == "to" and a.i == TensorProto.FLOAT:
                    a.i = TensorProto.FLOAT16
        elif n.op_type == "Constant" and n.output[0] not in keep:
            for a in n.attribute:
                if a.name == "value" and a.t.data_type == TensorProto.FLOAT:
                    a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float16), a.t.name))
    del g.value_info[:]
    for o in g.output:
        if o.type.tensor_type.elem_type == TensorProto.FLOAT:
            half = o.name + "_fp16"
            for n in g.node:
                for k, name in enumerate(n.output):
                    if name == o.name:
                        n.output[k] = half
            g.node.append(helper.make_node("Cast", [half], [o.name], to=TensorProto.FLOAT, name=o.name + "_to_fp32"))
    return out
