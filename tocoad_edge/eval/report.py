"""Evaluation report a person looks at: ROC curve PNG and heat-map overlays, drawn with OpenCV."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..data import read_image
from .metrics import roc_curve


def heatmap_overlay(image_bgr: np.ndarray, amap: np.ndarray, vmin: float, vmax: float, alpha: float = 0.45) -> np.ndarray:
    a = cv2.resize(amap, (image_bgr.shape[1], image_bgr.shape[0]), interpolation=cv2.INTER_LINEAR)
    norm = np.clip((a - vmin) / max(vmax - vmin, 1e-9), 0, 1)
    heat = cv2.applyColorMap((norm * 255).astype(np.uint8), cv2.COLORMAP_JET)
    return cv2.addWeighted(image_bgr, 1 - alpha, heat, alpha, 0)


def draw_roc(labels: np.ndarray, scores: np.ndarray, title: str, size: int = 480) -> np.ndarray:
    fpr, tpr, _ = roc_curve(labels, scores)
    img = np.full((size, size, 3), 255, np.uint8)
    m = 50
    w = size - 2 * m
    cv2.rectangle(img, (m, m), (m + w, m + w), (0, 0, 0), 1)
    cv2.line(img, (m, m + w), (m + w, m), (180, 180, 180), 1)
    pts = np.stack([m + fpr * w, m + w - tpr * w], 1).astype(np.int32)
    cv2.polylines(img, [pts], False, (200, 60, 0), 2)
    cv2.putText(img, title, (m, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "false positive rate", (m + w // 2 - 80, size - 15), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
    cv2.putText(img, "TPR", (8, m + w // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
    return img


def _save_png(path: Path, img: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", img)
    if ok:
        buf.tofile(str(path))


def write_report(report_dir: str | Path, dataset, result, masks, maps, max_overlays: int = 24) -> list[Path]:
    out = Path(report_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    y = np.array([i["label"] for i in result.items])
    s = np.array([i["raw_score"] for i in result.items])
    if y.any() and (~y.astype(bool)).any():
        p = out / "roc_image.png"
        _save_png(p, draw_roc(y, s, f"image ROC  AUROC {result.image_auroc:.3f}"))
        written.append(p)
    if any(m.any() for m in masks):
        step = max(1, sum(m.size for m in masks) // 2_000_000)
        py = np.concatenate([m.ravel() for m in masks])[::step]
        ps = np.concatenate([a.ravel() for a in maps])[::step]
        p = out / "roc_pixel.png"
        _save_png(p, draw_roc(py, ps, f"pixel ROC  AUROC {result.pixel_auroc:.3f}"))
        written.append(p)
    vmin = float(np.percentile(np.concatenate([a.ravel() for a in maps]), 1))
    vmax = float(max(a.max() for a in maps))
    # a few overlays per defect type and of good images, highest scores first
    by_defect: dict[str, list[int]] = {}
    for idx, it in enumerate(result.items):
        by_defect.setdefault(it["defect"], []).append(idx)
    per = max(1, max_overlays // max(len(by_defect), 1))
    for defect, idxs in sorted(by_defect.items()):
        for idx in sorted(idxs, key=lambda i: -result.items[i]["raw_score"])[:per]:
            it = result.items[idx]
            img = read_image(dataset.root / it["path"])
            ov = heatmap_overlay(cv2.resize(img, maps[idx].shape[::-1]), maps[idx], vmin, vmax)
            if masks[idx].any():
                cnts, _ = cv2.findContours(masks[idx].astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
                cv2.drawContours(ov, cnts, -1, (255, 255, 255), 1)
            panel = np.concatenate([cv2.resize(img, maps[idx].shape[::-1]), ov], axis=1)
            cv2.putText(panel, f"{it['decision']} {it['score']:.2f}", (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                        (0, 0, 255) if it["decision"] == "NG" else (0, 160, 0), 1, cv2.LINE_AA)
            p = out / f"overlay_{defect}_{Path(it['path']).stem}.png"
            _save_png(p, panel)
            written.append(p)
    return written
