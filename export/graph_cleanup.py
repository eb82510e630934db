"""ONNX graph clean-up with onnx-graphsurgeon: fold constants, drop unused nodes and identities, check."""
from __future__ import annotations

from pathlib import Path

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
    cleaned = gs.export_onnx(graph)
    cleaned.opset_import[0].version = model.opset_import[0].version
    cleaned.ir_version = model.ir_version
    cleaned.producer_name = "tocoad-edge"
    try:
        onnx.checker.check_model(cleaned, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError("the cleaned ONNX graph fails onnx.checker", got=str(exc).splitlines()[0]) from None
    onnx.save(cleaned, str(dst))
    return {"nodes_before": before, "nodes_after": len(cleaned.graph.node)}
