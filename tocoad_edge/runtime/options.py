"""``DetectorOptions``: how to open a bundle, as one value. ``Detector.from_options``, the stream app's
``detector:`` section and the PLC gateway's ``detector:`` section are all this type, so a key means the same
thing everywhere (docs/config.md, "Detector options")."""
from __future__ import annotations

import os
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ..typed_config import require

if TYPE_CHECKING:       # typing.TypeGuard is Python 3.10+
    from typing import TypeGuard

Precision = Literal["fp32", "int8"]
Search = Literal["auto", "hnsw", "exact", "refined", "graph"]
PRECISIONS: tuple[str, ...] = typing.get_args(Precision)
SEARCHES: tuple[str, ...] = typing.get_args(Search)


def is_precision(value: object) -> TypeGuard[Precision]:
    """True for a precision a detector runs (a manifest's model keys are plain strings)."""
    return value in PRECISIONS


@dataclass(frozen=True)
class DetectorOptions:
    bundle: Path | None = None              # folder written by tocoad-export (None only until a config fills it)
    backend: str = "auto"                   # auto, onnxrt, tensorrt, torch (or a registered one)
    precision: Precision = "fp32"
    search: Search = "auto"
    threads: int | None = None              # ONNX Runtime intra-op threads (and search threads); None: its choice
    # Ed25519 public key the bundle must be signed by (bundle/signature.py): a PEM file path, PEM text or bytes.
    # str before Path: YAML PEM text must stay text, not become a Path.
    public_key: str | Path | bytes | None = None
    # Ed25519 public key of the device key that signs engines.sig, the record of engines built on the device
    # (bundle/engine_record.py). Required for TensorRT engines when public_key is set.
    engine_public_key: str | Path | bytes | None = None

    def __post_init__(self) -> None:
        # The YAML loader checks types first (with a did-you-mean); these checks catch Python callers too.
        require(self.bundle is None or isinstance(self.bundle, (str, os.PathLike)), "detector.bundle",
                "a bundle folder path", self.bundle)
        if isinstance(self.bundle, str):    # frozen: set the normalised value once, here
            object.__setattr__(self, "bundle", Path(self.bundle))
        require(isinstance(self.backend, str) and bool(self.backend.strip()), "detector.backend",
                "a backend name: auto, onnxrt, tensorrt or torch", self.backend)
        require(self.precision in PRECISIONS, "detector.precision", f"one of {list(PRECISIONS)}", self.precision)
        require(self.search in SEARCHES, "detector.search", f"one of {list(SEARCHES)}", self.search)
        require(self.threads is None or (isinstance(self.threads, int) and not isinstance(self.threads, bool)
                                         and self.threads >= 1),
                "detector.threads", "null (the backend's choice) or an integer >= 1", self.threads)
        require(self.public_key is None or isinstance(self.public_key, (str, bytes, os.PathLike)),
                "detector.public_key", "null, a PEM file path, PEM text or PEM bytes", type(self.public_key).__name__)
        require(self.engine_public_key is None or isinstance(self.engine_public_key, (str, bytes, os.PathLike)),
                "detector.engine_public_key", "null, a PEM file path, PEM text or PEM bytes",
                type(self.engine_public_key).__name__)
