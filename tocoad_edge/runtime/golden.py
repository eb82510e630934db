"""The built-in golden image and the self-test every new model passes before it serves.

The golden image is computed from integer formulas (no file, no random generator), so it is bit-identical on
every machine. At export its raw score and its mean patch embedding are recorded in the manifest (``self_test``)
for each precision, with exact search and ONNX Runtime. Before a model serves (``HotSwapDetector``), it scores the
golden image: the score must be finite, the map must have the frame's shape, and, when the manifest records them,
the raw score and the mean embedding must match within a relative tolerance. The embedding check is what catches a
backend that computes something else (wrong preprocessing, a bad engine): the golden image is far from any product's
memory bank, so its score alone moves little when the model drifts.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..bundle.manifest import MANIFEST_NAME, read_manifest
from ..errors import BundleError, TocoadError
from .arrays import UInt8Array
from .options import PRECISIONS, is_precision
from .prediction import Prediction

if TYPE_CHECKING:       # for the annotations; record_golden_scores imports it where it opens bundles
    from .detector import Detector

GOLDEN_ID = "tocoad-golden-v1"
GOLDEN_SHAPE = (256, 256)
DEFAULT_TOLERANCE = 0.05        # relative; wide enough for INT8 / FP16 / HNSW, far below a broken model's error


def golden_image(height: int = GOLDEN_SHAPE[0], width: int = GOLDEN_SHAPE[1]) -> UInt8Array:
    """uint8 BGR ``[height, width, 3]``: gradients, a checkerboard and a modular texture. Deterministic."""
    y, x = np.mgrid[0:height, 0:width].astype(np.int64)
    blue = x * 255 // max(width - 1, 1)
    green = y * 255 // max(height - 1, 1)
    red = ((x // 16 + y // 16) % 2) * 160 + (x * y + 7 * x) % 61
    return np.ascontiguousarray(np.stack([blue, green, red], axis=-1).astype(np.uint8))


@dataclass(frozen=True)
class SelfTestResult:
    raw_score: float
    score: float
    map_shape: tuple[int, int]
    expected_raw_score: float | None
    relative_error: float | None            # of the raw score
    embedding_error: float | None           # relative L2 error of the mean patch embedding
    ms: float


def _golden_pass(detector: Detector) -> tuple[Prediction, npt.NDArray[np.float64]]:
    """Golden image → (prediction, mean patch embedding [D] float64)."""
    frame = golden_image()
    detector._check_open()
    emb, hw, timings = detector.embed(frame)
    mean = np.asarray(emb, dtype=np.float64).mean(axis=0)
    return detector.score(emb, hw, timings), mean


def self_test(detector: Detector, *, tolerance: float = DEFAULT_TOLERANCE) -> SelfTestResult:
    """Score the golden image; raise ``BundleError`` unless the result is sane (see module doc)."""
    frame = golden_image()
    t0 = time.perf_counter()
    try:
        pred, mean = _golden_pass(detector)
    except TocoadError as exc:
        raise BundleError(f"model {detector.model_id} failed its self-test on the golden image: {exc.message}",
                          expected=exc.expected, got=exc.got, fix="re-export the bundle") from None
    except Exception as exc:  # noqa: BLE001 - any native failure means this model must not serve
        raise BundleError(f"model {detector.model_id} failed its self-test on the golden image",
                          got=f"{type(exc).__name__}: {exc}", fix="re-export the bundle") from None
    ms = (time.perf_counter() - t0) * 1e3
    where = f"model {detector.model_id} self-test"
    if not math.isfinite(pred.raw_score) or not np.isfinite(pred.anomaly_map).all():
        raise BundleError(f"{where}: the golden image scores a non-finite value", expected="a finite score and map",
                          got=f"score {pred.raw_score}", fix="re-export the bundle (weights or memory bank damaged)")
    if pred.anomaly_map.shape != frame.shape[:2]:
        raise BundleError(f"{where}: the anomaly map has the wrong shape", expected=str(frame.shape[:2]),
                          got=str(pred.anomaly_map.shape), fix="re-export the bundle")
    recorded = detector.manifest.self_test if detector.manifest.self_test.get("golden_image") == GOLDEN_ID else {}
    expected = rel = emb_err = None
    want_mean = recorded.get("embedding_means", {}).get(detector.precision)
    if want_mean is not None:
        want = np.asarray(want_mean, dtype=np.float64)
        if want.shape != mean.shape:
            raise BundleError(f"{where}: the embedding has the wrong dimension", expected=str(want.shape[0]),
                              got=str(mean.shape[0]), fix="re-export the bundle")
        emb_err = float(np.linalg.norm(mean - want)) / max(float(np.linalg.norm(want)), 1e-12)
        if emb_err > tolerance:
            raise BundleError(f"{where}: the golden image embeds differently than at export",
                              expected=f"mean embedding within {tolerance:.0%}", got=f"{emb_err:.1%} off",
                              fix="this backend/precision computes something else than the exported model "
                                  "(preprocessing, engine or weights): rebuild the engine or re-export")
    if detector.precision in recorded.get("raw_scores", {}):
        expected = float(recorded["raw_scores"][detector.precision])
        rel = abs(pred.raw_score - expected) / max(abs(expected), 1e-12)
        if rel > tolerance:
            raise BundleError(f"{where}: the golden image scores differently than at export",
                              expected=f"raw score {expected:.6g} ± {tolerance:.0%}",
                              got=f"{pred.raw_score:.6g} ({rel:.1%} off)",
                              fix="the model, memory bank or preprocessing differs from what was exported: "
                                  "re-export or copy the bundle again")
    return SelfTestResult(pred.raw_score, pred.score, tuple(pred.anomaly_map.shape), expected, rel, emb_err, ms)


def record_golden_scores(bundle_dir: str | Path) -> dict[str, Any]:
    """Export time: score the golden image with every model of the bundle (ONNX Runtime, exact search) and write
    the scores into the manifest's ``self_test`` (atomically). Returns the record."""
    from .detector import Detector

    bundle = Path(bundle_dir)
    manifest = read_manifest(bundle)
    scores: dict[str, float] = {}
    means: dict[str, list[float]] = {}
    for precision in sorted(manifest.models):
        if not is_precision(precision):
            raise BundleError(f"the bundle has a model of unknown precision '{precision}'",
                              expected=f"models of {list(PRECISIONS)}", got=str(sorted(manifest.models)),
                              fix="re-export the bundle with this tocoad-edge version")
        with Detector.open(bundle, backend="onnxrt", precision=precision, search="exact") as det:
            pred, mean = _golden_pass(det)
        scores[precision] = float(pred.raw_score)
        means[precision] = [float(f"{v:.7g}") for v in mean]
    record = {"golden_image": GOLDEN_ID, "frame_shape": list(GOLDEN_SHAPE), "raw_scores": scores,
              "embedding_means": means, "backend": "onnxrt", "search": "exact"}
    tmp = bundle / f".{MANIFEST_NAME}.tmp-{os.getpid()}"
    try:
        tmp.write_text(replace(manifest, self_test=record).to_json(), encoding="utf-8")
        os.replace(tmp, bundle / MANIFEST_NAME)
    finally:
        tmp.unlink(missing_ok=True)
    return record
