"""The gateway's retained status message: online with the model it serves (birth), offline (last will)."""
from __future__ import annotations

import datetime as dt
import json

from .verdict import bundle_sha256


def model_identity(model) -> tuple[str | None, str | None]:
    """(model id, bundle sha256) of a ``Detector`` or ``HotSwapDetector`` (the model serving now); Nones for
    anything else."""
    if model is None:
        return None, None
    detector = getattr(model, "detector", model)
    bundle_dir = getattr(detector, "bundle_dir", None)
    try:
        sha = bundle_sha256(bundle_dir) if bundle_dir is not None else None
    except OSError:
        sha = None
    return getattr(model, "model_id", None), sha


class IdentityCache:
    """``model_identity`` read once per model: the sink asks on every frame, the manifest is hashed on change."""

    def __init__(self, model) -> None:
        self.model = model
        self._key: tuple | None = None
        self.value: tuple[str | None, str | None] = (None, None)

    def get(self) -> tuple[tuple[str | None, str | None], bool]:
        """(identity, changed since the last call)."""
        detector = getattr(self.model, "detector", self.model)
        key = (getattr(self.model, "model_id", None), str(getattr(detector, "bundle_dir", "")))
        if key == self._key:
            return self.value, False
        self._key, self.value = key, model_identity(self.model)
        return self.value, True


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def online(model_id: str | None, bundle_sha: str | None, **extra) -> bytes:
    return json.dumps({"state": "online", "model_id": model_id, "bundle_sha256": bundle_sha, "since": _now(),
                       **extra}).encode()


def offline(reason: str) -> bytes:
    return json.dumps({"state": "offline", "reason": reason}).encode()

