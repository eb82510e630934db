"""One JSON line per processed frame: frame id, capture time, score, decision, latency, stage timings."""
from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

from ...errors import ResourceError
from .base import Sink


def result_record(result) -> dict:
    p = result.prediction
    ts = result.frame.timestamp

    def num(v):
        return None if v is None or not math.isfinite(float(v)) else round(float(v), 6)

    camera = getattr(result, "camera", None)
    return {
        **({"camera": camera} if camera is not None else {}),   # several cameras in one process (multicam.py)
        "frame_id": result.frame.id,
        "timestamp": round(ts, 6),
        "time": dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat(timespec="milliseconds"),
        "score": num(p.score),
        "raw_score": num(getattr(p, "raw_score", None)),
        "decision": p.decision,
        "latency_ms": round(result.latency_ms, 3),
        "timings_ms": {k: num(v) for k, v in (getattr(p, "timings_ms", None) or {}).items()},
    }


class JsonLinesSink(Sink):
    """Appends to ``path`` (``mode="w"`` starts afresh); each line is flushed as it is written."""

    def __init__(self, path: str | Path, mode: str = "w"):
        self.path = Path(path)
        if mode not in ("w", "a"):
            raise ValueError("mode must be 'w' or 'a'")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open(mode, encoding="utf-8", buffering=1)
        except OSError as exc:
            raise ResourceError(f"cannot write JSON lines to {self.path}", got=str(exc),
                                fix="check the folder exists and is writable") from None
        self.lines = 0

    def write(self, result) -> None:
        self._file.write(json.dumps(result_record(result), allow_nan=False) + "\n")
        self.lines += 1

    def close(self) -> None:
        self._file.close()
