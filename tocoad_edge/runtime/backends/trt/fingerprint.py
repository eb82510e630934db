"""Engine fingerprints: which TensorRT version, GPU, precision, input shape and ONNX model an engine belongs to.

No TensorRT import here: a fingerprint is compared with the device BEFORE any engine byte is deserialised.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from ....bundle.manifest import EngineFingerprint
from ....errors import EngineIncompatibleError
from .compat import parse_version


@dataclass(frozen=True)
class DeviceInfo:
    tensorrt_version: str
    gpu_name: str
    compute_capability: str        # "8.7"

    def describe(self) -> str:
        return f"TensorRT {self.tensorrt_version} on {self.gpu_name} (sm {self.compute_capability})"


def fingerprint_id(tensorrt_version: str, gpu_name: str, compute_capability: str, precision: str,
                   input_shape: tuple[int, ...], onnx_sha256: str, dla_core: int | None = None,
                   batch_profile: tuple[int, int, int] | None = None) -> str:
    fields = [list(parse_version(tensorrt_version)), gpu_name, compute_capability, precision, list(input_shape),
              onnx_sha256, dla_core]
    if batch_profile is not None:       # appended only when present: static engines keep their file names
        fields.append(list(batch_profile))
    key = json.dumps(fields, separators=(",", ":"))
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def engine_file_name(fid: str, role: str = "backbone") -> str:
    return f"{role}.{fid}.engine"


def make_fingerprint(device: DeviceInfo, precision: str, input_shape: tuple[int, ...], onnx_sha256: str,
                     dla_core: int | None = None,
                     batch_profile: tuple[int, int, int] | None = None) -> EngineFingerprint:
    """``batch_profile`` (min, opt, max batch) is required exactly when ``input_shape[0]`` is -1 (dynamic batch)."""
    if (input_shape[0] == -1) != (batch_profile is not None):
        raise ValueError(f"a dynamic batch (-1) needs a batch profile and a static one none: {input_shape}, "
                         f"{batch_profile}")
    profile: tuple[int, int, int] | None = None
    if batch_profile is not None:
        lo, opt, hi = batch_profile
        profile = (int(lo), int(opt), int(hi))
    fid = fingerprint_id(device.tensorrt_version, device.gpu_name, device.compute_capability, precision,
                         input_shape, onnx_sha256, dla_core, profile)
    return EngineFingerprint(file=engine_file_name(fid), tensorrt_version=device.tensorrt_version,
                             gpu_name=device.gpu_name, compute_capability=device.compute_capability,
                             precision=precision, input_shape=tuple(input_shape), onnx_sha256=onnx_sha256,
                             dla_core=dla_core, batch_profile=profile)


def make_search_fingerprint(device: DeviceInfo, dim: int, query_profile: tuple[int, int, int], bank_sha256: str,
                            chunk_entries: int, graph_sha256: str, precision: str = "fp16") -> EngineFingerprint:
    """The memory-bank search engine's fingerprint: input ``[-1, dim]`` queries with ``query_profile`` (min, opt,
    max query rows); the id covers the device, precision and input like a backbone's, and the bank file's sha256,
    the chunking and the graph's own sha256 (``fp16_search_graph``), so a changed bank or chunking is another
    engine."""
    lo, opt, hi = (int(v) for v in query_profile)
    base = fingerprint_id(device.tensorrt_version, device.gpu_name, device.compute_capability, precision,
                          (-1, int(dim)), graph_sha256, None, (lo, opt, hi))
    key = json.dumps([base, "search", bank_sha256, int(chunk_entries)], separators=(",", ":"))
    fid = hashlib.sha256(key.encode()).hexdigest()[:16]
    return EngineFingerprint(file=engine_file_name(fid, "search"), tensorrt_version=device.tensorrt_version,
                             gpu_name=device.gpu_name, compute_capability=device.compute_capability,
                             precision=precision, input_shape=(-1, int(dim)), onnx_sha256=graph_sha256,
                             batch_profile=(lo, opt, hi), role="search", source_sha256=bank_sha256,
                             chunk_entries=int(chunk_entries))


def query_mismatches(fp: EngineFingerprint, dim: int, queries: int) -> list[str]:
    """Why the search engine cannot take ``queries`` rows of ``dim`` (empty: it can): its input ``[-1, dim]`` and
    query profile (more rows than the profile's max are run in slices, so only ``min`` bounds from below)."""
    if tuple(fp.input_shape) != (-1, int(dim)) or fp.batch_profile is None:
        return [f"input {describe_input(fp)} ≠ N×{dim} with a query profile"]
    if queries < fp.batch_profile[0]:
        return [f"{queries} queries below the engine's profile minimum {fp.batch_profile[0]}"]
    return []


def describe_input(fp: EngineFingerprint) -> str:
    shape = "×".join(str(d) for d in fp.input_shape)
    if fp.batch_profile is not None:
        lo, opt, hi = fp.batch_profile
        shape += f" (batch {lo}..{hi}, opt {opt})"
    return shape


def input_mismatches(fp: EngineFingerprint, hwc: tuple[int, int, int], batch: int = 1) -> list[str]:
    """Why the engine cannot run ``batch`` frames of ``hwc`` (empty: it can). A dynamic-batch engine (batch -1)
    is matched by its optimisation profile: ``min <= batch <= max``."""
    shape = tuple(fp.input_shape)
    if len(shape) != 4 or shape[1:] != tuple(hwc):
        return [f"input {describe_input(fp)} ≠ N×{'×'.join(map(str, hwc))}"]
    if shape[0] == -1:
        if fp.batch_profile is None:
            return ["dynamic-batch engine without a batch profile"]
        lo, _, hi = fp.batch_profile
        if not lo <= batch <= hi:
            return [f"batch {batch} outside the engine's profile {lo}..{hi}"]
        return []
    if shape[0] != batch:
        return [f"input batch {shape[0]} ≠ {batch}"]
    return []


def mismatches(fp: EngineFingerprint, device: DeviceInfo) -> list[str]:
    """Human-readable differences (empty: the engine belongs to this device). TensorRT versions must be equal
    as parsed tuples (engines are not portable across TensorRT builds), GPU name and compute capability too."""
    out = []
    if parse_version(fp.tensorrt_version) != parse_version(device.tensorrt_version):
        out.append(f"TensorRT {fp.tensorrt_version} ≠ {device.tensorrt_version}")
    if fp.gpu_name != device.gpu_name:
        out.append(f"GPU {fp.gpu_name!r} ≠ {device.gpu_name!r}")
    if parse_version(fp.compute_capability) != parse_version(device.compute_capability):
        out.append(f"compute capability {fp.compute_capability} ≠ {device.compute_capability}")
    return out


def check_engine(fp: EngineFingerprint, device: DeviceInfo) -> None:
    diff = mismatches(fp, device)
    if diff:
        raise EngineIncompatibleError(
            f"engine {fp.file} was built for another device ({'; '.join(diff)})",
            expected=f"an engine for this device: {device.describe()}",
            got=f"an engine for TensorRT {fp.tensorrt_version} on {fp.gpu_name} (sm {fp.compute_capability})",
            fix="build the engine on this device: tocoad-export engine BUNDLE, or use backend='onnxrt'")
