"""Small helpers shared by the ToCoAD stages."""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Sequence, TypeVar

import numpy as np
import torch

from ..errors import DataError
from ..models.base import Backbone
from ..models.tone import standardise_tone

Log = Callable[[str], None]
M = TypeVar("M", bound=torch.nn.Module)


def to_float_rgb(images: Sequence[np.ndarray]) -> torch.Tensor:
    """uint8 BGR ``[H, W, 3]`` images → float ``[N, 3, H, W]`` RGB in 0..255."""
    x = torch.from_numpy(np.ascontiguousarray(np.stack(images))).to(torch.float32)
    return x.permute(0, 3, 1, 2).flip(1).contiguous()


def normalise(x: torch.Tensor, backbone: Backbone) -> torch.Tensor:
    """float RGB 0..255 NCHW → the backbone's input normalisation (same as ``PatchEmbedder.preprocess``)."""
    if backbone.tone_reference is not None:
        x = standardise_tone(x, backbone.tone_reference)
    mean = torch.tensor(backbone.mean, dtype=x.dtype).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(backbone.std, dtype=x.dtype).view(1, 3, 1, 1) * 255.0
    return (x - mean) / std


def check_train_images(images: Sequence[np.ndarray], min_count: int = 2) -> None:
    if len(images) < min_count:
        raise DataError("too few training images for ToCoAD fine-tuning", expected=f">= {min_count} normal images",
                        got=str(len(images)), fix="add normal images to train/good or use --stages baseline")
    shape = images[0].shape
    for i, img in enumerate(images):
        if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise DataError(f"training image #{i} is not a uint8 BGR image", expected="uint8 [H, W, 3]",
                            got=f"{getattr(img, 'dtype', type(img).__name__)} {getattr(img, 'shape', '')}",
                            fix="read images with tocoad_edge.data.read_image and resize to data.image_size")
        if img.shape != shape:
            raise DataError(f"training image #{i} has another size than image #0", expected=str(shape),
                            got=str(img.shape), fix="resize all training images to data.image_size first")


@contextlib.contextmanager
def deterministic(seed: int, threads: int | None) -> Iterator[None]:
    """Seed torch, enable deterministic algorithms (warn-only where an op has none), set threads; restore after."""
    prev = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
            torch.get_num_threads())
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev[0], warn_only=prev[1])
        torch.set_num_threads(prev[2])


def batches(order: Sequence[int], size: int) -> Iterator[list[int]]:
    for s in range(0, len(order), size):
        yield [int(i) for i in order[s:s + size]]


def tqdm_disable(progress: bool | None) -> bool | None:
    """tqdm's ``disable``: None (auto, off when not on a terminal) unless progress is forced on or off."""
    return None if progress is None else not progress


def freeze(module: M) -> M:
    """Eval mode and no gradients: a finished (or reused) network that later stages only read."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module
