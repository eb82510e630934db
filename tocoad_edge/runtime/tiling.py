"""Tiling: a frame larger than the model input → tiles of the model input size taken at native resolution (after an
optional fixed scale), and the tiles' patch distances → one anomaly map of the whole frame.

Training cuts its images with the same functions (the memory bank is built from the patches of all tiles) and the
manifest's ``input.tiling`` records the overlap and scale, so every runtime (this one, ``native/``) cuts the same
grid. Small defects stay several patches wide instead of shrinking with the downscale to 224 px.

Grid rule, per axis (``L`` = scaled frame length, ``T`` = tile length, ``o = ceil(overlap · T)`` pixels):

- ``L <= T``: one tile at 0. The frame is padded to ``T`` on that axis (``BORDER_REFLECT_101``, the frame's own
  content mirrored, which the bank has seen) and the padding is cut off the map again. A frame smaller than a
  tile is therefore scored, not refused: small crops occur on real lines (magnetic tile: 100-600 px a side).
- ``L > T``: ``n = ceil((L − o) / (T − o))`` tiles starting at ``floor(i · (L − T) / (n − 1))``: the first at 0,
  the last ending at ``L``, evenly spread; neighbours overlap by at least ``o`` pixels.

Stitching: each tile's patch-distance grid is resized bilinearly to ``T`` (as an untiled map is to the model input);
where tiles overlap the map is the mean of the tiles (a patch at a tile's border sees less context than the same
place seen from the middle of the neighbouring tile; the mean keeps that border effect from drawing seams, while the
image score, the max over all patches of all tiles, still catches a defect seen by only one tile). The stitched map
is cut to the scaled frame, blurred (``scoring.gaussian_sigma``, in scaled-frame pixels) and resized to the frame.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..bundle.manifest import TilingSpec
from .arrays import Float32Array, UInt8Array
from .scoring import gaussian_ksize

PAD_MODE = cv2.BORDER_REFLECT_101


def overlap_pixels(tile: int, overlap: float) -> int:
    """The least overlap of neighbouring tiles in pixels: ``ceil(overlap · tile)`` (the 1e-9 absorbs float noise
    such as 0.3 · 224 = 67.19999…, so Python and C++ agree)."""
    return int(math.ceil(overlap * tile - 1e-9))


def axis_starts(length: int, tile: int, overlap: float) -> tuple[int, ...]:
    """Start offsets of the tiles along one axis (see the module's grid rule)."""
    if length <= tile:
        return (0,)
    o = overlap_pixels(tile, overlap)
    n = -(-(length - o) // (tile - o))                  # ceil of the integer division
    return tuple((i * (length - tile)) // (n - 1) for i in range(n))


def scaled_size(frame_hw: tuple[int, int], scale: float) -> tuple[int, int]:
    """The frame size after the fixed scale, rounded half up (``floor(x + 0.5)``, the same in C++)."""
    if scale == 1.0:
        return int(frame_hw[0]), int(frame_hw[1])
    return (max(1, int(math.floor(frame_hw[0] * scale + 0.5))), max(1, int(math.floor(frame_hw[1] * scale + 0.5))))


@dataclass(frozen=True)
class TileLayout:
    """Where the tiles of one frame lie: in the scaled (and, where smaller than a tile, padded) frame."""
    frame_hw: tuple[int, int]
    scaled_hw: tuple[int, int]
    tile_hw: tuple[int, int]
    ys: tuple[int, ...]
    xs: tuple[int, ...]

    @property
    def count(self) -> int:
        return len(self.ys) * len(self.xs)

    @property
    def padded_hw(self) -> tuple[int, int]:
        return max(self.scaled_hw[0], self.tile_hw[0]), max(self.scaled_hw[1], self.tile_hw[1])

    def origins(self) -> list[tuple[int, int]]:
        """Top-left corners ``(y, x)``, row by row: the order of the tiles in the batch."""
        return [(y, x) for y in self.ys for x in self.xs]


def tile_layout(frame_hw: tuple[int, int], tile_hw: tuple[int, int], spec: TilingSpec) -> TileLayout:
    sh, sw = scaled_size(frame_hw, spec.scale)
    th, tw = tile_hw
    return TileLayout(frame_hw=(int(frame_hw[0]), int(frame_hw[1])), scaled_hw=(sh, sw), tile_hw=(th, tw),
                      ys=axis_starts(sh, th, spec.overlap), xs=axis_starts(sw, tw, spec.overlap))


def cut_tiles(frame_bgr: UInt8Array, layout: TileLayout) -> UInt8Array:
    """uint8 BGR frame → uint8 ``[n, T_h, T_w, 3]``, the tiles in ``layout.origins()`` order."""
    img = frame_bgr
    if tuple(img.shape[:2]) != layout.scaled_hw:
        img = cv2.resize(img, (layout.scaled_hw[1], layout.scaled_hw[0]), interpolation=cv2.INTER_LINEAR)
    ph, pw = layout.padded_hw
    if (ph, pw) != layout.scaled_hw:
        img = cv2.copyMakeBorder(img, 0, ph - layout.scaled_hw[0], 0, pw - layout.scaled_hw[1], PAD_MODE)
    th, tw = layout.tile_hw
    out: UInt8Array = np.stack([img[y:y + th, x:x + tw] for y, x in layout.origins()])
    return out


def stitch_tile_maps(tile_maps: Float32Array, layout: TileLayout) -> Float32Array:
    """Per-tile maps ``[n, T_h, T_w]`` → the mean over overlapping tiles, cut to the scaled frame ``[h, w]``."""
    ph, pw = layout.padded_hw
    total = np.zeros((ph, pw), np.float32)
    count = np.zeros((ph, pw), np.float32)
    th, tw = layout.tile_hw
    for m, (y, x) in zip(tile_maps, layout.origins()):
        total[y:y + th, x:x + tw] += m
        count[y:y + th, x:x + tw] += 1.0
    sh, sw = layout.scaled_hw
    out: Float32Array = total[:sh, :sw] / count[:sh, :sw]     # every pixel lies in a tile: count >= 1
    return out


def tiled_anomaly_map(patch_distances: np.ndarray, grid: tuple[int, int], layout: TileLayout,
                      sigma: float) -> Float32Array:
    """All tiles' patch distances ``[n · h · w]`` (tile-major) → the frame's raw anomaly map ``[H, W]``."""
    h, w = grid
    th, tw = layout.tile_hw
    grids = patch_distances.reshape(layout.count, h, w).astype(np.float32, copy=False)
    tiles = np.stack([cv2.resize(g, (tw, th), interpolation=cv2.INTER_LINEAR) for g in grids])
    m = stitch_tile_maps(tiles, layout)
    if sigma > 0:
        k = gaussian_ksize(sigma)
        m = cv2.GaussianBlur(m, (k, k), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)
    if layout.scaled_hw != layout.frame_hw:
        m = cv2.resize(m, (layout.frame_hw[1], layout.frame_hw[0]), interpolation=cv2.INTER_LINEAR)
    out: Float32Array = np.ascontiguousarray(m, dtype=np.float32)
    return out
