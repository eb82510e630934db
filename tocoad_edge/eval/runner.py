"""Score every test image of a dataset with a Detector and compute the metrics."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data import MVTecDataset, read_image, read_mask
from .line import line_report
from .metrics import aupro, auroc, f1_max, pixel_auroc

PIXEL_PRESENT = "present"
PIXEL_ABSENT = "absent: the set has no ground-truth masks"


@dataclass
class EvalResult:
    image_auroc: float
    pixel_auroc: float
    aupro: float
    f1_max: float
    f1_threshold: float
    images: int
    anomalous: int
    per_defect_image_auroc: dict[str, float]
    latency_ms_p50: float
    latency_ms_p99: float
    items: list[dict] = field(default_factory=list)
    line: dict = field(default_factory=dict)        # eval/line.py: operating points and counts at the thresholds
    pixel_metrics: str = PIXEL_PRESENT              # or why pixel AUROC and AUPRO are null (absent, partial)

    def to_json(self) -> dict:
        """Strict JSON: a metric that is undefined here (NaN: one class missing, no masks) is ``null``."""
        out = {k: v for k, v in self.__dict__.items() if k not in ("items", "line")}
        out["per_defect_image_auroc"] = {k: _null(v) for k, v in self.per_defect_image_auroc.items()}
        return {k: _null(v) for k, v in out.items()} | {"line": self.line, "per_image": self.items}


def _null(v):
    return None if isinstance(v, float) and v != v else v


def _pixel_selection(dataset: MVTecDataset) -> tuple[list[bool], str]:
    """Which images pixel metrics use, and what the JSON says about it: all of them when every defective image has
    a mask; without the defective images that lack one (they would count as all-normal pixels) when some do; none
    when the set has image-level labels only."""
    defective = [t for t in dataset.test if t.label == 1]
    missing = sum(t.mask_path is None for t in defective)
    if defective and missing == len(defective):
        return [False] * len(dataset.test), PIXEL_ABSENT
    use = [t.label == 0 or t.mask_path is not None for t in dataset.test]
    if missing:
        return use, f"partial: {missing} of {len(defective)} defective images have no mask and are left out"
    return use, PIXEL_PRESENT


def at_eval_resolution(amap: np.ndarray, mask: np.ndarray,
                       max_map_side: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """An anomaly map and its bool mask (same frame shape) → evaluation resolution: shrunk so the longest side is
    ≤ ``max_map_side`` (map bilinear, mask nearest); smaller frames are left as they are. A map of another shape
    (a model's fixed-size output) is resized bilinearly to the mask's evaluation shape."""
    import cv2

    h, w = mask.shape
    scale = min(1.0, max_map_side / max(h, w))
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        mask = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    if amap.shape != mask.shape:
        amap = cv2.resize(np.asarray(amap, dtype=np.float32), (mask.shape[1], mask.shape[0]),
                          interpolation=cv2.INTER_LINEAR)
    return amap, mask


def evaluate(detector, dataset: MVTecDataset, *, keep_maps: bool = False, progress=None,
             max_map_side: int = 256) -> tuple[EvalResult, list[np.ndarray], list[np.ndarray]]:
    """Returns the result and (masks, maps) at evaluation resolution (longest side ≤ ``max_map_side``)."""
    labels, scores, masks, maps, items, lat = [], [], [], [], [], []
    for item in dataset.test:
        img = read_image(item.path)
        t0 = time.perf_counter()
        pred = detector.predict(img)
        lat.append((time.perf_counter() - t0) * 1e3)
        amap, mask = at_eval_resolution(pred.anomaly_map, read_mask(item.mask_path, img.shape[:2]), max_map_side)
        labels.append(item.label)
        scores.append(pred.raw_score)
        masks.append(mask)
        maps.append(amap.astype(np.float32))
        items.append({"path": str(Path(item.path).relative_to(dataset.root)), "label": item.label,
                      "defect": item.defect, "score": pred.score, "raw_score": pred.raw_score,
                      "decision": pred.decision})
        if progress is not None:
            progress(1)
    y = np.array(labels)
    s = np.array(scores)
    per_defect = {}
    for d in sorted({i["defect"] for i in items if i["label"] == 1}):
        sel = np.array([i["defect"] in (d, "good") for i in items])
        per_defect[d] = auroc(y[sel], s[sel])
    f1, f1_t = f1_max(y, s) if y.any() else (float("nan"), float("nan"))
    use, pixel_note = _pixel_selection(dataset)
    pm = [m for m, u in zip(masks, use) if u]
    pa = [a for a, u in zip(maps, use) if u]
    has_masks = any(m.any() for m in pm)
    sc = detector.manifest.scoring
    res = EvalResult(
        image_auroc=auroc(y, s), pixel_auroc=pixel_auroc(pm, pa) if has_masks else float("nan"),
        aupro=aupro(pm, pa) if has_masks else float("nan"), f1_max=f1, f1_threshold=f1_t,
        images=len(items), anomalous=int(y.sum()), per_defect_image_auroc=per_defect,
        latency_ms_p50=float(np.percentile(lat, 50)) if lat else float("nan"),
        latency_ms_p99=float(np.percentile(lat, 99)) if lat else float("nan"), items=items,
        line=line_report(y, s, [i["defect"] for i in items], sc.image_threshold, sc.review_threshold),
        pixel_metrics=pixel_note if has_masks or pixel_note != PIXEL_PRESENT else PIXEL_ABSENT)
    return res, masks, maps
