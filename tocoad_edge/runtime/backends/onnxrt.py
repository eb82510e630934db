"""ONNX Runtime backend (CPU by default; CUDA provider where available). Runs FP32 and Q/DQ INT8 models.

Backend options: ``providers`` (ONNX Runtime's list), ``qdq``: how the CPU provider runs a Q/DQ INT8 model —
``"fused"`` (ONNX Runtime's int8 kernels), ``"as-written"`` (each QuantizeLinear/DequantizeLinear pair as written,
float convolutions: what the export's INT8 gate measured), ``"auto"`` (the default: as written where the fused
kernels saturate, ``cpu_int8.py``; fused elsewhere).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import BackendUnavailableError, BundleError, ConfigError
from .base import Backend, TensorSpec
from .cpu_int8 import int8_sums_saturate

log = logging.getLogger(__name__)
QDQ_MODES = ("auto", "fused", "as-written")

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


def _is_int8_model(model_path: Path, manifest: Any) -> bool:
    """``model_path`` is the manifest's INT8 model (the runtime never guesses from the graph)."""
    models = getattr(manifest, "models", None) or {}
    int8 = models.get("int8")
    return int8 is not None and Path(int8.file).name == model_path.name


class OnnxRuntimeBackend(Backend):
    name = "onnxrt"
    qdq_as_written = False

    def _runs_qdq_as_written(self, providers: list[Any]) -> bool:
        """Whether this session runs the Q/DQ pairs as written (the option ``qdq``, see the module's docstring)."""
        mode = self.options.get("qdq", "auto")
        if mode not in QDQ_MODES:
            raise ConfigError("unknown qdq mode for the ONNX Runtime backend", expected=f"one of {list(QDQ_MODES)}",
                              got=repr(mode), fix="qdq='auto' runs the INT8 model as its gate measured it")
        if mode != "auto":
            return bool(mode == "as-written")
        if list(providers) != ["CPUExecutionProvider"] or not _is_int8_model(self.model_path,
                                                                             self.options.get("manifest")):
            return False
        return int8_sums_saturate()

    def _load_impl(self) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendUnavailableError("onnxruntime is not installed", got=str(exc),
                                          fix="pip install onnxruntime") from None
        opts = session_options(ort, self.threads)
        providers = self.options.get("providers") or ["CPUExecutionProvider"]
        self.qdq_as_written = self._runs_qdq_as_written(providers)
        if self.qdq_as_written:
            # the fused u8s8 kernels would saturate here: run the scores the INT8 gate measured
            opts.add_session_config_entry("session.disable_quant_qdq", "1")
            why = ("qdq='as-written'" if self.options.get("qdq", "auto") != "auto" else
                   "this CPU has no VNNI; ONNX Runtime's fused int8 kernels would saturate")
            log.info("%s: Q/DQ pairs run as written (%s). The FP32 model is faster on a CPU.", self.model_path.name,
                     why)
        try:
            self._session = ort.InferenceSession(str(self.model_path), sess_options=opts, providers=providers)
        except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types
            raise BundleError(f"ONNX Runtime cannot load {self.model_path}", got=f"{type(exc).__name__}: {exc}",
                              fix="re-export the bundle") from None
        inp = self._session.get_inputs()[0]
        self._input = TensorSpec(inp.name, tuple(d if isinstance(d, int) else None for d in inp.shape),
                                 _DTYPES.get(inp.type, inp.type))
        self._outputs = [o.name for o in self._session.get_outputs()]

    def describe(self) -> dict[str, Any]:
        """``{"qdq": "as-written" | "fused"}`` for the bundle's INT8 model, {} for others."""
        if not _is_int8_model(self.model_path, self.options.get("manifest")) and not self.qdq_as_written:
            return {}
        return {"qdq": "as-written" if self.qdq_as_written else "fused"}

    def _input_spec_impl(self) -> TensorSpec:
        return self._input

    def _output_names_impl(self) -> list[str]:
        return list(self._outputs)

    def _infer_impl(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        values = self._session.run(self._outputs, {self._input.name: batch})
        return dict(zip(self._outputs, values))

    def _close_impl(self) -> None:
        self._session = None
