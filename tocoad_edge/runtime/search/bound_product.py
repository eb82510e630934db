"""The bounded re-check's bound for one bank share: ``[n, p + 2] · [p + 2, rows]`` for the n queries of a pass, on
the reference path (where the compiled loop of ``kernels.py`` was not built or not asked for, and for a query without
upper bounds).

For two queries or more the product is run by ONNX Runtime, whose MLAS GEMM takes the share as a constant and
prepacks it once, when the session is made. OpenBLAS runs this shape (a tall ``[rows, p + 2]`` matrix, a handful
of queries) as about one pass over the matrix per query, and the ``smoothed-max`` score re-checks nine patches
in its first pass; MLAS reads the matrix about once per pass (figures: docs/performance.md, issue #16 fifth
pass). One query is a plain matrix-vector product, as fast in numpy, and a session call would only add its
overhead.

The session (made by ``prepare``, or else on the first pass of two or more queries) holds the prepacked share:
about as much memory again as the share itself.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..arrays import Float32Array
from ..threads import blas_threads
from .distance_graph import PRODUCT_INPUT_NAME, product_graph

# From this many queries a pass goes to ONNX Runtime.
SESSION_MIN_QUERIES = 2


class BoundProduct:
    """``matrix [rows, k]`` (a view of the bounded search's augmented bank) times a pass's queries."""

    def __init__(self, matrix: Float32Array):
        self.matrix = matrix
        self._session: Any | None = None        # an onnxruntime.InferenceSession (untyped), made on first use

    def __call__(self, queries: Float32Array) -> Float32Array:
        """``queries [n, k]`` float32 → ``[n, rows]`` (query-major)."""
        if len(queries) >= SESSION_MIN_QUERIES:
            session = self._session if self._session is not None else self._open()
            out: Float32Array = session.run(None, {PRODUCT_INPUT_NAME: queries})[0]
            return out
        with blas_threads(1):
            # [rows, n], bank-major: for one query a GEMV; the [n, rows] form took OpenBLAS's slow small-m path
            product: Float32Array = (self.matrix @ queries.T).T
        return product

    def prepare(self) -> None:
        """Make the session now (the bounded search does when it is opened and when its shares are re-cut)."""
        if self._session is None:
            self._open()

    def _open(self) -> Any:
        import onnxruntime as ort          # a core dependency: the backbone runs on it too

        from ..backends.onnxrt import session_options

        self._session = ort.InferenceSession(product_graph(np.ascontiguousarray(self.matrix.T)),
                                             sess_options=session_options(ort, 1), providers=["CPUExecutionProvider"])
        return self._session

    def close(self) -> None:
        self._session = None
