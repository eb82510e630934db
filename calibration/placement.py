"""Where Q/DQ goes besides the weighted layers: NVIDIA's explicit-quantization placement.

TensorRT's developer guide ("Explicit quantization", Q/DQ placement recommendations) and NVIDIA ModelOpt's ONNX
PTQ (``modelopt.onnx.quantization``, whose placement ``tests/calibration/test_qdq_placement.py`` compares ours
with) quantize:

* the inputs of every weighted layer (``Conv`` / ``MatMul`` / ``Gemm``): ``qdq.find_quantizable_layers``;
* the **residual input of a residual ``Add``**: in ``Conv [→ BN] → Add ← shortcut``, the shortcut gets Q/DQ and
  the convolution's branch does not, so TensorRT fuses the add into the INT8 convolution (its epilogue) instead
  of running it in float with a reformat around it. The convolution's branch is the one on the longer path from
  the two inputs' lowest common ancestor (ModelOpt's ``build_non_residual_input_map``);
* the **input of a pooling op** (``AveragePool`` / ``MaxPool`` / ``GlobalAveragePool``) whose output feeds a
  quantized layer (through copy ops only), so the pool runs in INT8 between two INT8 layers;
* the **input of a ``Resize``** computed from a convolution (the patch embedder's upsampling of the deep
  feature map, after its aggregation convolutions and their ``Add``), so the convolution writes INT8;
* the **data input of a ``Gather``** that reads a tensor already quantized for a weighted layer: ModelOpt inserts
  one Q/DQ pair per tensor, read by all its consumers, so the gather (the patch embedder's channel gathers before
  its aggregation convolutions) moves INT8 data.

Outputs of weighted layers and of BN / ReLU / Clip are not quantized (TensorRT fuses those into the convolution).
Each extra input is *tied* to the weighted layer whose fusion it serves: when the accuracy gate keeps that layer in
float, the extra Q/DQ goes too (a quantized shortcut into a float convolution's add would only add a reformat).

Not reproduced from ModelOpt (performance heuristics that never fire on the project's backbones, which have
≥ 16 channels per convolution except the 3-channel stem ModelOpt allows, and no small MatMul): its exclusion of
small-channel convolutions and of GEMV / small-N/K MatMuls.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from . import graph_maps

POOL_OPS = ("AveragePool", "MaxPool", "GlobalAveragePool")
RESIZE_OPS = ("Resize", "Upsample")
# ops a tensor passes through unchanged in value (ModelOpt's "copy ops"); a pool feeding a quantized layer
# through them is quantized
COPY_OPS = ("Flatten", "Reshape", "Squeeze", "Unsqueeze", "Transpose", "Identity", "Pad")
# ops TensorRT fuses into the preceding convolution (its epilogue) on the way to a residual Add
EPILOGUE_OPS = ("BatchNormalization",)


@dataclass(frozen=True)
class QuantInput:
    node: str            # consumer node name
    index: int           # which of its inputs gets Q/DQ
    tensor: str          # that input's tensor name
    tied_to: str         # the weighted layer (node name) whose precision decides this one's
    reason: str          # "residual_add" | "pool" | "resize" | "gather"


def _ancestor_depths(start, producers) -> dict[str, int]:
    """Node name → distance (in nodes) from ``start`` walking towards the graph inputs."""
    depth = {start.name: 0}
    queue = deque([start])
    while queue:
        n = queue.popleft()
        for t in n.input:
            p = producers.get(t)
            if p is not None and p.name not in depth:
                depth[p.name] = depth[n.name] + 1
                queue.append(p)
    return depth


def _backbone(node, producers, weighted: set[str]):
    """The weighted layer a tensor's producer belongs to (through BN), or None."""
    while node is not None and node.op_type in EPILOGUE_OPS:
        node = producers.get(node.input[0])
    return node.name if node is not None and node.name in weighted else None


def residual_add_inputs(model, weighted: set[str]) -> list[QuantInput]:
    """The shortcut input of every residual ``Add`` whose other input comes from a weighted layer (through BN)."""
    producers = graph_maps.producers(model)
    out = []
    for n in model.graph.node:
        if n.op_type != "Add" or len(n.input) != 2:
            continue
        p0, p1 = producers.get(n.input[0]), producers.get(n.input[1])
        if p0 is None or p1 is None:                # constant or graph input: a bias add, not a residual
            continue
        b0, b1 = _backbone(p0, producers, weighted), _backbone(p1, producers, weighted)
        if b0 is None and b1 is None:
            continue
        d0, d1 = _ancestor_depths(p0, producers), _ancestor_depths(p1, producers)
        common = set(d0) & set(d1)
        if not common:
            continue
        lca = min(common, key=lambda a: (d0[a] + d1[a], a))
        if b0 and b1:
            branch = 0 if d0[lca] > d1[lca] else 1   # the convolution branch is the longer way from the fork
        else:
            branch = 0 if b0 else 1
            if lca == (b0 or b1):                    # the "shortcut" starts at the convolution itself: no residual
                continue
        res = 1 - branch
        out.append(QuantInput(n.name, res, n.input[res], b0 if branch == 0 else b1, "residual_add"))
    return out


def pool_inputs(model, layer_inputs: dict[str, str]) -> list[QuantInput]:
    """Inputs of pooling ops whose output reaches a quantized layer's activation input through copy ops only.
    ``layer_inputs``: activation tensor → weighted layer node name."""
    consumers = graph_maps.consumers(model)

    def reaches(tensor: str, seen: set[str]) -> str | None:
        if tensor in layer_inputs:
            return layer_inputs[tensor]
        for c in consumers.get(tensor, []):
            if c.op_type in COPY_OPS and c.input[0] == tensor and c.output[0] not in seen:
                seen.add(c.output[0])
                hit = reaches(c.output[0], seen)
                if hit:
                    return hit
        return None

    out = []
    for n in model.graph.node:
        if n.op_type in POOL_OPS:
            layer = reaches(n.output[0], set())
            if layer is not None:
                out.append(QuantInput(n.name, 0, n.input[0], layer, "pool"))
    return out


def resize_inputs(model, weighted: set[str]) -> list[QuantInput]:
    """Inputs of ``Resize`` / ``Upsample`` computed from a weighted layer (through BN and ``Add``): ModelOpt's
    "prefer quantized input" ops after a convolution, so the convolution writes INT8 and the resize reads it. Tied
    to the nearest weighted layer upstream."""
    producers = graph_maps.producers(model)
    out = []
    for n in model.graph.node:
        if n.op_type in RESIZE_OPS and n.input[0] in producers:
            layer = _upstream_layer(producers[n.input[0]], producers, weighted)
            if layer is not None:
                out.append(QuantInput(n.name, 0, n.input[0], layer, "resize"))
    return out


def _upstream_layer(node, producers, weighted: set[str]) -> str | None:
    """The first weighted layer reached from ``node`` through BN and ``Add`` only (breadth first), or None."""
    queue = deque([node])
    seen = {node.name}
    while queue:
        n = queue.popleft()
        if n.name in weighted:
            return str(n.name)
        if n.op_type not in (*EPILOGUE_OPS, "Add"):
            continue
        for t in n.input:
            p = producers.get(t)
            if p is not None and p.name not in seen:
                seen.add(p.name)
                queue.append(p)
    return None


def gather_inputs(model, layer_inputs: dict[str, str]) -> list[QuantInput]:
    """Data inputs of ``Gather`` ops reading a weighted layer's activation input (``layer_inputs``: tensor → the
    first weighted layer node reading it), tied to that layer."""
    return [QuantInput(n.name, 0, n.input[0], layer_inputs[n.input[0]], "gather")
            for n in model.graph.node if n.op_type == "Gather" and n.input and n.input[0] in layer_inputs]


def extra_quant_inputs(model, layers) -> list[QuantInput]:
    """Residual-add, pooling, resize and gather inputs to quantize for the weighted ``layers``
    (``qdq.QuantLayer``s)."""
    weighted = {ly.node for ly in layers}
    first_reader: dict[str, str] = {}
    for ly in layers:
        first_reader.setdefault(ly.activation, ly.node)
    return (residual_add_inputs(model, weighted) + pool_inputs(model, {ly.activation: ly.node for ly in layers})
            + resize_inputs(model, weighted) + gather_inputs(model, first_reader))
