"""``PatchEmbedder`` → ONNX (opset 17): uint8 NHWC BGR in, patch embeddings out, preprocessing in the graph."""
from __future__ import annotations

import warnings
from pathlib import Path

import torch

from tocoad_edge.errors import ExportError
from tocoad_edge.models.patch_embedder import PatchEmbedder

INPUT_NAME = "image"
OUTPUT_NAME = "embeddings"
OPSET = 17


def export_onnx(embedder: PatchEmbedder, path: str | Path, image_size: int, *, dynamic_batch: bool = False,
                opset: int = OPSET) -> Path:
    """Write the ONNX model (fixed batch 1, or a dynamic batch axis) and clean the graph up."""
    from .graph_cleanup import cleanup_onnx

    path = Path(path)
    tmp = path.with_name(path.name + ".raw")
    dummy = torch.zeros((1, image_size, image_size, 3), dtype=torch.uint8)
    dynamic_axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
    embedder = embedder.eval()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(embedder, (dummy,), str(tmp), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              opset_version=opset, dynamic_axes=dynamic_axes, do_constant_folding=True,
                              dynamo=False)
        cleanup_onnx(tmp, path)
    except ExportError:
        raise
    except Exception as exc:  # noqa: BLE001 - torch/onnx raise many types; report them uniformly
        raise ExportError("ONNX export failed", got=f"{type(exc).__name__}: {exc}",
                          fix="check the backbone and layers in the config") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path
