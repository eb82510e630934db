"""``search: graph``: exact search run as an ONNX model (``distance_graph.py``) by ONNX Runtime.

The same arithmetic as ``ExactSearch`` (augmented GEMM + row minimum), but the GEMM is MLAS's and the graph can
run wherever the backbone runs (CPU here; a CUDA / TensorRT execution provider given as ``providers``). The graph
is built at load time from the verified ``coreset.npy``, so the bundle carries no second copy of the bank and
the manifest's sha256 of the bank covers it.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import BackendUnavailableError, BundleError, TocoadError
from ..arrays import Float32Array
from .base import NearestNeighbourSearch
from .distance_graph import (DEFAULT_EXPECTED_QUERIES, DEFAULT_MAX_TEMP_BYTES, INPUT_NAME, augmented_width,
                             chunk_entries, distance_graph)


class GraphSearch(NearestNeighbourSearch):
    name = "graph"

    def __init__(self, bank: np.ndarray, *, threads: int | None = None, providers: list[str] | None = None,
                 max_temp_bytes: int = DEFAULT_MAX_TEMP_BYTES, expected_queries: int = DEFAULT_EXPECTED_QUERIES):
        super().__init__(bank, threads)
        self.width = augmented_width(self.dim)
        self.chunk = min(chunk_entries(max_temp_bytes, expected_queries), self.entries)
        self.max_temp_bytes = int(max_temp_bytes)
        self.providers = list(providers or ["CPUExecutionProvider"])
        self.expected_queries = int(expected_queries)
        self._bank = bank           # the caller's array, not a copy: the graph is rebuilt from it on set_threads
        self._session: Any | None = None     # an onnxruntime.InferenceSession (onnxruntime is untyped)
        self._open()

    def _open(self) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendUnavailableError("search 'graph' needs onnxruntime", got=str(exc),
                                          fix="pip install onnxruntime, or use search='exact'") from None
        from ..backends.onnxrt import session_options

        try:
            model = distance_graph(self._bank, max_temp_bytes=self.max_temp_bytes,
                                   expected_queries=self.expected_queries)
            self._session = ort.InferenceSession(model, sess_options=session_options(ort, self.threads),
                                                 providers=self.providers)
        except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types
            raise BundleError("ONNX Runtime cannot load the memory-bank search graph",
                              got=f"{type(exc).__name__}: {exc}", fix="use search='exact'") from None

    def set_threads(self, threads: int | None) -> None:
        changed = (int(threads) if threads else None) != self.threads
        super().set_threads(threads)
        if changed and self._session is not None:
            self._open()            # ORT fixes its intra-op pool when the session is created

    def _query_impl(self, q: Float32Array) -> Float32Array:
        if self._session is None:
            raise TocoadError("this graph search is closed", fix="open the bundle again")
        qa = np.zeros((len(q), self.width), dtype=np.float32)
        np.multiply(q, np.float32(-2.0), out=qa[:, :self.dim])
        qa[:, self.dim] = 1.0
        best: Float32Array = self._session.run(None, {INPUT_NAME: qa})[0]     # float32 [n]
        best += np.einsum("ij,ij->i", q, q)
        np.maximum(best, 0.0, out=best)
        return np.sqrt(best)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "chunk_entries": self.chunk, "max_temp_bytes": self.max_temp_bytes,
                "providers": self.providers}

    def close(self) -> None:
        self._session = None
