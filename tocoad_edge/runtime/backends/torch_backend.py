"""Torch backend: runs the bundle's PatchEmbedder from its safetensors weights (CPU or CUDA).

For workstations with a GPU and for reference measurements. Imports torch and ``tocoad_edge.models`` only
here, when chosen; the ONNX Runtime and TensorRT paths never load this module.
"""
from __future__ import annotations

import numpy as np

from ...errors import BackendUnavailableError, BundleError
from .base import Backend, TensorSpec

WEIGHTS_NAME = "backbone.safetensors"


class TorchBackend(Backend):
    name = "torch"

    def _load_impl(self) -> None:
        try:
            import torch
            from safetensors.torch import load_file
        except ImportError as exc:
            raise BackendUnavailableError("the torch backend needs torch and safetensors", got=str(exc),
                                          fix='pip install "torch==2.13.0" safetensors, or use backend="onnxrt"'
                                          ) from None
        from ...models.backbones import build_backbone
        from ...models.patch_embedder import PatchEmbedder

        manifest = self.options.get("manifest")
        if manifest is None:
            raise BundleError("the torch backend needs the bundle manifest")
        weights = self.model_path.parent / WEIGHTS_NAME
        if WEIGHTS_NAME not in manifest.files:
            raise BundleError(f"this bundle has no {WEIGHTS_NAME} (only the torch backend reads it; exports leave "
                              "it out unless asked)", expected=f"{WEIGHTS_NAME} listed in the manifest",
                              got="not in the bundle",
                              fix='re-export with --with-torch-weights (tocoad-export bundle), or use backend="onnxrt"')
        f = manifest.features
        backbone = build_backbone(f.backbone,
                                  weights=None if f.backbone.startswith("efficientnet_lite") else str(weights))
        backbone.load_state_dict(load_file(str(weights)), strict=True)
        backbone.tone_reference = f.tone_reference
        projection = None
        if f.projection != "none":
            raise BundleError("the torch backend does not rebuild in-graph projections yet",
                              got=f"projection {f.projection}", fix='use backend="onnxrt"')
        device = self.options.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
        if self.threads and device == "cpu":
            torch.set_num_threads(int(self.threads))
        self._torch = torch
        self._device = torch.device(device)
        self._model = PatchEmbedder(backbone, list(f.layers), f.aggregation, projection,
                                    aggregation_mode=f.aggregation_mode,
                                    aggregation_dim=f.aggregation_dim or None).eval().to(self._device)
        self._input = TensorSpec("image", (1, manifest.input.height, manifest.input.width, 3), "uint8")

    def _input_spec_impl(self) -> TensorSpec:
        return self._input

    def _output_names_impl(self) -> list[str]:
        return ["embeddings"]

    def _infer_impl(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        with self._torch.inference_mode():
            out = self._model(self._torch.from_numpy(batch).to(self._device))
        return {"embeddings": out.float().cpu().numpy()}

    def _close_impl(self) -> None:
        self._model = None
