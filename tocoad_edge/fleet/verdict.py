"""The verdict message: what one inspected frame becomes on the wire, and how a consumer deduplicates it.

A verdict is the JSON-lines record (``stream.sinks.jsonl.result_record``: frame id, time, score, decision,
latency, stage timings) plus ``camera``, ``model_id``, ``bundle_sha256``, ``schema`` and ``seq``. ``seq`` counts
1, 2, 3, … per camera and is assigned by the spool in the same SQLite transaction that stores the verdict, so it
survives a gateway restart and never repeats or skips (``spool.py``). Delivery is at least once: after a broker
or gateway restart a verdict may arrive twice, always with the same ``seq``; ``Deduplicator`` drops the repeat.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..stream.sinks.jsonl import result_record

SCHEMA = 1


def verdict_record(result, camera: str, model_id: str | None, bundle_sha256: str | None,
                   has_image: bool = False) -> dict:
    """A ``StreamResult`` → the verdict dict (without ``seq``: the spool adds it)."""
    record = result_record(result)
    record.update(schema=SCHEMA, camera=camera, model_id=model_id, bundle_sha256=bundle_sha256, image=has_image)
    return record


def bundle_sha256(bundle_dir: str | Path) -> str:
    """A bundle's identity: the sha256 of its ``manifest.json``, which holds every other file's sha256."""
    from ..bundle.manifest import MANIFEST_NAME

    return hashlib.sha256((Path(bundle_dir) / MANIFEST_NAME).read_bytes()).hexdigest()


def encode_ng_image(image: np.ndarray, max_bytes: int, qualities: tuple[int, ...] = (90, 75, 60)) -> bytes | None:
    """JPEG no larger than ``max_bytes``: lower the quality first, then halve the size; None when nothing fits."""
    import cv2

    img = image
    while min(img.shape[:2]) >= 32:
        for q in qualities:
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])
            if ok and buf.nbytes <= max_bytes:
                return buf.tobytes()
        img = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_AREA)
    return None


class Deduplicator:
    """Consumer side: keep a verdict only if its ``seq`` is above the last one kept for its camera (key: the
    verdict topic, which names line, gateway and camera).

    With the spool's in-order replay this yields every verdict once, in order, per camera. ``gaps`` counts seqs
    that were skipped (verdicts the gateway dropped at its hard cap, or lost)."""

    def __init__(self) -> None:
        self.last: dict[str, int] = {}
        self.duplicates = 0
        self.gaps = 0

    def accept(self, key: str, seq: int) -> bool:
        last = self.last.get(key, 0)
        if seq <= last:
            self.duplicates += 1
            return False
        self.gaps += seq - last - 1
        self.last[key] = seq
        return True
