"""Write the explicit-quantization (Q/DQ) ONNX model, the form TensorRT's explicit INT8 consumes and ONNX Runtime
runs on a CPU.

For every quantized layer (``Conv``, or ``MatMul`` / ``Gemm`` with a constant weight):

* activation input (per tensor, symmetric, zero point 0):  ``x → QuantizeLinear(s) → DequantizeLinear(s) → layer``;
  one pair per tensor, shared by every quantized consumer of that tensor;
* weight (per output channel, symmetric, zero point 0): stored as an INT8 initializer followed by a
  ``DequantizeLinear(axis = output channel)``, so the file holds INT8 weights (about a quarter of FP32);
* bias stays float (TensorRT quantizes it itself; ONNX Runtime then runs DQ → float Conv, numerically the same).

Besides the weighted layers, the shortcut input of each residual ``Add``, the input of pooling ops between
quantized layers and the input of a ``Resize`` fed by a convolution get a Q/DQ pair too (``placement.py``:
NVIDIA's placement, as ModelOpt's ONNX PTQ writes it).

Layers named in ``keep_float`` are left untouched (the accuracy gate's per-layer precision decisions), and so are
the residual / pooling / resize inputs tied to them.
Signed INT8 with zero point 0 only: TensorRT rejects other zero points and unsigned types.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

QUANTIZABLE_OPS = ("Conv", "MatMul", "Gemm")
QMAX = 127


@dataclass(frozen=True)
class QuantLayer:
    node: str                # node name
    op: str
    activation: str          # name of the activation input tensor
    weight: str              # name of the weight initializer
    weight_axis: int         # output-channel axis of the weight


def find_quantizable_layers(model) -> list[QuantLayer]:
    """Layers with a float activation input and a constant float weight, in graph order."""
    import onnx

    inits = {i.name: i for i in model.graph.initializer}
    layers = []
    for n in model.graph.node:
        if n.op_type not in QUANTIZABLE_OPS or len(n.input) < 2:
            continue
        act, w = n.input[0], n.input[1]
        if w not in inits or act in inits or inits[w].data_type != onnx.TensorProto.FLOAT:
            continue
        if n.op_type == "Conv":
            axis = 0
        elif n.op_type == "MatMul":
            if len(inits[w].dims) != 2:
                continue
            axis = 1
        else:  # Gemm: Y = A · B' (+C); output channel is axis 0 of B when transB, else axis 1
            attrs = {a.name: a for a in n.attribute}
            if "transA" in attrs and attrs["transA"].i:
                continue
            axis = 0 if ("transB" in attrs and attrs["transB"].i) else 1
        layers.append(QuantLayer(n.name, n.op_type, act, w, axis))
    return layers


def quantized_inputs(model, layers: list[QuantLayer], keep_float: set[str] | frozenset = frozenset()
                     ) -> list[tuple[str, int, str]]:
    """(consumer node, input index, tensor) of every activation input that gets Q/DQ: the weighted layers' inputs,
    then the residual-add / pool / resize inputs tied to layers not kept in float (``placement.py``)."""
    from .placement import extra_quant_inputs

    acts = [(ly.node, 0, ly.activation) for ly in layers if ly.node not in keep_float]
    return acts + [(q.node, q.index, q.tensor) for q in extra_quant_inputs(model, layers)
                   if q.tied_to not in keep_float]


def quantized_tensors(model, layers: list[QuantLayer], keep_float: set[str] | frozenset = frozenset()) -> list[str]:
    """The activation tensors that get Q/DQ once ``keep_float`` layers stay float (what the calibration cache lists);
    with nothing kept float, every tensor that needs a calibrated scale."""
    return list(dict.fromkeys(t for _, _, t in quantized_inputs(model, layers, keep_float)))


def activation_tensors(model, layers: list[QuantLayer]) -> list[str]:
    """Every activation tensor the Q/DQ model may quantize (each needs a calibrated scale), in graph order."""
    return quantized_tensors(model, layers)


def quantize_weight_per_channel(w: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-channel INT8: returns (int8 weights, float32 scales [channels])."""
    moved = np.moveaxis(w.astype(np.float32), axis, 0).reshape(w.shape[axis], -1)
    amax = np.abs(moved).max(axis=1)
    scale = (np.maximum(amax, 1e-12) / QMAX).astype(np.float32)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.rint(w / scale.reshape(shape)), -QMAX, QMAX).astype(np.int8)
    return q, scale


def quantize_tensor(x: np.ndarray, scale: float) -> np.ndarray:
    """Fake-quantize an activation as TensorRT / ONNX Runtime do (round half to even, saturate to [-128, 127])."""
    return (np.clip(np.rint(x / scale), -128, 127) * scale).astype(np.float32)


def build_qdq_model(model, activation_scales: dict[str, float], keep_float: set[str] | frozenset = frozenset(),
                    layers: list[QuantLayer] | None = None):
    """Return a new ModelProto with Q/DQ inserted (``model`` is not modified)."""
    import onnx
    from onnx import helper, numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    layers = find_quantizable_layers(model) if layers is None else layers
    chosen = [ly for ly in layers if ly.node not in keep_float]
    inits = {i.name: i for i in g.initializer}

    new_inits: list = []
    weight_nodes: list = []
    weight_map: dict[str, str] = {}
    for ly in chosen:
        if ly.weight in weight_map:
            continue
        w = numpy_helper.to_array(inits[ly.weight])
        q, scale = quantize_weight_per_channel(w, ly.weight_axis)
        qn, sn, zn, dq = (f"{ly.weight}_int8", f"{ly.weight}_scale", f"{ly.weight}_zero_point",
                          f"{ly.weight}_dequantized")
        new_inits += [numpy_helper.from_array(q, qn), numpy_helper.from_array(scale, sn),
                      numpy_helper.from_array(np.zeros(scale.shape, np.int8), zn)]
        weight_nodes.append(helper.make_node("DequantizeLinear", [qn, sn, zn], [dq], name=f"{ly.weight}_DQ",
                                             axis=ly.weight_axis))
        weight_map[ly.weight] = dq

    act_inputs = quantized_inputs(model, layers, keep_float)
    act_map: dict[str, str] = {}
    act_nodes: dict[str, list] = {}
    for node, _, a in act_inputs:
        if a in act_map:
            continue
        if a not in activation_scales:
            raise KeyError(f"no calibrated scale for activation tensor {a!r} (layer {node})")
        sn, zn, qn, dqn = f"{a}_act_scale", f"{a}_act_zero_point", f"{a}_quantized", f"{a}_dequantized"
        new_inits += [numpy_helper.from_array(np.array(activation_scales[a], np.float32), sn),
                      numpy_helper.from_array(np.array(0, np.int8), zn)]
        act_nodes[a] = [helper.make_node("QuantizeLinear", [a, sn, zn], [qn], name=f"{a}_Q"),
                        helper.make_node("DequantizeLinear", [qn, sn, zn], [dqn], name=f"{a}_DQ")]
        act_map[a] = dqn

    chosen_names = {ly.node for ly in chosen}
    inputs_of: dict[str, list[int]] = {}
    for node, index, _ in act_inputs:
        inputs_of.setdefault(node, []).append(index)
    nodes = list(weight_nodes)
    emitted: set[str] = set()
    for n in g.node:
        for index in inputs_of.get(n.name, ()):
            a = n.input[index]
            if a not in emitted:              # Q/DQ right before the tensor's first quantized consumer
                nodes += act_nodes[a]
                emitted.add(a)
            n.input[index] = act_map[a]
        if n.name in chosen_names:
            n.input[1] = weight_map[n.input[1]]
        nodes.append(n)
    del g.node[:]
    g.node.extend(nodes)
    # float weights that only quantized layers used are dropped, so the file holds INT8 weights only
    still_used = {i for n in g.node for i in n.input}
    kept = [i for i in g.initializer if i.name in still_used]
    del g.initializer[:]
    g.initializer.extend(kept + new_inits)
    out.producer_name = "tocoad-edge calibration"
    return out


def describe_qdq(model) -> dict[str, int]:
    """Counts used by tests and the manifest: Q nodes, DQ nodes, INT8 weight initializers."""
    import onnx

    ops = [n.op_type for n in model.graph.node]
    dq_data = {n.input[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    return {"quantize_linear": ops.count("QuantizeLinear"), "dequantize_linear": ops.count("DequantizeLinear"),
            "int8_weights": sum(1 for i in model.graph.initializer if i.data_type == onnx.TensorProto.INT8
                                and i.name in dq_data)}
