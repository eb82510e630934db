"""ONNX graph clean-up with onnx-graphsurgeon: fold constants, drop unused nodes and identities, fold zero Pads into
the convolutions they feed, check.

Why the Pad fold: EfficientNet-Lite's TensorFlow "same" padding exports as a ``Pad`` before each strided and
5 × 5 convolution. ONNX Runtime's CPU convolutions run in a blocked channel layout (NCHWc) and a ``Pad`` does not,
so every ``Pad`` costs the pad itself plus a layout conversion out and back in: on the Lite0 backbone those were
a quarter of a frame's backbone time. A ``Conv``'s own ``pads`` attribute (asymmetric begin/end allowed) does the
same zero padding, so the output is bit-identical; TensorRT's ONNX parser maps it to pre/post padding."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from tocoad_edge.errors import ExportError


def cleanup_onnx(src: str | Path, dst: str | Path) -> dict[str, int]:
    """Fold constants, remove Identity and dead nodes, topologically sort, run ``onnx.checker``.

    Returns node counts before and after.
    """
    import onnx
    import onnx_graphsurgeon as gs

    model = onnx.load(str(src))
    before = len(model.graph.node)
    graph = gs.import_onnx(model)
    for node in [n for n in graph.nodes if n.op == "Identity"]:
        inp, out = node.inputs[0], node.outputs[0]
        for consumer in list(out.outputs):
            for i, t in enumerate(consumer.inputs):
                if t is out:
                    consumer.inputs[i] = inp
        if out in graph.outputs:
            continue
        node.outputs.clear()
    graph.cleanup().toposort()
    graph.fold_constants().cleanup().toposort()
    folded = fold_pads_into_convs(graph)
    graph.cleanup().toposort()
    cleaned = gs.export_onnx(graph)
    cleaned.opset_import[0].version = model.opset_import[0].version
    cleaned.ir_version = model.ir_version
    cleaned.producer_name = "tocoad-edge"
    try:
        onnx.checker.check_model(cleaned, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError("the cleaned ONNX graph fails onnx.checker", got=str(exc).splitlines()[0]) from None
    onnx.save(cleaned, str(dst))
    return {"nodes_before": before, "nodes_after": len(cleaned.graph.node), "pads_folded": folded}


def _str_attr(node: Any, name: str, default: str) -> str:
    """A string attribute of an onnx-graphsurgeon node (ONNX stores them as bytes)."""
    value = node.attrs.get(name, default)
    return value.decode() if isinstance(value, bytes) else str(value)


def _absent(tensor: object) -> bool:
    return tensor is None or getattr(tensor, "name", "") == ""


def fold_pads_into_convs(graph: object) -> int:
    """Fold each constant-zero ``Pad`` of the spatial axes whose only consumer is a ``Conv`` (as its data input)
    into that ``Conv``'s ``pads``; returns how many were folded. Anything else (reflect/edge modes, a non-zero
    value, padded batch or channel axes, pads computed at run time, a ``Pad`` output used elsewhere, ``auto_pad``
    convolutions) is left as it is."""
    import numpy as np
    import onnx_graphsurgeon as gs

    assert isinstance(graph, gs.Graph)
    folded = 0
    for pad in [n for n in graph.nodes if n.op == "Pad"]:
        if _str_attr(pad, "mode", "constant") != "constant" or len(pad.inputs) < 2:
            continue
        pads_in = pad.inputs[1]
        if not isinstance(pads_in, gs.Constant):
            continue
        if len(pad.inputs) > 2 and not _absent(pad.inputs[2]):                  # constant_value
            value = pad.inputs[2]
            if not isinstance(value, gs.Constant) or np.any(np.asarray(value.values) != 0):
                continue
        if len(pad.inputs) > 3 and not _absent(pad.inputs[3]):                  # axes (opset 18)
            continue
        out = pad.outputs[0]
        if len(out.outputs) != 1 or out in graph.outputs:
            continue
        conv = out.outputs[0]
        if conv.op != "Conv" or conv.inputs[0] is not out or _str_attr(conv, "auto_pad", "NOTSET") != "NOTSET":
            continue
        p = [int(v) for v in np.asarray(pads_in.values).ravel()]
        rank = len(p) // 2
        spatial = rank - 2
        if spatial < 1 or any(p[i] for i in (0, 1, rank, rank + 1)) or any(v < 0 for v in p):
            continue
        current = [int(v) for v in conv.attrs.get("pads", [0] * (2 * spatial))]
        conv.attrs["pads"] = [current[i] + p[2 + i] for i in range(spatial)] + \
                             [current[spatial + i] + p[rank + 2 + i] for i in range(spatial)]
        conv.inputs[0] = pad.inputs[0]
        pad.outputs.clear()
        folded += 1
    return folded
