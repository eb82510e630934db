"""TensorRT engines, built on the target device (engines are not portable).

``build_engine``: ONNX → serialized engine with Polygraphy (``NetworkFromOnnxBytes``, ``CreateConfig``,
``EngineBytesFromNetwork``; imported, with TensorRT, only when an engine is built) — FP16 from the FP32 model, INT8
(mixed with FP16) from the Q/DQ model; workspace limit,
a persistent timing cache). No DLA engines: the implicit-INT8 calibration-cache replay DLA needs has not run on a
device, so ``dla_core`` is refused with the reason until one can test it. ``build_engine_into_bundle``: what
``tocoad-export engine BUNDLE`` runs: verifies the bundle, builds, names the file
``backbone.<fingerprint>.engine``, and records the file's sha256 and the fingerprint in ``engines.json`` (the
manifest, and so its signature, stays as exported).
Every TensorRT API difference is asked of ``tocoad_edge.runtime.backends.trt.compat``.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from ....bundle.engine_record import record_engine
from ....bundle.manifest import EngineFingerprint, FileEntry, Manifest, read_manifest, sha256_file, verify_files
from ....errors import BackendUnavailableError, ExportError
from .compat import TrtApi, import_tensorrt, precision_flags
from .fingerprint import DeviceInfo, make_fingerprint

log = logging.getLogger("tocoad_edge.export")

ENGINE_PRECISIONS = ("fp16", "int8")
DEFAULT_WORKSPACE_MB = 1024
DEFAULT_MAX_BATCH = 8


def timing_cache_path(device: DeviceInfo) -> Path:
    """Per TensorRT version and GPU; ``TOCOAD_TRT_TIMING_CACHE`` overrides the folder."""
    root = Path(os.environ.get("TOCOAD_TRT_TIMING_CACHE", Path.home() / ".cache" / "tocoad_edge"))
    tag = f"{device.tensorrt_version}_{device.gpu_name}_{device.compute_capability}".replace(" ", "-").replace("/", "-")
    return root / f"trt_timing_{tag}.cache"


def polygraphy_loaders(trt: Any, api: TrtApi, onnx_bytes: bytes, precision: str, input_name: str,
                       input_shape: tuple[int, ...], *, dynamic_batch: bool = False, max_batch: int = DEFAULT_MAX_BATCH,
                       workspace_mb: int = DEFAULT_WORKSPACE_MB,
                       timing_cache: Path | None = None) -> tuple[Any, Any, Any]:
    """Polygraphy's lazy loaders for one engine: (network, config, engine bytes). Nothing runs until the last one
    is called, so they can be built and inspected without a GPU. Polygraphy absorbs the network-creation and
    builder-config differences of TensorRT 8.6 / 10 / 11; the precision flags come from ``compat``."""
    from polygraphy.backend.trt import NetworkFromOnnxBytes, Profile

    flags = precision_flags(api, precision)
    network = NetworkFromOnnxBytes(onnx_bytes, strongly_typed=True if api.strongly_typed_only else None)
    profiles = None
    if dynamic_batch:
        _, h, w, c = input_shape
        profiles = [Profile().add(input_name, min=(1, h, w, c), opt=(1, h, w, c), max=(max_batch, h, w, c))]
    config, engine = config_and_engine(trt, network, profiles, workspace_mb, timing_cache,
                                       fp16="FP16" in flags, int8="INT8" in flags)
    return network, config, engine


def config_and_engine(trt: Any, network: Any, profiles: list[Any] | None, workspace_mb: int,
                      timing_cache: Path | None, **precision: Any) -> tuple[Any, Any]:
    """Polygraphy's builder config (``precision`` flags, workspace limit, the persistent timing cache read if
    present and written back) and the lazy engine-bytes loader over ``network``: shared by both engines."""
    from polygraphy.backend.trt import CreateConfig, EngineBytesFromNetwork

    cache = str(timing_cache) if timing_cache is not None and timing_cache.is_file() else None
    config = CreateConfig(**precision, profiles=profiles, load_timing_cache=cache,
                          memory_pool_limits={trt.MemoryPoolType.WORKSPACE: int(workspace_mb) << 20})
    engine = EngineBytesFromNetwork(network, config=config,
                                    save_timing_cache=str(timing_cache) if timing_cache is not None else None)
    return config, engine


def supported_tensorrt() -> tuple[Any, TrtApi]:
    """The ``tensorrt`` module and its API facts; a clear error where it is older than this project supports."""
    trt = import_tensorrt()
    api = TrtApi.of(trt)
    if not api.supported:
        raise BackendUnavailableError("this TensorRT is too old", expected="TensorRT ≥ 8.6", got=trt.__version__)
    return trt, api


def serialize_engine(engine: Any, what: str, fix: str, timing_cache: Path | None) -> bytes:
    """Run the lazy ``engine`` loader (the build itself), reporting a parser or builder failure as ``what``."""
    if timing_cache is not None:
        timing_cache.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        serialized = engine()
    except Exception as exc:  # noqa: BLE001 - Polygraphy reports parser and builder failures as its own exception
        raise ExportError(f"TensorRT failed to build {what}", got=f"{type(exc).__name__}: {exc}", fix=fix) from None
    log.info("built %s in %.1f s", what, time.perf_counter() - t0)
    return bytes(serialized)


def build_engine(onnx_path: Path, precision: str, input_shape: tuple[int, ...], *, device: DeviceInfo,
                 dynamic_batch: bool = False, max_batch: int = DEFAULT_MAX_BATCH,
                 workspace_mb: int = DEFAULT_WORKSPACE_MB, timing_cache: Path | None = None) -> bytes:
    """Build and return a serialized engine with Polygraphy. ``onnx_path``: the FP32 model for fp16, the Q/DQ
    model for int8 (on TensorRT 11 both converted to FP16 float parts first, ``fp16_onnx.py``)."""
    if precision not in ENGINE_PRECISIONS:
        raise ExportError(f"unknown engine precision '{precision}'", expected=f"one of {list(ENGINE_PRECISIONS)}",
                          got=precision)
    trt, api = supported_tensorrt()
    import onnx

    model = onnx.load(str(onnx_path))
    if api.strongly_typed_only:
        # strongly typed: the ONNX types are the precision; FP16 for the float parts of both engines (the INT8
        # engine's float-kept layers too, as the FP16 flag gives them on TensorRT ≤ 10)
        from .fp16_onnx import convert_to_fp16

        model = convert_to_fp16(model)
    _, _, engine = polygraphy_loaders(trt, api, model.SerializeToString(), precision, model.graph.input[0].name,
                                      input_shape, dynamic_batch=dynamic_batch, max_batch=max_batch,
                                      workspace_mb=workspace_mb, timing_cache=timing_cache)
    return serialize_engine(engine, f"the {precision} engine from {onnx_path.name}",
                            "see the TensorRT log above; re-export the bundle with this tocoad-edge version if the "
                            "parser rejected it", timing_cache)


def write_engine_into_bundle(bundle: Path, manifest: Manifest, fp: EngineFingerprint, data: bytes, device_key: Any,
                             device_key_password: bytes | None) -> Path:
    """Write a built engine as ``fp.file`` (temp file, then rename) and record it in ``engines.json``."""
    target = bundle / fp.file
    tmp = bundle / f".{fp.file}.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, target)
    record_engine(bundle, manifest, fp, FileEntry(sha256=sha256_file(target), bytes=target.stat().st_size),
                  private_key=device_key, password=device_key_password)
    return target


def build_engine_into_bundle(bundle: str | Path, precision: str = "int8", *, dla_core: int | None = None,
                             workspace_mb: int = DEFAULT_WORKSPACE_MB, device: DeviceInfo | None = None,
                             device_key: Any = None, device_key_password: bytes | None = None,
                             search_engine: bool = True) -> Path:
    """``tocoad-export engine BUNDLE``: build this device's engine into the bundle, and (``search_engine``) the
    FP16 memory-bank search engine beside it (``search_engine.py``; ``search='graph'`` runs it). The engines are
    recorded in ``engines.json`` (signed into ``engines.sig`` with ``device_key``), never in ``manifest.json``, so
    a signed bundle still verifies (``bundle/engine_record.py``). Returns the backbone engine's path."""
    if dla_core is not None:
        raise ExportError("DLA engines are not built by this version", got=f"--dla-core {dla_core}",
                          expected="a GPU engine (no --dla-core)",
                          fix="omit --dla-core; DLA needs implicit INT8 from the calibration cache, which has not "
                              "been verified on a Jetson yet (docs/int8_and_tensorrt.md)")
    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    source = {"fp16": "fp32", "int8": "int8"}[precision] if precision in ENGINE_PRECISIONS else None
    if source is None:
        raise ExportError(f"unknown engine precision '{precision}'", expected=f"one of {list(ENGINE_PRECISIONS)}",
                          got=precision)
    if source not in manifest.models:
        raise ExportError(f"this bundle has no {source} model to build an {precision} engine from",
                          expected=f"one of {sorted(manifest.models)}",
                          fix="re-export with --int8" if precision == "int8" else None)
    mf = manifest.models[source]
    paths = verify_files(bundle, manifest, [mf.file])
    if device is None:
        from .runner import current_device

        device = current_device()
    onnx_path = paths[mf.file]
    input_shape = (-1 if mf.dynamic_batch else 1, manifest.input.height, manifest.input.width, manifest.input.channels)
    onnx_sha = manifest.files[onnx_path.name].sha256
    # the profile build_engine gives a dynamic-batch network: min 1, opt 1, max DEFAULT_MAX_BATCH
    profile = (1, 1, DEFAULT_MAX_BATCH) if mf.dynamic_batch else None
    fp = make_fingerprint(device, precision, input_shape, onnx_sha, batch_profile=profile)
    data = build_engine(onnx_path, precision, input_shape, device=device, dynamic_batch=mf.dynamic_batch,
                        workspace_mb=workspace_mb, timing_cache=timing_cache_path(device))
    target = write_engine_into_bundle(bundle, manifest, fp, data, device_key, device_key_password)
    log.info("engine %s written (%s, %s)", target.name, precision, device.describe())
    if search_engine:
        from .search_engine import build_search_engine_into_bundle

        build_search_engine_into_bundle(bundle, manifest, device, timing_cache_path(device),
                                        max_batch=profile[2] if profile else 1,
                                        workspace_mb=workspace_mb, device_key=device_key,
                                        device_key_password=device_key_password)
    return target
