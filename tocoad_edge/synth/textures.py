"""Texture sources for the anomaly generator: where the "foreign" pixels of a synthetic defect come from.

Every source has ``sample(shape, rng) -> uint8 [H, W, 3] BGR``.

* ``NormalImageTextures`` — other normal images of the same training set (rotated, flipped, shifted):
  defects that look like displaced material of the same part.
* ``ProceduralTextures`` — Perlin colour noise, stripes, checkers, blobs, flat patches: no download needed.
* ``FolderTextures`` — a folder of texture images such as the DTD (``--textures DIR``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol, Sequence

import cv2
import numpy as np

from ..errors import DataError
from .perlin import perlin_noise

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


class TextureSource(Protocol):
    def sample(self, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray: ...


def _random_view(img: np.ndarray, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A random 90°-rotated / flipped / rolled view of ``img`` resized to ``shape``."""
    img = np.rot90(img, int(rng.integers(0, 4)))
    if rng.random() < 0.5:
        img = img[:, ::-1]
    img = cv2.resize(np.ascontiguousarray(img), (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    dy, dx = int(rng.integers(0, shape[0])), int(rng.integers(0, shape[1]))
    return np.ascontiguousarray(np.roll(img, (dy, dx), axis=(0, 1)))


class NormalImageTextures:
    """Other normal images of the training set."""

    def __init__(self, images: Sequence[np.ndarray]):
        if len(images) == 0:
            raise DataError("the normal-image texture source needs at least one image", expected=">= 1 training image",
                            got="0", fix="give training images or use procedural textures")
        self.images = images

    def sample(self, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
        img = self.images[int(rng.integers(0, len(self.images)))]
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        return _random_view(img, shape, rng)


class ProceduralTextures:
    """Synthetic textures that need no files."""

    KINDS = ("perlin", "stripes", "checker", "blobs", "flat")

    def sample(self, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
        h, w = shape
        kind = self.KINDS[int(rng.integers(0, len(self.KINDS)))]
        c1 = rng.integers(0, 256, 3).astype(np.float32)
        c2 = rng.integers(0, 256, 3).astype(np.float32)
        if kind == "perlin":
            t = np.zeros((h, w), np.float32)
            for octave in range(int(rng.integers(1, 4))):
                s = 2 ** int(rng.integers(1, 6))
                t += perlin_noise((h, w), (s, s), rng) / (octave + 1)
            t = (t - t.min()) / (np.ptp(t) + 1e-6)
        elif kind == "stripes":
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
            ang = rng.uniform(0, np.pi)
            period = rng.uniform(4, max(5.0, min(h, w) / 3))
            t = 0.5 + 0.5 * np.sin(2 * np.pi * (xx * np.cos(ang) + yy * np.sin(ang)) / period)
        elif kind == "checker":
            cell = int(rng.integers(3, max(4, min(h, w) // 4)))
            yy, xx = np.mgrid[0:h, 0:w]
            t = (((yy // cell) + (xx // cell)) % 2).astype(np.float32)
        elif kind == "blobs":
            t = rng.random((max(2, h // 8), max(2, w // 8))).astype(np.float32)
            t = cv2.resize(t, (w, h), interpolation=cv2.INTER_CUBIC)
            t = np.clip((t - t.min()) / (np.ptp(t) + 1e-6), 0, 1)
        else:
            t = np.zeros((h, w), np.float32)
        img = c1 * (1 - t[..., None]) + c2 * t[..., None]
        img += rng.normal(0, 6, img.shape).astype(np.float32)
        return np.clip(img, 0, 255).astype(np.uint8)


class FolderTextures:
    """Texture images from a folder (searched recursively), e.g. the Describable Textures Dataset."""

    def __init__(self, folder: str | Path):
        root = Path(folder)
        if not root.is_dir():
            raise DataError(f"texture folder not found: {root}", expected="a folder of texture images",
                            got=str(root), fix="give an existing folder with --textures DIR (e.g. DTD's images/)")
        self.paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.paths:
            raise DataError(f"texture folder {root} holds no images", expected=f"files ending in {IMAGE_SUFFIXES}",
                            got="none", fix="point --textures at a folder of texture images")

    def sample(self, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
        for _ in range(10):
            path = self.paths[int(rng.integers(0, len(self.paths)))]
            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if img is not None:
                return _random_view(img, shape, rng)
        raise DataError(f"texture folder images cannot be read (last tried {path})",
                        expected="readable image files", got="10 unreadable files in a row",
                        fix="remove broken files from the texture folder")


class MixedTextures:
    """Pick one of several sources uniformly."""

    def __init__(self, sources: Sequence[TextureSource]):
        self.sources = list(sources)

    def sample(self, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
        return self.sources[int(rng.integers(0, len(self.sources)))].sample(shape, rng)


def build_texture_source(kind: str, images: Sequence[np.ndarray] = (), folder: str | None = None) -> TextureSource:
    """``auto``: the folder if given, else normal images + procedural textures."""
    if kind == "auto":
        if folder:
            return FolderTextures(folder)
        if not len(images):
            return ProceduralTextures()
        return MixedTextures([NormalImageTextures(images), ProceduralTextures()])
    if kind == "normal":
        return NormalImageTextures(images)
    if kind == "procedural":
        return ProceduralTextures()
    if kind == "folder":
        if not folder:
            raise DataError("texture source 'folder' needs a folder", fix="give --textures DIR (synth.textures)")
        return FolderTextures(folder)
    raise ValueError(f"unknown texture source {kind!r}")
