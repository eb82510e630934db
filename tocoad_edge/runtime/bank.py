"""The memory bank of a bundle, read from its verified ``.npy`` file: what the detector searches and what the
TensorRT search engine is built from, checked the same way for both."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..bundle.manifest import Manifest
from ..errors import BundleError
from .arrays import Float32Array


def load_bank(path: Path, manifest: Manifest) -> Float32Array:
    """``path`` (already hashed against the manifest) as a contiguous float32 ``[entries, dim]`` array of finite
    values; a ``BundleError`` saying what was expected otherwise."""
    try:
        bank: np.ndarray = np.load(path, allow_pickle=False)       # no pickles: an array or an error
    except (OSError, ValueError) as exc:
        raise BundleError(f"cannot load memory bank {path}", expected="a numeric .npy array (no pickles)",
                          got=str(exc)) from None
    spec = manifest.memory_bank
    if bank.ndim != 2 or bank.shape != (spec.entries, spec.dim):
        raise BundleError("memory bank has the wrong shape", expected=f"({spec.entries}, {spec.dim})",
                          got=str(bank.shape), fix="re-export the bundle")
    bank = np.ascontiguousarray(bank, dtype=np.float32)
    if not np.isfinite(bank).all():
        raise BundleError("memory bank holds NaN or inf", expected="finite float values", got="non-finite values",
                          fix="re-export the bundle")
    return bank
