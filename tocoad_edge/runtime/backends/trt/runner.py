"""TensorRT backend: runs a bundle's engine with tensorrt + pycuda (both imported inside, when chosen).

The engine's fingerprint (manifest ``engines`` or the device's ``engines.json``) is compared with this device,
and the engine's bytes with their recorded sha256, before the engine is deserialised; a mismatch raises naming
both. Its I/O tensors are checked against the manifest (``bindings.py``) before any buffer is bound. API
differences between TensorRT versions live in ``compat.py``.
"""
from __future__ import annotations

import functools
import logging

import numpy as np

from ....bundle.manifest import EngineFingerprint, Manifest
from ....errors import BackendUnavailableError, BundleError, EngineIncompatibleError, TocoadError
from ....bundle.engine_record import read_verified_engine
from ..base import Backend, TensorSpec
from .bindings import check_engine_io
from .compat import import_tensorrt
from .engine_session import EngineSession, import_pycuda
from .fingerprint import DeviceInfo, check_engine, describe_input, input_mismatches, mismatches

log = logging.getLogger("tocoad_edge.runtime")

# Detector precision → engine precisions that serve it (a float request is served by an FP16 or FP32 engine).
ENGINE_PRECISIONS = {"int8": ("int8",), "fp32": ("fp32", "fp16"), "fp16": ("fp16",)}


@functools.lru_cache(maxsize=1)
def current_device(device_index: int = 0) -> DeviceInfo:
    """TensorRT version, GPU name and compute capability of this machine (no engine touched)."""
    trt = import_tensorrt()
    cuda = import_pycuda()
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
    candidates = [e for e in manifest.engines if e.precision in wanted and e.role == "backbone"]
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
            if e.file == self.model_path.name and e.role == "backbone":
                return e
        raise BundleError(f"{self.model_path.name} has no fingerprint in the manifest",
                          expected=f"one of {[e.file for e in manifest.engines]}", got=self.model_path.name)

    def _load_impl(self) -> None:
        fp = self._fingerprint()
        device = current_device()
        check_engine(fp, device)                      # BEFORE any byte is deserialised
        # size + sha256 (manifest, or the device's engines.json) of exactly the bytes TensorRT will deserialise
        data = read_verified_engine(self.model_path.parent, self.options["manifest"], fp.file)
        session = EngineSession(data, self.model_path.name, device)
        self._session: EngineSession | None = session
        try:
            with session.active():
                # every I/O tensor's name, shape and dtype against the manifest, before a buffer is bound or used
                check_engine_io(session.trt, session.engine, session.context, [session.input_name],
                                session.outputs, self.options["manifest"], fp)
            session.allocate()
        except BaseException:
            session.close()
            raise
        self._input = TensorSpec(session.input_name, tuple(None if d < 0 else int(d) for d in session.input_shape),
                                 session.input_dtype.name)

    def _input_spec_impl(self) -> TensorSpec:
        return self._input

    def _live(self) -> EngineSession:
        if self._session is None:
            raise TocoadError("this TensorRT backend is closed", fix="open the bundle again")
        return self._session

    def _output_names_impl(self) -> list[str]:
        return list(self._live().outputs)

    def max_batch(self) -> int | None:
        """A dynamic engine takes up to its optimisation profile's largest batch (tocoad-export engine)."""
        self._require_loaded()
        return int(self._live().max_shape[0])

    def _infer_impl(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        session = self._live()
        limit = session.max_shape[0]
        if session.dynamic and batch.shape[0] > limit:
            from ....errors import InputError

            raise InputError("batch larger than the engine's optimisation profile", expected=f"≤ {limit}",
                             got=str(batch.shape[0]))
        return session.run(batch)

    def _close_impl(self) -> None:
        session = getattr(self, "_session", None)
        if session is not None:
            session.close()
            self._session = None
