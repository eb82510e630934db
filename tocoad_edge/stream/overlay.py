"""Draw the anomaly heat map, score, verdict, FPS and latency on a frame (a new BGR image).

The verdict has its own colour: OK green, REVIEW amber (with a thin amber border: a person should look at this
part), NG red (with a thick red border)."""
from __future__ import annotations

import cv2
import numpy as np

from ..runtime.frames import to_bgr_frame

OK_COLOUR = (60, 180, 60)      # BGR
NG_COLOUR = (40, 40, 230)
REVIEW_COLOUR = (0, 170, 255)  # amber
DECISION_COLOUR = {"OK": OK_COLOUR, "REVIEW": REVIEW_COLOUR, "NG": NG_COLOUR}


def heatmap(anomaly_map: np.ndarray, size: tuple[int, int], vmax: float = 2.0) -> np.ndarray:
    """Normalised map (1.0 = threshold) → JET colours, 0 → blue, ``vmax`` and above → red; ``size`` = (w, h)."""
    m = np.nan_to_num(np.asarray(anomaly_map, dtype=np.float32), nan=0.0, posinf=vmax, neginf=0.0)
    if m.ndim == 3:
        m = m[..., 0] if m.shape[-1] == 1 else m[0]
    if (m.shape[1], m.shape[0]) != tuple(size):
        m = cv2.resize(m, size, interpolation=cv2.INTER_LINEAR)
    scaled = np.clip(m * (255.0 / vmax), 0, 255).astype(np.uint8)
    return cv2.applyColorMap(scaled, cv2.COLORMAP_JET)


def draw_overlay(image: np.ndarray, anomaly_map: np.ndarray | None = None, *, score: float | None = None,
                 decision: str | None = None, fps: float | None = None, latency_ms: float | None = None,
                 alpha: float = 0.4, vmax: float = 2.0) -> np.ndarray:
    """The frame with the heat map blended in (``alpha``), a banner with verdict and score on the left and
    FPS and latency on the right, a red border when the verdict is NG and an amber one when it is REVIEW."""
    out = to_bgr_frame(image).copy()
    h, w = out.shape[:2]
    if anomaly_map is not None and alpha > 0:
        out = cv2.addWeighted(out, 1.0 - alpha, heatmap(anomaly_map, (w, h), vmax), alpha, 0.0)
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale = max(0.35, min(1.5, w / 900.0))
    thick = max(1, int(round(2 * scale)))
    row = int(34 * scale) + 6
    colour = DECISION_COLOUR.get(decision or "", OK_COLOUR)
    left = " ".join(p for p in (decision or "", f"score {score:.3f}" if score is not None else "") if p)
    right = "  ".join(p for p in (f"{fps:.1f} FPS" if fps is not None else "",
                                  f"{latency_ms:.0f} ms" if latency_ms is not None else "") if p)
    left_w = cv2.getTextSize(left, font, scale, thick)[0][0] if left else 0
    right_w = cv2.getTextSize(right, font, scale * 0.8, thick)[0][0] if right else 0
    two_rows = bool(left and right) and left_w + right_w + 24 > w    # narrow frame: FPS and latency below
    cv2.rectangle(out, (0, 0), (w, min(h, row * (2 if two_rows else 1))), (0, 0, 0), thickness=-1)
    baseline = row - int(10 * scale)
    if left:
        cv2.putText(out, left, (8, baseline), font, scale, colour, thick, cv2.LINE_AA)
    if right:
        origin = (8, baseline + row) if two_rows else (max(8, w - right_w - 8), baseline)
        cv2.putText(out, right, origin, font, scale * 0.8, (230, 230, 230), thick, cv2.LINE_AA)
    if decision == "NG":
        cv2.rectangle(out, (0, 0), (w - 1, h - 1), NG_COLOUR, thickness=max(3, thick * 2))
    elif decision == "REVIEW":
        cv2.rectangle(out, (0, 0), (w - 1, h - 1), REVIEW_COLOUR, thickness=max(2, thick))
    return out
