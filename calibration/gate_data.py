"""The labelled set the accuracy gate measures on, built at export time from held-out normal images.

Normal images: the run's held-out normal images (never in the memory bank). Anomalous images: synthetic defects
drawn on those same images, by the project's anomaly generator G (``tocoad_edge.synth.AnomalyGenerator``,
Perlin / CutPaste / seamless, configured by the run's ``synth`` section) when it is importable, otherwise by
``patch_defect`` below, a small documented fallback:

  an ellipse (axes 6–18 % of the image side, random angle) is filled with a patch taken from another place of
  the same image, rotated by 90° / 180° / 270°, and shifted in brightness by ±40–90 grey levels, blended with
  α ∈ [0.6, 1.0]. Every pixel outside the ellipse stays untouched.

Both are deterministic for a seed.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from .context import ExportContext

log = logging.getLogger("tocoad_edge.calibration")


@dataclass
class LabelledSet:
    images: np.ndarray       # uint8 [N, H, W, 3] BGR at the model input size
    labels: np.ndarray       # int [N], 1 = anomalous
    generator: str           # which generator drew the anomalies

    def __len__(self) -> int:
        return int(len(self.labels))


def patch_defect(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One synthetic defect on a copy of ``image`` (see the module docstring)."""
    h, w = image.shape[:2]
    out = image.copy()
    ax = (int(rng.uniform(0.06, 0.18) * w), int(rng.uniform(0.06, 0.18) * h))
    ax = (max(ax[0], 2), max(ax[1], 2))
    cx = int(rng.integers(ax[0], max(w - ax[0], ax[0] + 1)))
    cy = int(rng.integers(ax[1], max(h - ax[1], ax[1] + 1)))
    mask = np.zeros((h, w), np.uint8)
    cv2.ellipse(mask, (cx, cy), ax, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    src = np.rot90(image, int(rng.integers(1, 4)))
    src = cv2.resize(np.ascontiguousarray(src), (w, h), interpolation=cv2.INTER_LINEAR)
    shift = float(rng.choice([-1, 1]) * rng.uniform(40, 90))
    patch = np.clip(src.astype(np.float32) + shift, 0, 255)
    alpha = float(rng.uniform(0.6, 1.0))
    m = mask.astype(bool)
    out[m] = np.clip(alpha * patch[m] + (1 - alpha) * image[m].astype(np.float32), 0, 255).astype(np.uint8)
    return out


def _synth_generator(cfg, normals: np.ndarray, seed: int):
    """G from ``tocoad_edge.synth`` when that package is present; None otherwise."""
    try:
        from tocoad_edge.synth import AnomalyGenerator
    except ImportError:
        return None
    try:
        synth_cfg = getattr(cfg, "synth", None)
        if synth_cfg is None:
            from tocoad_edge.train.config import SynthConfig

            synth_cfg = SynthConfig()
        return AnomalyGenerator.from_config(synth_cfg, list(normals), seed)
    except Exception as exc:  # noqa: BLE001 - any failure of the optional generator falls back, and says so
        log.warning("anomaly generator G unavailable (%s: %s); using the patch-defect fallback",
                    type(exc).__name__, exc)
        return None


def build_labelled_set(normals: np.ndarray, *, per_image: int = 2, seed: int = 0, cfg=None,
                       use_synth: bool = True) -> LabelledSet:
    """``normals`` (label 0) plus ``per_image`` synthetic anomalies drawn on each of them (label 1)."""
    gen = _synth_generator(cfg, normals, seed) if use_synth else None
    if gen is not None:
        from tocoad_edge.synth.labelled_set import draw_anomalies

        anomalies, _ = draw_anomalies(gen, list(normals), per_image)
    else:
        rng = np.random.default_rng(seed)
        anomalies = [patch_defect(img, rng) for img in normals for _ in range(per_image)]
    images = np.concatenate([normals, np.stack(anomalies)]) if anomalies else normals
    labels = np.concatenate([np.zeros(len(normals), int), np.ones(len(anomalies), int)])
    return LabelledSet(images=images, labels=labels, generator="synth.G" if gen is not None else "patch_defect")


def gate_set_for_export(ctx: ExportContext, per_image: int = 2) -> LabelledSet:
    from tocoad_edge.data.run_images import holdout_images

    size = int(ctx.meta["image_size"])
    normals = holdout_images(ctx.meta, size, limit=24)
    return build_labelled_set(normals, per_image=per_image, seed=int(ctx.cfg.seed), cfg=ctx.cfg)
