"""Per-image tone standardisation (``data.tone: standardize``): each frame's own mean and spread are mapped to the
training images' typical ones before the backbone's input normalisation, so a darker, brighter or flatter part
looks like a typical one to the backbone while the contrast of a defect against its surroundings is kept.

It runs inside the model (``PatchEmbedder.preprocess`` and the training stages' ``normalise``), so the exported
graph carries it and every runtime (ONNX Runtime, OpenCV DNN, TensorRT) applies it without code of its own. The
statistics are over the whole model input (all channels); a tiled frame is standardised tile by tile.
"""
from __future__ import annotations

import numpy as np
import torch

MIN_SPREAD = 1.0        # a flat frame (spread below one grey level) is shifted, not amplified into noise


def tone_reference(images: np.ndarray) -> tuple[float, float]:
    """The median per-image mean and standard deviation of uint8 ``images [N, H, W, 3]`` (grey levels)."""
    if images.ndim != 4 or len(images) == 0:
        from ..errors import DataError

        raise DataError("the tone reference needs images", expected="uint8 [N, H, W, 3] with N >= 1",
                        got=f"{images.dtype} {images.shape}")
    means = np.empty(len(images))
    spreads = np.empty(len(images))
    for i, im in enumerate(images):     # one image at a time: no float copy of the whole set
        x = im.astype(np.float32)
        means[i], spreads[i] = x.mean(), x.std()
    return float(np.median(means)), float(max(np.median(spreads), MIN_SPREAD))


def standardise_tone(x: torch.Tensor, reference: tuple[float, float]) -> torch.Tensor:
    """Float ``[N, C, H, W]`` grey levels (0..255): each image's mean and standard deviation → ``reference``,
    clipped to 0..255 like a frame the camera could have taken."""
    mean_ref, spread_ref = reference
    mu = x.mean(dim=(1, 2, 3), keepdim=True)
    centred = x - mu
    spread = centred.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt().clamp_min(MIN_SPREAD)
    return (centred * (spread_ref / spread) + mean_ref).clamp(0.0, 255.0)
