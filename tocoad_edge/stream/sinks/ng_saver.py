"""NG frames (and REVIEW frames) saved with their anomaly maps, under a disk quota: the oldest records go first.

REVIEW frames are saved by default: a part in the review band is one a person must look at, and the frame is
what they look at. The record's ``.json`` says which (``decision``). ``decisions=("NG",)`` keeps NG frames only.

One record = ``<stem>_frame.png`` (lossless frame), ``<stem>_map.npy`` (float32 normalised anomaly map),
``<stem>_overlay.jpg`` and ``<stem>.json`` (score, decision, frame id, time; written last, so a record
with its JSON is complete). ``<stem>`` = ``<UTC time>_<frame id>`` sorts oldest first.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
from pathlib import Path

import cv2
import numpy as np

from ...errors import ConfigError, ResourceError
from .base import Sink
from .jsonl import result_record

log = logging.getLogger(__name__)

SUFFIXES = ("_frame.png", "_map.npy", "_overlay.jpg", ".json")


def _stem_of(name: str) -> str | None:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return None


class NgFrameSaver(Sink):
    def __init__(self, folder: str | Path, quota_mb: float = 1024.0, save_overlay: bool = True,
                 decisions: tuple[str, ...] = ("NG", "REVIEW")):
        if not quota_mb > 0:
            raise ConfigError("the NG-frame quota must be positive", expected="a number of MB > 0", got=repr(quota_mb))
        self.folder = Path(folder)
        self.quota_bytes = int(quota_mb * 1024 * 1024)
        self.save_overlay = save_overlay
        self.decisions = frozenset(decisions)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ResourceError(f"cannot create the NG-frame folder {self.folder}", got=str(exc),
                                fix="choose a writable folder") from None
        self.saved = 0
        self.deleted = 0         # records removed to stay under the quota
        self.skipped = 0         # records larger than the whole quota, or not written (disk errors)
        self._records: dict[str, int] = {}   # stem → bytes, oldest first after sorting
        for path in self.folder.iterdir():   # records of earlier runs count against the quota too
            stem = _stem_of(path.name)
            if stem is not None and path.is_file():
                self._records[stem] = self._records.get(stem, 0) + path.stat().st_size
        self._records = dict(sorted(self._records.items()))
        self.used_bytes = sum(self._records.values())
        self._enforce_quota()

    def write(self, result) -> None:
        p = result.prediction
        if p.decision not in self.decisions:
            return
        when = dt.datetime.fromtimestamp(result.frame.timestamp, dt.timezone.utc)
        stem = f"{when:%Y%m%dT%H%M%S_%f}Z_{result.frame.id:09d}"
        files: list[tuple[str, bytes]] = []
        ok, png = cv2.imencode(".png", result.frame.image)
        if ok:
            files.append(("_frame.png", png.tobytes()))
        amap = getattr(p, "anomaly_map", None)
        if amap is not None:
            files.append(("_map.npy", _npy_bytes(np.asarray(amap, dtype=np.float32))))
        if self.save_overlay:
            ok, jpg = cv2.imencode(".jpg", result.overlay(), [cv2.IMWRITE_JPEG_QUALITY, 85])
            if ok:
                files.append(("_overlay.jpg", jpg.tobytes()))
        files.append((".json", json.dumps(result_record(result), indent=1).encode()))
        size = sum(len(b) for _, b in files)
        if size > self.quota_bytes:
            self.skipped += 1
            log.warning("NG frame %d not saved: its record (%d bytes) is larger than the whole quota (%d bytes)",
                        result.frame.id, size, self.quota_bytes)
            return
        self._records[stem] = size
        self.used_bytes += size
        self._enforce_quota(keep=stem)   # evict before writing, so the folder never goes over the quota
        try:
            for suffix, data in files:
                tmp = self.folder / f".{stem}{suffix}.tmp"
                tmp.write_bytes(data)
                os.replace(tmp, self.folder / f"{stem}{suffix}")
        except OSError as exc:
            self.skipped += 1
            self._delete(stem)
            log.error("NG frame %d not saved to %s: %s", result.frame.id, self.folder, exc)
            return
        self.saved += 1

    def _enforce_quota(self, keep: str | None = None) -> None:
        for stem in list(self._records):
            if self.used_bytes <= self.quota_bytes:
                return
            if stem != keep:
                self._delete(stem)
                self.deleted += 1

    def _delete(self, stem: str) -> None:
        for suffix in SUFFIXES:
            try:
                (self.folder / f"{stem}{suffix}").unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.error("cannot delete %s%s: %s", stem, suffix, exc)
        self.used_bytes -= self._records.pop(stem, 0)


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()
