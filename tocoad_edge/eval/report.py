"""Evaluation report a person looks at: ROC curves, score histograms (good vs each defect type, with the bundle's
thresholds) and heat-map overlays, drawn with OpenCV."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..data import read_image
from .metrics import roc_curve


def heatmap_overlay(image_bgr: np.ndarray, amap: np.ndarray, vmin: float, vmax: float,
                    alpha: float = 0.45) -> np.ndarray:
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


GOOD_BGR = (60, 170, 60)
DEFECT_BGR = (40, 40, 220)
NG_LINE_BGR = (0, 0, 200)
REVIEW_LINE_BGR = (0, 150, 255)       # amber, as REVIEW is drawn on the stream overlays
DECISION_BGR = {"NG": (0, 0, 255), "REVIEW": REVIEW_LINE_BGR, "OK": (0, 160, 0)}


def draw_histogram(good: np.ndarray, defective: np.ndarray, title: str, ng_threshold: float,
                   review_threshold: float | None = None, bins: int = 40, size: tuple[int, int] = (640, 400)
                   ) -> np.ndarray:
    """Raw-score histograms of good (green) and defective (red) images on one axis, each scaled to its own
    highest bin (the sets differ in size), with the NG threshold (red line) and the review threshold (amber)."""
    w, h = size
    img = np.full((h, w, 3), 255, np.uint8)
    left, right, top, bottom = 50, 20, 50, 60
    pw, ph = w - left - right, h - top - bottom
    marks = [ng_threshold] + ([review_threshold] if review_threshold is not None else [])
    values = np.concatenate([good, defective, marks]).astype(np.float64)
    lo, hi = float(values.min()), float(values.max())
    pad = max(hi - lo, 1e-6) * 0.05
    lo, hi = lo - pad, hi + pad
    edges = np.linspace(lo, hi, bins + 1)

    def x_of(v: float) -> int:
        return int(round(left + (v - lo) / (hi - lo) * pw))

    cv2.rectangle(img, (left, top), (left + pw, top + ph), (0, 0, 0), 1)
    for scores, colour, inset in ((good, GOOD_BGR, 0), (defective, DEFECT_BGR, 3)):
        if not len(scores):
            continue
        counts, _ = np.histogram(scores, edges)
        peak = max(int(counts.max()), 1)
        for i, c in enumerate(counts):
            if c:
                x0, x1 = x_of(edges[i]) + inset, x_of(edges[i + 1]) - inset
                y0 = top + ph - int(round(c / peak * (ph - 4)))
                cv2.rectangle(img, (x0, y0), (max(x0, x1 - 1), top + ph), colour, 1 if inset else -1)
    for value, colour, label in ((ng_threshold, NG_LINE_BGR, "NG"), (review_threshold, REVIEW_LINE_BGR, "REVIEW")):
        if value is not None:
            x = x_of(value)
            cv2.line(img, (x, top), (x, top + ph), colour, 2)
            cv2.putText(img, f"{label} {value:.3g}", (min(x + 4, w - 110), top + 14 + (16 if label == "REVIEW" else 0)),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, title, (left, 30), font, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, f"{lo:.3g}", (left, top + ph + 18), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, f"{hi:.3g}", (left + pw - 50, top + ph + 18), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "raw image score", (left + pw // 2 - 60, h - 28), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, f"good ({len(good)})", (left, h - 8), font, 0.45, GOOD_BGR, 1, cv2.LINE_AA)
    cv2.putText(img, f"defective ({len(defective)})", (left + 130, h - 8), font, 0.45, DEFECT_BGR, 1, cv2.LINE_AA)
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
    line = result.line or {}
    for defect in sorted((line.get("per_defect") or {})):
        sel = np.array([i["defect"] == defect for i in result.items])
        p = out / f"histogram_{defect}.png"
        _save_png(p, draw_histogram(s[~y.astype(bool)], s[sel], f"good vs {defect}: raw image scores",
                                    line["image_threshold"], line.get("review_threshold")))
        written.append(p)
    if np.isfinite(result.pixel_auroc):
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
                        DECISION_BGR.get(it["decision"], (0, 160, 0)), 1, cv2.LINE_AA)
            p = out / f"overlay_{defect}_{Path(it['path']).stem}.png"
            _save_png(p, panel)
            written.append(p)
    return written
