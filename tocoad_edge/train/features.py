"""Patch embeddings of many images through a ``PatchEmbedder`` (batched, no gradients)."""
from __future__ import annotations

import numpy as np
import torch

from ..models.patch_embedder import PatchEmbedder


@torch.no_grad()
def embed_images(embedder: PatchEmbedder, images: np.ndarray, batch_size: int = 16,
                 progress=None) -> np.ndarray:
    """uint8 ``[N, H, W, 3]`` BGR → float32 ``[N, h·w, D]``."""
    embedder.eval()
    outs = []
    for s in range(0, len(images), batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(images[s:s + batch_size]))
        outs.append(embedder(batch).numpy())
        if progress is not None:
            progress(len(batch))
    return np.concatenate(outs, axis=0).astype(np.float32, copy=False)
