"""The memory-bank search as a TensorRT FP16 engine, built on the device beside the backbone engine.

The network is ``fp16_search_graph`` (``runtime/search/distance_graph.py``) of the verified bank file: the bytes the
runtime hashes are the bytes the graph is built from. Its input is the query rows ``[n, D]`` with an optimisation
profile min 1, opt = the manifest's patches per frame, max = patches × the backbone engine's largest batch, so one
``predict_batch`` call is one engine run. Precision, per TensorRT version (``compat.TrtApi``):

- TensorRT ≥ 10: strongly typed: the graph's own types are the precisions (FP16 GEMM, FP32 ``|b|²`` add, row
  minimum and final Min), no precision flag (strongly typed networks refuse them);
- TensorRT 8.6: no strong typing: the FP16 flag, with ``PREFER_PRECISION_CONSTRAINTS`` so the graph's casts back
  to FP32 are followed where a kernel exists (a preference, not a guarantee: docs/int8_and_tensorrt.md).

The engine is named ``search.<fingerprint>.engine`` and recorded in ``engines.json`` with ``role: search`` and the
bank file's sha256 as its source (``fingerprint.make_search_fingerprint``).
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ....bundle.manifest import EngineFingerprint, Manifest, verify_files
from ...bank import load_bank
from ...search.distance_graph import (DEFAULT_MAX_TEMP_BYTES, FP16_INPUT_NAME, chunk_entries, fp16_search_graph)
from .build import config_and_engine, serialize_engine, supported_tensorrt, write_engine_into_bundle
from .compat import TrtApi
from .fingerprint import DeviceInfo, make_search_fingerprint

log = logging.getLogger("tocoad_edge.export")


def query_profile(manifest: Manifest, max_batch: int) -> tuple[int, int, int]:
    """(min, opt, max) query rows: one row at least, one frame's patches typically, a full backbone batch at most."""
    patches = int(np.prod(manifest.features.grid))
    return 1, patches, patches * max(int(max_batch), 1)


def search_engine_loaders(trt: Any, api: TrtApi, onnx_bytes: bytes, dim: int, profile: tuple[int, int, int], *,
                          workspace_mb: int, timing_cache: Path | None = None) -> tuple[Any, Any, Any]:
    """Polygraphy's lazy loaders (network, config, engine bytes) for the search graph; nothing runs until the
    last one is called, so they are inspected without a GPU (tests/runtime/test_trt_search_engine.py)."""
    from polygraphy.backend.trt import NetworkFromOnnxBytes, Profile

    strong = api.has_strong_typing
    network = NetworkFromOnnxBytes(onnx_bytes, strongly_typed=True if strong else None)
    lo, opt, hi = profile
    profiles = [Profile().add(FP16_INPUT_NAME, min=(lo, dim), opt=(opt, dim), max=(hi, dim))]
    config, engine = config_and_engine(trt, network, profiles, workspace_mb, timing_cache, fp16=not strong,
                                       precision_constraints=None if strong else "prefer")
    return network, config, engine


def build_search_engine(onnx_bytes: bytes, dim: int, profile: tuple[int, int, int], *, workspace_mb: int,
                        timing_cache: Path | None = None) -> bytes:
    """Build and return the serialized search engine (TensorRT imported here)."""
    trt, api = supported_tensorrt()
    _, _, engine = search_engine_loaders(trt, api, onnx_bytes, dim, profile, workspace_mb=workspace_mb,
                                         timing_cache=timing_cache)
    return serialize_engine(engine, "the memory-bank search engine",
                            "see the TensorRT log above; or skip it: tocoad-export engine BUNDLE --no-search-engine "
                            "(search='graph' then runs on ONNX Runtime)", timing_cache)


def search_graph_for(bundle: Path, manifest: Manifest,
                     max_temp_bytes: int = DEFAULT_MAX_TEMP_BYTES) -> tuple[bytes, int, str, int]:
    """(graph bytes, bank dim, bank sha256, chunk entries) from the verified bank file of ``bundle``."""
    spec = manifest.memory_bank
    bank = load_bank(verify_files(bundle, manifest, [spec.file])[spec.file], manifest)
    chunk = min(chunk_entries(max_temp_bytes, int(np.prod(manifest.features.grid))), spec.entries)
    return fp16_search_graph(bank, chunk), spec.dim, manifest.files[spec.file].sha256, chunk


def build_search_engine_into_bundle(bundle: Path, manifest: Manifest, device: DeviceInfo, timing_cache: Path, *,
                                    max_batch: int, workspace_mb: int, device_key: Any = None,
                                    device_key_password: bytes | None = None,
                                    max_temp_bytes: int = DEFAULT_MAX_TEMP_BYTES) -> tuple[Path, EngineFingerprint]:
    """Build this device's search engine for the bundle's bank and record it in ``engines.json``."""
    graph, dim, bank_sha, chunk = search_graph_for(bundle, manifest, max_temp_bytes)
    profile = query_profile(manifest, max_batch)
    fp = make_search_fingerprint(device, dim, profile, bank_sha, chunk, hashlib.sha256(graph).hexdigest())
    data = build_search_engine(graph, dim, profile, workspace_mb=workspace_mb, timing_cache=timing_cache)
    target = write_engine_into_bundle(bundle, manifest, fp, data, device_key, device_key_password)
    log.info("search engine %s written (fp16, %d×%d bank, queries %s, %s)", target.name, manifest.memory_bank.entries,
             dim, profile, device.describe())
    return target, fp
