"""A small synthetic inspection dataset in the MVTec AD layout, generated on the fly.

Used by the quick start (``tocoad-demo``) and the tests, since real datasets cannot ship with the project.
It is synthetic: brushed-metal-like grayscale textures with random illumination; defects are dark
scratches, bright spots and stains, with pixel masks. Figures measured on it say nothing about real parts.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

DEFECTS = ("scratch", "spot", "stain")


def _surface(rng: np.random.Generator, size: int) -> np.ndarray:
    base = rng.normal(0, 1, (size, size)).astype(np.float32)
    base = cv2.GaussianBlur(base, (0, 0), sigmaX=6.0, sigmaY=0.8)          # brushed grain
    base = (base - base.min()) / (np.ptp(base) + 1e-6)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    light = 0.15 * np.sin(2 * np.pi * (xx * rng.uniform(0.3, 1.0) + rng.uniform(0, 1)))
    img = 0.45 + 0.25 * base + light + rng.normal(0, 0.015, (size, size))
    return np.clip(img, 0, 1)


def _defect(rng: np.random.Generator, img: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    size = img.shape[0]
    mask = np.zeros_like(img, dtype=np.uint8)
    cx, cy = rng.integers(size // 5, 4 * size // 5, 2)
    if kind == "scratch":
        angle = rng.uniform(0, np.pi)
        length = rng.uniform(0.2, 0.4) * size
        dx, dy = np.cos(angle) * length / 2, np.sin(angle) * length / 2
        cv2.line(mask, (int(cx - dx), int(cy - dy)), (int(cx + dx), int(cy + dy)), 255, int(rng.integers(2, 4)))
        delta = -0.35
    elif kind == "spot":
        cv2.circle(mask, (int(cx), int(cy)), int(rng.integers(size // 24, size // 12)), 255, -1)
        delta = 0.35
    else:
        axes = (int(rng.integers(size // 14, size // 7)), int(rng.integers(size // 20, size // 10)))
        cv2.ellipse(mask, (int(cx), int(cy)), axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)
        delta = -0.2
    soft = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), 1.0)
    out = np.clip(img + delta * soft, 0, 1)
    return out, mask


def _save(path: Path, img01: np.ndarray, color: bool) -> None:
    u8 = (img01 * 255).round().astype(np.uint8)
    if color:
        u8 = cv2.cvtColor(u8, cv2.COLOR_GRAY2BGR)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(path.suffix, u8)
    if not ok:
        raise OSError(f"cannot encode {path}")
    buf.tofile(str(path))


def make_sample_dataset(root: str | Path, *, n_train: int = 40, n_test_good: int = 8, n_test_defect: int = 4,
                        size: int = 128, seed: int = 0, color: bool = False) -> Path:
    """Write ``root/train/good``, ``root/test/{good,<defect>}``, ``root/ground_truth/<defect>``. Returns root."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for i in range(n_train):
        _save(root / "train" / "good" / f"{i:03d}.png", _surface(rng, size), color)
    for i in range(n_test_good):
        _save(root / "test" / "good" / f"{i:03d}.png", _surface(rng, size), color)
    for kind in DEFECTS:
        for i in range(n_test_defect):
            img, mask = _defect(rng, _surface(rng, size), kind)
            _save(root / "test" / kind / f"{i:03d}.png", img, color)
            mpath = root / "ground_truth" / kind / f"{i:03d}_mask.png"
            mpath.parent.mkdir(parents=True, exist_ok=True)
            cv2.imencode(".png", mask)[1].tofile(str(mpath))
    return root
