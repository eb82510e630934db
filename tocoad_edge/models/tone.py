"""Per-image tone standardisation (``data.tone: standardize``): each frame's own mean and spread are mapped to the
training images' typical ones before the backbone's input normalisation, so a darker, brighter or flatter part
looks like a typical one to the backbone while the contrast of a defect against its surroundings is kept.

It runs inside the model (``PatchEmbedder.preprocess`` and the training stages' ``normalise``), so the exported
graph carries it and every runtime (ONNX Runtime, OpenCV DNN, TensorRT) applies it without code of its own. The
statistics are over the whole model input (all channels); a tiled frame is standardised tile by tile.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch.nn import functional as F

# added to each frame's variance (grey levels²): a flat frame (spread about one grey level or less) is shifted,
# not amplified into noise
VARIANCE_FLOOR = 1.0


def tone_reference(images: Sequence[np.ndarray] | np.ndarray) -> tuple[float, float]:
    """The median per-image mean and standard deviation of uint8 images (``[N, H, W, 3]`` or a sequence of
    ``[H, W, 3]``), in grey levels."""
    if len(images) == 0:
        from ..errors import DataError

        raise DataError("the tone reference needs images", expected="at least one uint8 [H, W, 3] image",
                        got="none")
    means = np.empty(len(images))
    spreads = np.empty(len(images))
    for i, im in enumerate(images):     # one image at a time: no float copy of the whole set
        x = im.astype(np.float32)
        means[i], spreads[i] = x.mean(), x.std()
    return float(np.median(means)), float(max(np.median(spreads), np.sqrt(VARIANCE_FLOOR)))


def standardise_tone(x: torch.Tensor, reference: tuple[float, float]) -> torch.Tensor:
    """Float ``[N, C, H, W]`` grey levels (0..255): each image's mean and standard deviation → ``reference``,
    clipped to 0..255 like a frame the camera could have taken.

    A group norm with one group: ONNX's InstanceNormalization over the image as one channel, which OpenCV DNN
    imports (a per-image scale written as ReduceMean and a broadcast Mul is a graph it cannot import)."""
    mean_ref, spread_ref = reference
    return (F.group_norm(x, 1, eps=VARIANCE_FLOOR) * spread_ref + mean_ref).clamp(0.0, 255.0)
