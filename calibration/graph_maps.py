"""Who writes and who reads each tensor of an ONNX graph: the two maps the Q/DQ placement rules walk."""
from __future__ import annotations

from typing import Any


def producers(model: Any) -> dict[str, Any]:
    """Tensor name → the node that writes it."""
    return {o: n for n in model.graph.node for o in n.output}


def consumers(model: Any) -> dict[str, list[Any]]:
    """Tensor name → the nodes that read it, in graph order."""
    out: dict[str, list[Any]] = {}
    for n in model.graph.node:
        for t in n.input:
            out.setdefault(t, []).append(n)
    return out
