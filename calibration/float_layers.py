"""Which weighted layers stay in float before the accuracy gate's search starts: the *boundary* layers.

* **stem**: a weighted layer whose activation input is computed from a graph input (the normalised image) with no
  other weighted layer on the way. Its input is the one tensor of the network with a per-pixel, per-channel
  range set by the normalisation rather than by training, and with 3 input channels its convolution is a tiny
  share of the compute (on EfficientNet-Lite0 the 3 → 32 stem is ~2 % of the multiply-adds).
* **embedding**: a weighted layer from whose output a graph output is reached with no other weighted layer on the
  way: the layers that write the patch embeddings (on the project's embedders, the local-aggregation
  convolutions that average each feature map). Quantizing their input puts a per-tensor INT8 step straight
  into every embedding coordinate, which the nearest-neighbour distance then sums over all 384 dimensions.

Keeping them in float follows TensorRT's accuracy guidance ("Improving Model Accuracy": run the sensitive layers
at a higher precision; ModelOpt's ONNX PTQ takes the same as ``nodes_to_exclude``); with the FP16 flag TensorRT
runs them in FP16. It is a deliberate difference from ModelOpt's *default* placement, which quantizes both (see
``tests/calibration/test_qdq_placement.py``). ``FLOAT_RULES`` names the choices the export offers.

The default is the stem only. Measured on the default magnetic-tile model (docs/int8_and_tensorrt.md): with one
layer at a time quantized, the stem alone gives 3.9 % embedding error, the aggregation convolutions (then two
dense ones) 0.8 % each, so keeping them float buys nothing; the layers that matter most (the first depthwise
block) are found by the gate's sensitivity pass, not by a rule.
"""
from __future__ import annotations

from collections import deque

from .graph_maps import consumers, producers

FLOAT_RULES = ("stem+embedding", "stem", "embedding", "none")
DEFAULT_FLOAT_RULE = "stem"
SHAPE_OPS = ("Shape", "Size")


def stem_layers(model, layers) -> list[str]:
    """Weighted layers (``qdq.QuantLayer``s) reached from a graph input without passing another weighted layer."""
    weighted = {ly.node for ly in layers}
    readers = consumers(model)
    inits = {i.name for i in model.graph.initializer}
    queue = deque(i.name for i in model.graph.input if i.name not in inits)
    seen = set(queue)
    found: list[str] = []
    while queue:
        for n in readers.get(queue.popleft(), []):
            if n.name in weighted:
                if n.name not in found:
                    found.append(n.name)
                continue                          # a weighted layer ends the walk: what follows is not the stem
            for o in n.output:
                if o not in seen:
                    seen.add(o)
                    queue.append(o)
    return [ly.node for ly in layers if ly.node in found]


def embedding_layers(model, layers) -> list[str]:
    """Weighted layers whose output reaches a graph output without passing another weighted layer."""
    weighted = {ly.node for ly in layers}
    writers = producers(model)
    queue = deque(o.name for o in model.graph.output)
    seen = set(queue)
    found: set[str] = set()
    while queue:
        n = writers.get(queue.popleft())
        if n is None or n.op_type in SHAPE_OPS:       # a shape carries no values of the layer that made it
            continue
        if n.name in weighted:
            found.add(n.name)
            continue
        for t in n.input:
            if t and t not in seen:
                seen.add(t)
                queue.append(t)
    return [ly.node for ly in layers if ly.node in found]


def float_layers(model, layers, rule: str = DEFAULT_FLOAT_RULE) -> dict[str, list[str]]:
    """``{"stem": [...], "embedding": [...]}`` for the parts ``rule`` keeps in float (an empty dict for ``none``)."""
    if rule not in FLOAT_RULES:
        from tocoad_edge.errors import ExportError, did_you_mean

        raise ExportError(f"unknown INT8 float-layer rule '{rule}'{did_you_mean(rule, FLOAT_RULES)}",
                          expected=f"one of {list(FLOAT_RULES)}", got=rule,
                          fix=f"use --int8-float {'|'.join(FLOAT_RULES)}")
    parts = {"stem": stem_layers, "embedding": embedding_layers}
    return {part: find(model, layers) for part, find in parts.items() if part in rule.split("+")}
