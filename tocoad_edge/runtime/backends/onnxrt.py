"""ONNX Runtime backend (CPU by default; CUDA provider where available). Runs FP32 and Q/DQ INT8 models."""
from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import BackendUnavailableError, BundleError
from .base import Backend, TensorSpec

_DTYPES = {"tensor(uint8)": "uint8", "tensor(float)": "float32", "tensor(float16)": "float16"}


def session_options(ort: Any, threads: int | None) -> Any:
    """The options of every session the runtime opens (backbone and ``search: graph``): an
    ``ort.SessionOptions`` of the ``onnxruntime`` module ``ort`` (both untyped).

    With ``threads`` > 1 the intra-op pool spin-waits between the operators of a run (waking a blocked thread
    for each of a backbone's ~100 small operators costs more than the work split saves) and stops spinning at the
    end of the run (``session.force_spinning_stop``): a worker left spinning after ``run()`` holds a core the
    search (BLAS, hnswlib, the graph search's own session) needs right after the backbone, which made two
    threads slower than one for a single frame on a 2-core machine."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        if int(threads) > 1:
            opts.add_session_config_entry("session.force_spinning_stop", "1")
    opts.log_severity_level = 3
    return opts


class OnnxRuntimeBackend(Backend):
    name = "onnxrt"

    def _load_impl(self) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendUnavailableError("onnxruntime is not installed", got=str(exc),
                                          fix="pip install onnxruntime") from None
        opts = session_options(ort, self.threads)
        providers = self.options.get("providers") or ["CPUExecutionProvider"]
        try:
            self._session = ort.InferenceSession(str(self.model_path), sess_options=opts, providers=providers)
        except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types
            raise BundleError(f"ONNX Runtime cannot load {self.model_path}", got=f"{type(exc).__name__}: {exc}",
                              fix="re-export the bundle") from None
        inp = self._session.get_inputs()[0]
        self._input = TensorSpec(inp.name, tuple(d if isinstance(d, int) else None for d in inp.shape),
                                 _DTYPES.get(inp.type, inp.type))
        self._outputs = [o.name for o in self._session.get_outputs()]

    def _input_spec_impl(self) -> TensorSpec:
        return self._input

    def _output_names_impl(self) -> list[str]:
        return list(self._outputs)

    def _infer_impl(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        values = self._session.run(self._outputs, {self._input.name: batch})
        return dict(zip(self._outputs, values))

    def _close_impl(self) -> None:
        self._session = None
