"""Optional dimension reduction learnt at training and placed inside the ONNX graph."""
from __future__ import annotations

import numpy as np


def fit_projection(kind: str, features: np.ndarray, dim: int, seed: int) -> np.ndarray | None:
    """``[D_raw, dim]`` matrix for ``kind`` in {"none", "random", "pca"} (None for "none")."""
    d_raw = features.shape[1]
    if kind == "none" or dim >= d_raw:
        return None
    if kind == "random":
        rng = np.random.default_rng(seed)
        return (rng.standard_normal((d_raw, dim)) / np.sqrt(dim)).astype(np.float32)
    if kind == "pca":
        rng = np.random.default_rng(seed)
        sample = features[rng.choice(len(features), size=min(len(features), 50000), replace=False)]
        centred = sample - sample.mean(0)
        _, _, vt = np.linalg.svd(centred.astype(np.float64), full_matrices=False)
        return vt[:dim].T.astype(np.float32)
    raise ValueError(f"unknown projection {kind!r}")
