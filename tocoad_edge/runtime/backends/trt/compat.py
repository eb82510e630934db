"""TensorRT 8.6 / 10 / 11 API differences: the ONE place that knows them.

Versions are parsed into integer tuples and compared as tuples, never as strings. The runner (``runner.py``) and
the builder (``build.py``) ask this module which call to make; the builder's network creation, parser, config and
workspace calls are Polygraphy's, which absorbs those differences itself (first two rows and the workspace row).

| what                                  | 8.6                                | 10.x                       | 11.x                    |
| ------------------------------------- | ---------------------------------- | -------------------------- | ----------------------- |
| network creation flag                 | ``1 << EXPLICIT_BATCH``            | 0 (explicit batch always)  | ``1 << STRONGLY_TYPED`` |
| FP16 engine                           | ``BuilderFlag.FP16``               | ``BuilderFlag.FP16``       | FP16 ONNX, strongly typed (the flag is gone) |
| INT8 engine from Q/DQ ONNX            | ``INT8`` + ``FP16`` (mixed)        | ``INT8`` + ``FP16`` (mixed)| strongly typed, no flag; float parts from an FP16 ONNX |
| workspace limit                       | ``set_memory_pool_limit(WORKSPACE)`` (≥ 8.4) | same             | same                    |
| I/O                                   | tensor-name API (≥ 8.5)            | tensor-name API only       | same                    |
| execution                             | ``execute_async_v3`` (≥ 8.5)       | ``execute_async_v3``       | same                    |
| older than 8.5                        | ``execute_v2`` with a bindings list (fallback)  |               |                         |
"""  # noqa: E501 - the table of API differences is wider than a line
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ....errors import BackendUnavailableError

MIN_VERSION = (8, 6)


def parse_version(text: str) -> tuple[int, ...]:
    """``"10.3.0.26"`` → ``(10, 3, 0, 26)``; suffixes such as ``.post1`` or ``rc1`` are ignored."""
    parts = []
    for p in str(text).strip().split("."):
        m = re.match(r"\d+", p)
        if not m:
            break
        parts.append(int(m.group()))
    if not parts:
        raise ValueError(f"not a version: {text!r}")
    return tuple(parts)


def import_tensorrt() -> Any:     # the tensorrt module: untyped, so its objects are Any everywhere
    """``import tensorrt``, refusing stub-only or namespace packages (e.g. ``tensorrt-stubs`` without the library)."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise BackendUnavailableError("TensorRT is not installed", got=str(exc),
                                      fix="on a Jetson: sudo apt-get install python3-libnvinfer (JetPack) in a "
                                          "venv made with --system-site-packages; on an x86-64 GPU machine: "
                                          "pip install 'tocoad-edge[jetson]'; or use backend='onnxrt'") from None
    if not hasattr(trt, "__version__") or not hasattr(trt, "Runtime"):
        raise BackendUnavailableError("the 'tensorrt' module found is not the TensorRT library",
                                      got=str(getattr(trt, "__path__", trt)),
                                      fix="install the real TensorRT wheels (a stub or namespace package shadows it)")
    return trt


@dataclass(frozen=True)
class TrtApi:
    version: tuple[int, ...]

    @classmethod
    def of(cls, trt: Any) -> "TrtApi":
        return cls(parse_version(trt.__version__))

    @property
    def supported(self) -> bool:
        return self.version[:2] >= MIN_VERSION

    @property
    def strongly_typed_only(self) -> bool:
        return self.version >= (11,)

    @property
    def has_strong_typing(self) -> bool:
        """``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` (the search engine's per-tensor FP16/FP32 types)."""
        return self.version >= (10,)

    @property
    def needs_explicit_batch_flag(self) -> bool:
        return self.version < (10,)

    @property
    def has_implicit_int8(self) -> bool:
        return self.version < (11,)

    @property
    def has_execute_async_v3(self) -> bool:
        return self.version >= (8, 5)

    @property
    def has_memory_pools(self) -> bool:
        return self.version >= (8, 4)


def precision_flags(api: TrtApi, precision: str) -> tuple[str, ...]:
    """``BuilderFlag`` names for an engine of ``precision``: fp16 → FP16; int8 (explicit Q/DQ) → INT8 + FP16, the
    mixed precision trtexec ``--int8 --fp16`` and NVIDIA's explicit-quantization guide use, so layers outside Q/DQ
    (kept in float by the accuracy gate) run in FP16, not FP32; TensorRT 11 → none (strongly typed: the ONNX's
    types are the precision)."""
    if api.strongly_typed_only:
        return ()
    return {"fp16": ("FP16",), "int8": ("INT8", "FP16")}[precision]


def set_precision_flags(trt: Any, api: TrtApi, config: Any, precision: str) -> None:
    for name in precision_flags(api, precision):
        config.set_flag(getattr(trt.BuilderFlag, name))


def io_tensors(trt: Any, engine: Any) -> tuple[list[str], list[str]]:
    """(input names, output names) with the tensor-name API (TensorRT ≥ 8.5)."""
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
    outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
    return inputs, outputs


def execute(api: TrtApi, context: Any, stream_handle: int, bindings: list[int]) -> bool:
    """Run one inference: ``execute_async_v3`` (addresses already set per tensor) or ``execute_v2(bindings)``."""
    if api.has_execute_async_v3:
        return bool(context.execute_async_v3(stream_handle))
    return bool(context.execute_v2(bindings))


# every TensorRT name the backend and the builder use, for tests/runtime/test_trt_api_names.py
RUNTIME_NAMES = {
    "module": ["Logger", "Runtime", "TensorIOMode", "nptype", "__version__"],
    "Logger": ["WARNING", "ERROR"],
    "Runtime": ["deserialize_cuda_engine"],
    "ICudaEngine": ["num_io_tensors", "get_tensor_name", "get_tensor_mode", "get_tensor_shape", "get_tensor_dtype",
                    "get_tensor_profile_shape", "create_execution_context"],
    "IExecutionContext": ["set_tensor_address", "set_input_shape", "execute_async_v3", "execute_v2"],
    "TensorIOMode": ["INPUT", "OUTPUT"],
}
# the TensorRT names our builder code touches itself (Polygraphy makes the builder / parser / config calls)
BUILDER_NAMES = {
    "module": ["BuilderFlag", "MemoryPoolType"],
    "BuilderFlag": ["FP16", "INT8"],
    "MemoryPoolType": ["WORKSPACE"],
}
