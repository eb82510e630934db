"""The backend protocol: ``load``, ``input_spec``, ``infer(batch) -> dict[str, ndarray]``, ``close``.

Public methods validate, then call the ``_impl`` methods a backend overrides.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import InputError, TocoadError


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int | None, ...]   # None: dynamic dimension
    dtype: str                      # numpy dtype name


class Backend:
    """Base class of every inference backend."""

    name = "base"

    def __init__(self, model_path: str | Path, *, threads: int | None = None, **options: Any):
        self.model_path = Path(model_path)
        self.threads = threads
        self.options = options
        self._loaded = False

    # -- protocol ---------------------------------------------------------------------------------
    def load(self) -> "Backend":
        if not self._loaded:
            self._load_impl()
            self._loaded = True
        return self

    def input_spec(self) -> TensorSpec:
        self._require_loaded()
        return self._input_spec_impl()

    def max_batch(self) -> int | None:
        """The most frames one ``infer`` call takes: the fixed batch size of the model's input (1 for a batch-1
        export), or None for a dynamic batch axis without a limit (ONNX exported with ``--dynamic-batch``)."""
        shape = self.input_spec().shape
        return 1 if not shape else None if shape[0] is None else int(shape[0])

    def output_names(self) -> list[str]:
        self._require_loaded()
        return self._output_names_impl()

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Validate ``batch`` against ``input_spec()`` (shape, dtype, contiguity), then run."""
        self._require_loaded()
        spec = self._input_spec_impl()
        if not isinstance(batch, np.ndarray):
            raise InputError("backend input must be a numpy array", expected=f"ndarray {spec.dtype}",
                             got=type(batch).__name__)
        if batch.dtype != np.dtype(spec.dtype):
            raise InputError(f"backend input '{spec.name}' has the wrong dtype", expected=spec.dtype,
                             got=str(batch.dtype))
        if batch.ndim != len(spec.shape) or any(
                s is not None and s != b for s, b in zip(spec.shape, batch.shape)):
            raise InputError(f"backend input '{spec.name}' has the wrong shape", expected=str(spec.shape),
                             got=str(batch.shape))
        if batch.dtype.kind == "f" and not np.isfinite(batch).all():
            raise InputError(f"backend input '{spec.name}' holds NaN or inf", expected="finite values",
                             got="non-finite values")
        if not batch.flags.c_contiguous:
            batch = np.ascontiguousarray(batch)
        return self._infer_impl(batch)

    def describe(self) -> dict[str, Any]:
        """How this backend runs its model, where that depends on the machine (for reports); {} if not."""
        return {}

    def close(self) -> None:
        if self._loaded:
            self._close_impl()
            self._loaded = False

    def __enter__(self) -> "Backend":
        return self.load()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- to override --------------------------------------------------------------------------------
    def _load_impl(self) -> None:
        raise NotImplementedError

    def _input_spec_impl(self) -> TensorSpec:
        raise NotImplementedError

    def _output_names_impl(self) -> list[str]:
        raise NotImplementedError

    def _infer_impl(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _close_impl(self) -> None:
        pass

    def _require_loaded(self) -> None:
        if not self._loaded:
            raise TocoadError(f"{self.name} backend is not loaded", fix="call load() or use it as a context manager")
