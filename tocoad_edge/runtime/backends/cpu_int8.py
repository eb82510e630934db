"""Whether ONNX Runtime's fused int8 CPU kernels can be trusted on this CPU.

ONNX Runtime's CPU provider fuses each DequantizeLinear → Conv → QuantizeLinear group of a Q/DQ model into an int8
kernel. On x86 without VNNI (AVX2, and AVX-512 before Cascade Lake) that kernel multiplies u8 activations by s8
weights with ``vpmaddubsw``, whose 16-bit pair sums saturate; ONNX Runtime documents this and its quantizer offers
7-bit weights (``reduce_range``) against it. The INT8 gate and the parity report run the graph as written (no
fusion), so on such a CPU the fused kernels would give other scores than the ones the export measured. VNNI
(``vpdpbusd``, AVX-512 or the 256-bit AVX-VNNI) and ARM's dot-product kernels accumulate in 32 bits.

The bundle's INT8 model places Q/DQ for TensorRT (on layer inputs, not outputs), so ONNX Runtime finds the
fusable group at one convolution only and runs the others in float on dequantized inputs: on x86 the INT8 model
is slower than FP32 with or without VNNI (``benchmarks/int8_cpu_placement.py``). This check keeps its scores right.
"""
from __future__ import annotations

import platform
from pathlib import Path

X86 = {"x86_64", "amd64", "i386", "i686", "x86"}
VNNI_FLAGS = {"avx512_vnni", "avx_vnni"}    # /proc/cpuinfo spelling


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str] | None:
    """The ``flags`` of the first CPU in ``cpuinfo``; None where the file does not exist or has none."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return None


def _numpy_has_avx512_vnni() -> bool:
    import importlib

    for module in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):     # numpy 2, numpy 1
        try:
            features = getattr(importlib.import_module(module), "__cpu_features__", None)
        except ImportError:
            continue
        if isinstance(features, dict):
            return bool(features.get("AVX512VNNI", False))
    return False


def int8_sums_saturate(machine: str | None = None, flags: set[str] | None = None) -> bool:
    """True on an x86 CPU without VNNI, where fused u8 × s8 kernels saturate their 16-bit pair sums.

    ``machine`` (``platform.machine()``) and ``flags`` (``cpu_flags()``) are read from this machine when not given.
    Where the flags cannot be read (not Linux) numpy's runtime dispatch answers for AVX-512 VNNI; an x86 CPU that
    neither shows counts as saturating, which only costs speed (the graph then runs as written)."""
    machine = (platform.machine() if machine is None else machine).lower()
    if machine not in X86:
        return False
    flags = cpu_flags() if flags is None else flags
    if flags is not None:
        return not (flags & VNNI_FLAGS)
    return not _numpy_has_avx512_vnni()
