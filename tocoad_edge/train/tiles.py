"""Training images → the tiles the runtime will cut from frames of the same size (``runtime/tiling.py``), so the
memory bank holds the patches of exactly the inputs the deployed model sees."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from ..bundle.manifest import TilingSpec
from ..data import read_image
from ..runtime.tiling import cut_tiles, tile_layout


def load_tiles(paths: Iterable[Path], size: int, spec: TilingSpec,
               progress: Callable[[int], object] | None = None) -> tuple[np.ndarray, list[int]]:
    """Read each image and cut it into ``size × size`` tiles: uint8 ``[tiles, size, size, 3]`` (image by image, each
    image's tiles in the runtime's order) and the number of tiles of each image (to take per-image maxima)."""
    tiles: list[np.ndarray] = []
    counts: list[int] = []
    for p in paths:
        img = read_image(p)
        t = cut_tiles(img, tile_layout(img.shape[:2], (size, size), spec))
        tiles.append(t)
        counts.append(len(t))
        if progress is not None:
            progress(1)
    if not tiles:
        return np.empty((0, size, size, 3), np.uint8), []
    return np.concatenate(tiles), counts
