"""The engine's I/O tensors checked against what the runtime expects, before any buffer is used.

An engine whose output had another shape than the manifest says would be read (or, natively, written) past the
buffers the runtime allocates from the manifest; an engine with other tensor names would be bound to nothing.
So, once the engine is deserialised and before the first enqueue, every I/O tensor's name, shape (at batch 1)
and dtype is compared with the bundle's: input ``[1, H, W, C]`` uint8 (or float32), output ``[1, grid_h·grid_w,
dim]`` float32. ``native/src/engine_bindings.cpp`` is the same check for the C++ runtime.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ....bundle.manifest import EngineFingerprint, Manifest, ModelFile
from ....errors import BundleError, EngineIncompatibleError

INPUT_DTYPES = ("uint8", "float32")       # float32 input: the runner casts the uint8 frame
OUTPUT_DTYPES = ("float32",)
# which manifest model an engine of each precision is built from, tried first (DLA INT8 uses the FP32 model)
ENGINE_MODEL_ORDER = {"int8": ("int8", "fp32"), "fp16": ("fp32",), "fp32": ("fp32",)}


@dataclass(frozen=True)
class Binding:
    name: str
    shape: tuple[int, ...]
    dtypes: tuple[str, ...]               # expected: the allowed dtypes; from the engine: exactly one


def model_of(manifest: Manifest, fp: EngineFingerprint) -> ModelFile:
    """The manifest model the engine was built from (its ONNX sha256), for the tensor names."""
    for key in ENGINE_MODEL_ORDER.get(fp.precision, ()) + tuple(manifest.models):
        m = manifest.models.get(key)
        if m is not None and m.file in manifest.files and manifest.files[m.file].sha256 == fp.onnx_sha256:
            return m
    raise BundleError(f"engine {fp.file} was built from an ONNX model this bundle does not have",
                      expected=f"onnx_sha256 of one of {sorted(manifest.models)}", got=fp.onnx_sha256,
                      fix="rebuild the engine on this device: tocoad-export engine BUNDLE")


def expected_bindings(manifest: Manifest, fp: EngineFingerprint) -> list[Binding]:
    m = model_of(manifest, fp)
    i, f = manifest.input, manifest.features
    return [Binding(m.input_name, (1, i.height, i.width, i.channels), INPUT_DTYPES),
            Binding(m.output_name, (1, f.grid[0] * f.grid[1], f.dim), OUTPUT_DTYPES)]


def binding_mismatches(expected: list[Binding], got: list[Binding]) -> list[str]:
    """Differences between the expected tensors and the engine's (empty: they agree). Pure: tested without a GPU."""
    out = []
    have = {b.name: b for b in got}
    want = {b.name for b in expected}
    for e in expected:
        g = have.get(e.name)
        if g is None:
            out.append(f"no tensor '{e.name}' (engine has {sorted(have)})")
            continue
        if tuple(g.shape) != tuple(e.shape):
            out.append(f"'{e.name}' shape {list(g.shape)} ≠ {list(e.shape)}")
        if not set(g.dtypes) <= set(e.dtypes):
            out.append(f"'{e.name}' dtype {'/'.join(g.dtypes)} ≠ {' or '.join(e.dtypes)}")
    out += [f"unexpected tensor '{n}'" for n in sorted(set(have) - want)]
    return out


def check_bindings(engine_file: str, expected: list[Binding], got: list[Binding]) -> None:
    diff = binding_mismatches(expected, got)
    if diff:
        raise EngineIncompatibleError(
            f"engine {engine_file} does not have the tensors the runtime allocates for ({'; '.join(diff)})",
            expected=", ".join(f"{b.name} {list(b.shape)} {'/'.join(b.dtypes)}" for b in expected),
            got=", ".join(f"{b.name} {list(b.shape)} {'/'.join(b.dtypes)}" for b in got),
            fix="rebuild the engine from this bundle on this device: tocoad-export engine BUNDLE")


def engine_bindings(trt: Any, engine: Any, context: Any, inputs: list[str], outputs: list[str]) -> list[Binding]:
    """The engine's I/O tensors as the execution context resolves them (after the input shape is set). ``trt``,
    ``engine``, ``context``: the tensorrt module, its ICudaEngine and IExecutionContext (tensorrt is untyped)."""
    return [Binding(n, tuple(int(d) for d in context.get_tensor_shape(n)),
                    (np.dtype(trt.nptype(engine.get_tensor_dtype(n))).name,)) for n in [*inputs, *outputs]]


def check_engine_io(trt: Any, engine: Any, context: Any, inputs: list[str], outputs: list[str],
                    manifest: Manifest, fp: EngineFingerprint) -> None:
    """Set batch 1 on a dynamic-batch input, then compare every I/O tensor with the manifest's expectation."""
    expected = expected_bindings(manifest, fp)
    for name in inputs:
        if any(int(d) < 0 for d in engine.get_tensor_shape(name)):
            context.set_input_shape(name, expected[0].shape)
    check_bindings(fp.file, expected, engine_bindings(trt, engine, context, inputs, outputs))
