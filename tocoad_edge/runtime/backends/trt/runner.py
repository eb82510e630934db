"""TensorRT backend: runs a bundle's engine with tensorrt + pycuda (both imported inside, when chosen).

The engine's fingerprint (manifest ``engines`` or the device's ``engines.json``) is compared with this device,
and the engine's bytes with their recorded sha256, before the engine is deserialised; a mismatch raises naming
both. Its I/O tensors are checked against the manifest (``bindings.py``) before any buffer is bound. API
differences between TensorRT versions live in ``compat.py``.
"""
from __future__ import annotations

import functools
import logging
from typing import Any

import numpy as np

from ....bundle.manifest import EngineFingerprint, Manifest
from ....errors import BackendUnavailableError, BundleError, EngineIncompatibleError
from ....bundle.engine_record import read_verified_engine
from ..base import Backend, TensorSpec
from .bindings import check_engine_io
from .compat import TrtApi, execute, import_tensorrt, io_tensors
from .fingerprint import DeviceInfo, check_engine, describe_input, input_mismatches, mismatches

log = logging.getLogger("tocoad_edge.runtime")

# Detector precision → engine precisions that serve it (a float request is served by an FP16 or FP32 engine).
ENGINE_PRECISIONS = {"int8": ("int8",), "fp32": ("fp32", "fp16"), "fp16": ("fp16",)}


def _import_pycuda() -> Any:
    """``pycuda.driver`` (untyped, like tensorrt: its objects are Any here)."""
    try:
        import pycuda.driver as cuda
    except ImportError as exc:
        raise BackendUnavailableError("pycuda is not installed", got=str(exc),
                                      fix="pip install pycuda (needs the CUDA toolkit), or use backend='onnxrt'"
                                      ) from None
    return cuda


@functools.lru_cache(maxsize=1)
def current_device(device_index: int = 0) -> DeviceInfo:
    """TensorRT version, GPU name and compute capability of this machine (no engine touched)."""
    trt = import_tensorrt()
    cuda = _import_pycuda()
    try:
        cuda.init()
        dev = cuda.Device(device_index)
        major, minor = dev.compute_capability()
        name = dev.name()
    except Exception as exc:  # noqa: BLE001 - pycuda raises its own errors when there is no driver / GPU
        raise BackendUnavailableError("no CUDA device is usable", got=f"{type(exc).__name__}: {exc}",
                                      fix="run on a machine with an NVIDIA GPU and driver, or use backend='onnxrt'"
                                      ) from None
    return DeviceInfo(tensorrt_version=trt.__version__, gpu_name=name, compute_capability=f"{major}.{minor}")


def engine_matches_device(fp: EngineFingerprint, device: DeviceInfo | None = None) -> bool:
    """True when ``fp`` was built for this device; False when it was not, or there is no TensorRT / GPU here."""
    if device is None:
        try:
            device = current_device()
        except BackendUnavailableError as exc:
            log.debug("no TensorRT device: %s", exc)
            return False
    return not mismatches(fp, device)


def engine_for(manifest: Manifest, precision: str, device: DeviceInfo | None = None) -> EngineFingerprint:
    """The bundle's engine for ``precision`` that runs on this device at batch 1 of the bundle's input, or
    ``EngineIncompatibleError`` naming every candidate's differences and this device."""
    wanted = ENGINE_PRECISIONS.get(precision, (precision,))
    candidates = [e for e in manifest.engines if e.precision in wanted]
    if not candidates:
        raise BundleError(f"this bundle has no TensorRT engine for precision {precision}",
                          expected=f"an engine of precision {' or '.join(wanted)}",
                          got=f"engines: {[(e.file, e.precision) for e in manifest.engines] or 'none'}",
                          fix=f"build one on this device: tocoad-export engine BUNDLE --precision "
                              f"{'int8' if precision == 'int8' else 'fp16'}")
    device = device or current_device()
    hwc = (manifest.input.height, manifest.input.width, manifest.input.channels)
    reasons = []
    for e in candidates:
        diff = mismatches(e, device) + input_mismatches(e, hwc)
        if not diff:
            return e
        reasons.append(f"{e.file} (TensorRT {e.tensorrt_version} on {e.gpu_name}, sm {e.compute_capability}, input "
                       f"{describe_input(e)}): {'; '.join(diff)}")
    raise EngineIncompatibleError(
        f"no {precision} TensorRT engine of this bundle fits this device and input",
        expected=f"an engine for {device.describe()}, input 1×{'×'.join(map(str, hwc))}",
        got=" | ".join(reasons),
        fix="build the engine on this device: tocoad-export engine BUNDLE, or use backend='onnxrt'")


class TensorRTBackend(Backend):
    name = "tensorrt"

    def _fingerprint(self) -> EngineFingerprint:
        manifest: Manifest | None = self.options.get("manifest")
        if manifest is None:
            raise BundleError("the TensorRT backend needs the bundle manifest (engine fingerprint)",
                              fix="open the engine through Detector.open(bundle, backend='tensorrt')")
        for e in manifest.engines:
            if e.file == self.model_path.name:
                return e
        raise BundleError(f"{self.model_path.name} has no fingerprint in the manifest",
                          expected=f"one of {[e.file for e in manifest.engines]}", got=self.model_path.name)

    def _load_impl(self) -> None:
        fp = self._fingerprint()
        device = current_device()
        check_engine(fp, device)                      # BEFORE any byte is deserialised
        # size + sha256 (manifest, or the device's engines.json) of exactly the bytes TensorRT will deserialise
        data = read_verified_engine(self.model_path.parent, self.options["manifest"], fp.file)
        trt = import_tensorrt()
        cuda = _import_pycuda()
        self._api = TrtApi.of(trt)
        self._cuda = cuda
        self._ctx = cuda.Device(0).retain_primary_context()
        self._ctx.push()
        try:
            self._logger = trt.Logger(trt.Logger.WARNING)
            self._runtime = trt.Runtime(self._logger)
            self._engine = self._runtime.deserialize_cuda_engine(data)
            if self._engine is None:
                raise EngineIncompatibleError(f"TensorRT could not deserialise {self.model_path.name}",
                                              expected=f"an engine for {device.describe()}",
                                              got="deserialize_cuda_engine returned None",
                                              fix="rebuild it: tocoad-export engine BUNDLE")
            self._context = self._engine.create_execution_context()
            self._stream = cuda.Stream()
            inputs, self._outputs = io_tensors(trt, self._engine)
            if len(inputs) != 1:
                raise BundleError("the engine must have exactly one input", got=str(inputs))
            self._input_name = inputs[0]
            # every I/O tensor's name, shape and dtype against the manifest, before a buffer is bound or used
            check_engine_io(trt, self._engine, self._context, inputs, self._outputs, self.options["manifest"], fp)
            shape = tuple(self._engine.get_tensor_shape(self._input_name))
            self._dynamic = any(d < 0 for d in shape)
            self._max_shape = (tuple(self._engine.get_tensor_profile_shape(self._input_name, 0)[2])
                               if self._dynamic else shape)
            self._input = TensorSpec(self._input_name, tuple(None if d < 0 else int(d) for d in shape),
                                     np.dtype(trt.nptype(self._engine.get_tensor_dtype(self._input_name))).name)
            self._buffers: dict[str, tuple[np.ndarray, Any]] = {}     # name → (page-locked host, pycuda device)
            if self._dynamic:
                self._context.set_input_shape(self._input_name, self._max_shape)
            for name in [self._input_name, *self._outputs]:
                shp = self._max_shape if name == self._input_name else tuple(self._context.get_tensor_shape(name))
                dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(name)))
                host = cuda.pagelocked_empty(int(np.prod(shp)), dtype)
                dev = cuda.mem_alloc(host.nbytes)
                self._buffers[name] = (host, dev)
                self._context.set_tensor_address(name, int(dev))
        finally:
            self._ctx.pop()

    def _input_spec_impl(self) -> TensorSpec:
        return self._input

    def _output_names_impl(self) -> list[str]:
        return list(self._outputs)

    def max_batch(self) -> int | None:
        """A dynamic engine takes up to its optimisation profile's largest batch (tocoad-export engine)."""
        self._require_loaded()
        return int(self._max_shape[0])

    def _infer_impl(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        cuda = self._cuda
        if self._dynamic and batch.shape[0] > self._max_shape[0]:
            from ....errors import InputError

            raise InputError("batch larger than the engine's optimisation profile",
                             expected=f"≤ {self._max_shape[0]}", got=str(batch.shape[0]))
        self._ctx.push()
        try:
            if self._dynamic:
                self._context.set_input_shape(self._input_name, batch.shape)
            host, dev = self._buffers[self._input_name]
            host[:batch.size] = batch.ravel()
            cuda.memcpy_htod_async(dev, host, self._stream)
            bindings = [int(self._buffers[n][1]) for n in [self._input_name, *self._outputs]]
            if not execute(self._api, self._context, self._stream.handle, bindings):
                from ....errors import TocoadError

                raise TocoadError("TensorRT execution failed", fix="check the TensorRT log above")
            out = {}
            for name in self._outputs:
                host, dev = self._buffers[name]
                cuda.memcpy_dtoh_async(host, dev, self._stream)
            self._stream.synchronize()
            for name in self._outputs:
                shp = tuple(self._context.get_tensor_shape(name))
                out[name] = self._buffers[name][0][:int(np.prod(shp))].reshape(shp).copy()
            return out
        finally:
            self._ctx.pop()

    def _close_impl(self) -> None:
        if getattr(self, "_ctx", None) is None:
            return
        self._ctx.push()
        try:
            for _, dev in getattr(self, "_buffers", {}).values():
                dev.free()
            self._buffers = {}
            self._context = self._engine = self._runtime = None
        finally:
            self._ctx.pop()
            self._ctx.detach()
            self._ctx = None
