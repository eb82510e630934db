"""The reference pipeline: how PatchCore implementations run today. torch FP32 backbone (the bundle's
feature model rebuilt in torch with the same weights), exact nearest neighbour with ``torch.cdist`` on
the same memory bank, then the same scoring as the runtime.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..bundle.manifest import Manifest
from ..errors import BundleError
from ..runtime.frames import to_bgr_frame, to_model_input
from ..runtime.scoring import anomaly_map, image_score, score_kernel
from ..runtime.tiling import cut_tiles, tile_layout, tiled_anomaly_map


def build_reference_embedder(manifest: Manifest, run_dir: str | Path | None):
    """``PatchEmbedder`` with the bundle's weights: from the training run if given (exactly as trained),
    otherwise rebuilt from the backbone registry (valid for baseline runs, whose backbone is frozen)."""
    from ..train.embedder_factory import embedder_from_run, make_embedder

    f = manifest.features
    if run_dir is not None:
        return embedder_from_run(run_dir)[0], f"run {run_dir}"
    stages = (manifest.training or {}).get("stages")
    if f.projection != "none" or (stages not in (None, "baseline")):
        raise BundleError("the reference needs the training run's weights for this bundle",
                          expected="a baseline run without projection, or --run RUN",
                          got=f"stages={stages}, projection={f.projection}",
                          fix="pass --run with the tocoad-train folder the bundle was exported from")
    from ..train.config import BackboneConfig, DataConfig, FeatureConfig, TrainConfig

    tone = DataConfig(tone="none" if f.tone_reference is None else "standardize", tone_reference=f.tone_reference)
    cfg = TrainConfig(data=tone, backbone=BackboneConfig(name=f.backbone, layers=tuple(f.layers)),
                      features=FeatureConfig(aggregation=f.aggregation, aggregation_mode=f.aggregation_mode,
                                             aggregation_dim=f.aggregation_dim or FeatureConfig.aggregation_dim))
    return make_embedder(cfg), "backbone registry (frozen baseline weights)"


class ReferencePipeline:
    def __init__(self, manifest: Manifest, bank: np.ndarray, run_dir=None, threads: int | None = None):
        import torch

        if threads:
            torch.set_num_threads(int(threads))
        self.torch = torch
        self.manifest = manifest
        self.embedder, self.weights_source = build_reference_embedder(manifest, run_dir)
        self.embedder.eval()
        self.bank = torch.from_numpy(np.ascontiguousarray(bank, dtype=np.float32))
        self.input_hw = (manifest.input.height, manifest.input.width)
        sc = manifest.scoring
        self.score_kernel = score_kernel(sc.image_score, sc.gaussian_sigma, manifest.features.stride)

    def _model_input(self, bgr: np.ndarray) -> np.ndarray:
        """The frame resized to the input, or a tiled bundle's tiles of it (as ``Detector.embed``)."""
        tiling = self.manifest.input.tiling
        if tiling is None:
            return to_model_input(bgr, *self.input_hw)
        return cut_tiles(bgr, tile_layout(bgr.shape[:2], self.input_hw, tiling))

    def _map(self, dist: np.ndarray, bgr: np.ndarray) -> np.ndarray:
        sc, grid, tiling = self.manifest.scoring, tuple(self.manifest.features.grid), self.manifest.input.tiling
        if tiling is None:
            return anomaly_map(dist, grid, self.input_hw, sc.gaussian_sigma, bgr.shape[:2])
        return tiled_anomaly_map(dist, grid, tile_layout(bgr.shape[:2], self.input_hw, tiling), sc.gaussian_sigma)

    def embed(self, frame: np.ndarray) -> np.ndarray:
        """Patch embeddings ``[tiles · h · w, D]`` (one tile when untiled), like ``Detector.embed``."""
        with self.torch.no_grad():
            batch = self.torch.from_numpy(np.ascontiguousarray(self._model_input(to_bgr_frame(frame))))
            out = self.embedder(batch).numpy()
            return out.reshape(-1, out.shape[-1])

    def predict(self, frame: np.ndarray) -> tuple[float, dict[str, float]]:
        torch = self.torch
        t0 = time.perf_counter()
        bgr = to_bgr_frame(frame)
        batch = torch.from_numpy(np.ascontiguousarray(self._model_input(bgr)))
        t1 = time.perf_counter()
        with torch.no_grad():
            emb = self.embedder(batch).flatten(0, 1)
            t2 = time.perf_counter()
            dist = torch.cdist(emb, self.bank).min(dim=1).values.numpy()
        t3 = time.perf_counter()
        h, w = self.manifest.features.grid
        raw = image_score(dist, (-1, h, w), self.score_kernel)        # (tiles, h, w): each tile smoothed apart
        self._map(dist, bgr)
        t4 = time.perf_counter()
        return raw, {"preprocess": (t1 - t0) * 1e3, "backbone": (t2 - t1) * 1e3, "search": (t3 - t2) * 1e3,
                     "postprocess": (t4 - t3) * 1e3}
