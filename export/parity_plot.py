"""``parity.png``: image scores of each exported model against the trained torch model, drawn with cv2/numpy.

One panel per model (ONNX FP32, ONNX INT8, ...): x = torch FP32 image score, y = the model's image score on the
synthetic labelled set (green: normal, red: synthetic anomaly), the diagonal y = x, and the report's figures.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

PANEL = 360
MARGIN = 40
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _panel(ref: np.ndarray, got: np.ndarray, labels: np.ndarray, title: str, lines: list[str]) -> np.ndarray:
    img = np.full((PANEL + 2 * MARGIN + 18 * len(lines), PANEL + 2 * MARGIN, 3), 255, np.uint8)
    lo = float(min(ref.min(), got.min()))
    hi = float(max(ref.max(), got.max()))
    span = (hi - lo) or 1.0
    lo, hi = lo - 0.05 * span, hi + 0.05 * span

    def px(x, y):
        return (int(MARGIN + (x - lo) / (hi - lo) * PANEL), int(MARGIN + PANEL - (y - lo) / (hi - lo) * PANEL))

    cv2.rectangle(img, (MARGIN, MARGIN), (MARGIN + PANEL, MARGIN + PANEL), (0, 0, 0), 1)
    cv2.line(img, px(lo, lo), px(hi, hi), (160, 160, 160), 1, cv2.LINE_AA)
    for x, y, lab in zip(ref, got, labels):
        cv2.circle(img, px(x, y), 3, (40, 40, 220) if lab else (40, 160, 40), -1, cv2.LINE_AA)
    cv2.putText(img, title, (MARGIN, MARGIN - 14), FONT, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, f"{lo:.2f}", (MARGIN - 4, MARGIN + PANEL + 14), FONT, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, f"{hi:.2f}", (MARGIN + PANEL - 30, MARGIN + PANEL + 14), FONT, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "x: torch fp32 image score", (MARGIN + 90, MARGIN + PANEL + 14), FONT, 0.35, (0, 0, 0), 1,
                cv2.LINE_AA)
    for i, line in enumerate(lines):
        cv2.putText(img, line, (MARGIN, MARGIN + PANEL + 36 + 18 * i), FONT, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def write_parity_png(path: str | Path, ref_scores: np.ndarray, labels: np.ndarray,
                     panels: list[tuple[str, np.ndarray, list[str]]]) -> Path:
    """``panels``: (title, image scores, text lines) per model, all on the same images as ``ref_scores``."""
    imgs = [_panel(np.asarray(ref_scores), np.asarray(s), np.asarray(labels), t, lines) for t, s, lines in panels]
    h = max(i.shape[0] for i in imgs)
    imgs = [np.pad(i, ((0, h - i.shape[0]), (0, 0), (0, 0)), constant_values=255) for i in imgs]
    canvas = np.concatenate(imgs, axis=1)
    path = Path(path)
    if not cv2.imwrite(str(path), canvas):
        raise OSError(f"cannot write {path}")
    return path
