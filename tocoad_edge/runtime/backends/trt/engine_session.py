"""One deserialised TensorRT engine ready to run: execution context, CUDA stream, and page-locked host + device
buffers sized for its largest input (the optimisation profile's max). Shared by the backbone backend
(``runner.TensorRTBackend``) and the memory-bank search (``search_runner.TensorRTGraphSearch``); tensorrt and
pycuda are imported when a session is opened. The caller checks the fingerprint and the bytes' sha256 first.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import numpy as np

from ....errors import BackendUnavailableError, BundleError, EngineIncompatibleError, TocoadError
from .compat import TrtApi, execute, import_tensorrt, io_tensors
from .fingerprint import DeviceInfo


def import_pycuda() -> Any:
    """``pycuda.driver`` (untyped, like tensorrt: its objects are Any here)."""
    try:
        import pycuda.driver as cuda
    except ImportError as exc:
        raise BackendUnavailableError("pycuda is not installed", got=str(exc),
                                      fix="pip install pycuda (needs the CUDA toolkit), or use backend='onnxrt'"
                                      ) from None
    return cuda


class EngineSession:
    """``data``: verified engine bytes (one input tensor); ``name``: the engine file, for messages."""

    def __init__(self, data: bytes, name: str, device: DeviceInfo):
        self.trt = trt = import_tensorrt()
        self.cuda = cuda = import_pycuda()
        self.api = TrtApi.of(trt)
        self.name = name
        self._buffers: dict[str, tuple[np.ndarray, Any]] = {}     # name → (page-locked host, pycuda device)
        self._ctx: Any = cuda.Device(0).retain_primary_context()
        self._ctx.push()
        try:
            self._logger = trt.Logger(trt.Logger.WARNING)
            self._runtime = trt.Runtime(self._logger)
            self.engine = self._runtime.deserialize_cuda_engine(data)
            if self.engine is None:
                raise EngineIncompatibleError(f"TensorRT could not deserialise {name}",
                                              expected=f"an engine for {device.describe()}",
                                              got="deserialize_cuda_engine returned None",
                                              fix="rebuild it: tocoad-export engine BUNDLE")
            self.context = self.engine.create_execution_context()
            self._stream = cuda.Stream()
            inputs, self.outputs = io_tensors(trt, self.engine)
            if len(inputs) != 1:
                raise BundleError(f"engine {name} must have exactly one input", got=str(inputs))
            self.input_name = inputs[0]
            self.input_shape = tuple(int(d) for d in self.engine.get_tensor_shape(self.input_name))
            self.dynamic = any(d < 0 for d in self.input_shape)
            self.max_shape = (tuple(int(d) for d in self.engine.get_tensor_profile_shape(self.input_name, 0)[2])
                              if self.dynamic else self.input_shape)
            self.input_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.input_name)))
        except BaseException:
            self._ctx.pop()
            self._ctx.detach()          # no buffer exists yet: only the context reference to give back
            self._ctx = None
            raise
        self._ctx.pop()

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """This engine's CUDA context made current (every TensorRT / pycuda call runs inside one)."""
        self._ctx.push()
        try:
            yield
        finally:
            self._ctx.pop()

    def allocate(self) -> None:
        """Buffers for the largest input and the outputs it resolves to; every tensor address set once."""
        with self.active():
            if self.dynamic:
                self.context.set_input_shape(self.input_name, self.max_shape)
            for name in [self.input_name, *self.outputs]:
                shp = self.max_shape if name == self.input_name else tuple(self.context.get_tensor_shape(name))
                dtype = np.dtype(self.trt.nptype(self.engine.get_tensor_dtype(name)))
                host = self.cuda.pagelocked_empty(int(np.prod(shp)), dtype)
                dev = self.cuda.mem_alloc(host.nbytes)
                self._buffers[name] = (host, dev)
                self.context.set_tensor_address(name, int(dev))

    def run(self, array: np.ndarray) -> dict[str, np.ndarray]:
        """One execution on ``array`` (its first dimension within the profile): output name → a host copy."""
        cuda = self.cuda
        with self.active():
            if self.dynamic:
                self.context.set_input_shape(self.input_name, array.shape)
            host, dev = self._buffers[self.input_name]
            host[:array.size] = array.ravel()
            cuda.memcpy_htod_async(dev, host, self._stream)
            bindings = [int(self._buffers[n][1]) for n in [self.input_name, *self.outputs]]
            if not execute(self.api, self.context, self._stream.handle, bindings):
                raise TocoadError(f"TensorRT execution of {self.name} failed", fix="check the TensorRT log above")
            for name in self.outputs:
                host, dev = self._buffers[name]
                cuda.memcpy_dtoh_async(host, dev, self._stream)
            self._stream.synchronize()
            out = {}
            for name in self.outputs:
                shp = tuple(self.context.get_tensor_shape(name))
                out[name] = self._buffers[name][0][:int(np.prod(shp))].reshape(shp).copy()
            return out

    def close(self) -> None:
        if self._ctx is None:
            return
        self._ctx.push()
        try:
            for _, dev in self._buffers.values():
                dev.free()
            self._buffers = {}
            self.context = self.engine = self._runtime = None
        finally:
            self._ctx.pop()
            self._ctx.detach()
            self._ctx = None
