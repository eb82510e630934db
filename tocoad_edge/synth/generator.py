"""Anomaly generator G: normal image in, (synthetic-anomaly image, mask, label) out.

Steps: a slight random rotation and a random 90° rotation of the normal image (the rotated image is the
``base`` the sample is compared with), then with probability ``anomaly_probability`` an anomaly drawn with the
configured method (Perlin mask × texture blended with β, CutPaste, or seamless patch), restricted to the
foreground when ``synth.foreground`` is set. Every pixel outside the mask equals ``base``.

Deterministic: ``sample(image, index)`` uses ``numpy.random.default_rng([seed, index])``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from ..train.config import SynthConfig
from ..errors import DataError
from .cutpaste import cutpaste
from .foreground import foreground_mask
from .perlin import perlin_mask, rotate_image
from .seamless import seamless_patch
from .textures import TextureSource, build_texture_source


@dataclass(frozen=True)
class SynthSample:
    image: np.ndarray   # uint8 [H, W, 3] BGR, the synthetic sample
    mask: np.ndarray    # uint8 {0, 1} [H, W], 1 = synthetic defect
    label: int          # 1 if the mask is not empty
    base: np.ndarray    # uint8 [H, W, 3]: the (rotated) normal image the sample was made from


def is_gray(image: np.ndarray) -> bool:
    return bool(np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1], image[..., 2]))


class AnomalyGenerator:
    def __init__(self, cfg: SynthConfig, textures: TextureSource, seed: int = 0):
        self.cfg = cfg
        self.textures = textures
        self.seed = int(seed)

    @classmethod
    def from_config(cls, cfg: SynthConfig, normal_images: Sequence[np.ndarray], seed: int) -> "AnomalyGenerator":
        return cls(cfg, build_texture_source(cfg.texture_source, normal_images, cfg.textures), seed)

    def sample(self, image: np.ndarray, index: int, anomaly: bool | None = None) -> SynthSample:
        """Deterministic sample number ``index`` for ``image`` (same seed, index, image → same sample)."""
        return self.generate(image, np.random.default_rng([self.seed, int(index)]), anomaly)

    def generate(self, image: np.ndarray, rng: np.random.Generator, anomaly: bool | None = None) -> SynthSample:
        if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
            raise DataError("the anomaly generator needs a uint8 BGR image",
                            expected="uint8 array [H, W, 3]",
                            got=f"{getattr(image, 'dtype', type(image).__name__)} {getattr(image, 'shape', '')}",
                            fix="read images with tocoad_edge.data.read_image")
        cfg = self.cfg
        base = image
        if cfg.rotate90:
            k = int(rng.integers(0, 4)) if base.shape[0] == base.shape[1] else 2 * int(rng.integers(0, 2))
            base = np.ascontiguousarray(np.rot90(base, k))
        if cfg.rotation_degrees > 0:
            base = rotate_image(base, float(rng.uniform(-cfg.rotation_degrees, cfg.rotation_degrees)))
        h, w = base.shape[:2]
        if anomaly is None:
            anomaly = bool(rng.random() < cfg.anomaly_probability)
        if not anomaly:
            return SynthSample(base, np.zeros((h, w), np.uint8), 0, base)
        if cfg.method == "perlin":
            out, mask = self._perlin(base, rng)
        elif cfg.method == "cutpaste":
            out, mask = cutpaste(base, rng)
        else:
            out, mask = seamless_patch(base, self._texture(base, rng), rng)
        out = np.where(mask[..., None] > 0, out, base).astype(np.uint8)
        return SynthSample(out, mask, int(mask.any()), base)

    def _texture(self, base: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        tex = self.textures.sample(base.shape[:2], rng)
        gray_mode = self.cfg.grayscale_textures
        if gray_mode == "always" or (gray_mode == "auto" and is_gray(base)):
            tex = cv2.cvtColor(cv2.cvtColor(tex, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
        return tex

    def _perlin(self, base: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.cfg
        h, w = base.shape[:2]
        fg = foreground_mask(base, cfg.foreground)
        area = max(1, int(fg.sum()))
        mask = np.zeros((h, w), np.uint8)
        for _ in range(20):
            m, _ = perlin_mask((h, w), rng, cfg.perlin_min_scale, cfg.perlin_max_scale, cfg.perlin_threshold)
            m = m & fg
            if m.sum() >= max(1.0, cfg.min_coverage * area):
                mask = m
                break
            if m.sum() > mask.sum():
                mask = m
        tex = self._texture(base, rng).astype(np.float32)
        beta = float(rng.uniform(cfg.beta_min, cfg.beta_max))
        m3 = mask[..., None].astype(np.float32)
        out = base.astype(np.float32) * (1 - beta * m3) + beta * m3 * tex
        return np.clip(np.rint(out), 0, 255).astype(np.uint8), mask
