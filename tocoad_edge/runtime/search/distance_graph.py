"""The memory bank as an ONNX model: ``min_j (q̃ · ã_j)`` over the bank, written as protobuf bytes without the
``onnx`` package (the device has none; ``bundle/onnx_refs.py`` reads the same wire format).

Inputs and arithmetic are the exact search's augmented form (``exact.py``): the graph's input is
``[−2q, 1, 0…]`` ``[n, W]`` and each bank chunk is stored transposed as ``[b; |b|²; 0…]`` ``[W, c]``, so one MatMul
gives ``|b|² − 2 q·b`` and a ReduceMin over the chunk's columns is the only pass over its output. A final Min
over the chunk minima gives ``[n]``; the caller adds ``|q|²`` and takes the square root.

The bank is cut into chunks so that no ``[n, c]`` float32 temporary exceeds ``max_temp_bytes`` at
``expected_queries`` rows (default 8 MiB at a 28 × 28 patch grid: chunks of 2560 entries). ONNX Runtime's
sequential executor frees each MatMul output once its ReduceMin has run, so one such temporary is alive at a time.
Opset 17: ReduceMin still takes ``axes`` as an attribute there (TensorRT and every ONNX Runtime release read it).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

OPSET = 17
IR_VERSION = 8
INPUT_NAME = "augmented_queries"
OUTPUT_NAME = "min_partial"
FP16_INPUT_NAME = "queries"         # the FP16 engine's graph takes the centred, scaled queries as they are
PRODUCT_INPUT_NAME, PRODUCT_OUTPUT_NAME = "queries", "product"      # product_graph
DEFAULT_MAX_TEMP_BYTES = 8 << 20
DEFAULT_EXPECTED_QUERIES = 784
_FLOAT, _FLOAT16 = 1, 10            # TensorProto.DataType
_ATTR_INT, _ATTR_INTS = 2, 7        # AttributeProto.AttributeType


def _varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1              # int64 fields: negative values are ten-byte two's complement
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _int(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(int(value))


def _bytes(field: int, value: bytes | str) -> bytes:
    data = value.encode("utf-8") if isinstance(value, str) else value
    return _varint((field << 3) | 2) + _varint(len(data)) + data


def _tensor(name: str, array: np.ndarray) -> bytes:
    kind = {np.dtype(np.float32): _FLOAT, np.dtype(np.float16): _FLOAT16}[array.dtype]
    dims = b"".join(_int(1, d) for d in array.shape)
    return dims + _int(2, kind) + _bytes(8, name) + _bytes(9, np.ascontiguousarray(array).tobytes())


def _attr_int(name: str, value: int) -> bytes:
    return _bytes(1, name) + _int(3, value) + _int(20, _ATTR_INT)


def _attr_ints(name: str, values: list[int]) -> bytes:
    return _bytes(1, name) + b"".join(_int(8, v) for v in values) + _int(20, _ATTR_INTS)


def _node(op: str, inputs: list[str], outputs: list[str], name: str, attrs: Sequence[bytes] = ()) -> bytes:
    return (b"".join(_bytes(1, i) for i in inputs) + b"".join(_bytes(2, o) for o in outputs) + _bytes(3, name)
            + _bytes(4, op) + b"".join(_bytes(5, a) for a in attrs))


def _value_info(name: str, dims: list[int | str], elem_type: int = _FLOAT) -> bytes:
    shape = b"".join(_bytes(1, _int(1, d) if isinstance(d, int) else _bytes(2, d)) for d in dims)
    tensor_type = _int(1, elem_type) + _bytes(2, shape)
    return _bytes(1, name) + _bytes(2, _bytes(1, tensor_type))


def augmented_width(dim: int) -> int:
    """Columns of the augmented form: D + 1, padded to a multiple of 16 (as ``ExactSearch`` stores it)."""
    return -(-(dim + 1) // 16) * 16


def chunk_entries(max_temp_bytes: int = DEFAULT_MAX_TEMP_BYTES,
                  expected_queries: int = DEFAULT_EXPECTED_QUERIES) -> int:
    """Bank entries per chunk: the largest multiple of 256 whose ``[expected_queries, c]`` float32 fits the bound."""
    c = int(max_temp_bytes) // (4 * max(int(expected_queries), 1))
    return max(256, c // 256 * 256)


def distance_graph(bank: np.ndarray, *, max_temp_bytes: int = DEFAULT_MAX_TEMP_BYTES,
                   expected_queries: int = DEFAULT_EXPECTED_QUERIES) -> bytes:
    """Serialized ONNX ModelProto: input ``augmented_queries`` float32 [n, W] → ``min_partial`` float32 [n]."""
    bank = np.ascontiguousarray(bank, dtype=np.float32)
    m, d = bank.shape
    w = augmented_width(d)
    c = min(chunk_entries(max_temp_bytes, expected_queries), m)
    inits, nodes, minima = [], [], []
    for k, s in enumerate(range(0, m, c)):
        b = bank[s:s + c]
        block = np.zeros((w, len(b)), dtype=np.float32)
        block[:d] = b.T
        block[d] = np.einsum("ij,ij->i", b, b)
        inits.append(_tensor(f"bank_{k}", block))
        nodes.append(_node("MatMul", [INPUT_NAME, f"bank_{k}"], [f"dist_{k}"], f"matmul_{k}"))
        nodes.append(_node("ReduceMin", [f"dist_{k}"], [f"min_{k}"], f"reducemin_{k}",
                           [_attr_ints("axes", [1]), _attr_int("keepdims", 0)]))
        minima.append(f"min_{k}")
    return _model(nodes, minima, inits, INPUT_NAME, w)


def _model(nodes: list[bytes], minima: list[str], inits: list[bytes], input_name: str, width: int) -> bytes:
    """The ModelProto: ``nodes`` (each chunk ending in one of ``minima``), a final Min over them → ``[n]``."""
    nodes = [*nodes, _node("Min", minima, [OUTPUT_NAME], "min_all")]
    return _model_proto(nodes, "memory_bank_search", inits, _value_info(input_name, ["patches", width]),
                        _value_info(OUTPUT_NAME, ["patches"]))


def _model_proto(nodes: list[bytes], name: str, inits: list[bytes], graph_input: bytes, graph_output: bytes) -> bytes:
    """A ModelProto (this module's IR version and opset) around one graph: its ``nodes``, initializers ``inits``,
    one input and one output (``_value_info``)."""
    graph = (b"".join(_bytes(1, n) for n in nodes) + _bytes(2, name) + b"".join(_bytes(5, t) for t in inits)
             + _bytes(11, graph_input) + _bytes(12, graph_output))
    opset = _bytes(1, "") + _int(2, OPSET)
    return _int(1, IR_VERSION) + _bytes(2, "tocoad-edge") + _bytes(7, graph) + _bytes(8, opset)


def product_graph(weights: np.ndarray) -> bytes:
    """Serialized ONNX ModelProto of one MatMul by a constant: input ``queries`` float32 [n, k] → ``product``
    float32 [n, m] = queries · ``weights`` [k, m]. ONNX Runtime prepacks the constant once, when the session is
    made (the bounded re-check's bank share: ``bound_product.py``)."""
    w = np.ascontiguousarray(weights, dtype=np.float32)
    k, m = w.shape
    return _model_proto([_node("MatMul", [PRODUCT_INPUT_NAME, "weights"], [PRODUCT_OUTPUT_NAME], "matmul")],
                        "bound_product", [_tensor("weights", w)], _value_info(PRODUCT_INPUT_NAME, ["queries", k]),
                        _value_info(PRODUCT_OUTPUT_NAME, ["queries", m]))


def center_and_scale(bank: np.ndarray) -> tuple[np.ndarray, float]:
    """(mean row, power-of-two scale) that bring the bank to ``(b - mean) / scale`` with row norms ≤ 1: the form
    the FP16 search engine stores (``fp16_search_graph``). Centring removes the common offset of post-ReLU features
    that would otherwise dominate every dot product (and its FP16 rounding); the power of two keeps every product
    inside FP16's range and is exact to undo. Computed from the bank alone, so the builder and the runtime agree."""
    bank64 = np.asarray(bank, dtype=np.float64)
    mean = bank64.mean(0)
    radius = float(np.sqrt(((bank64 - mean) ** 2).sum(1).max())) if len(bank64) else 1.0
    scale = 2.0 ** int(np.ceil(np.log2(radius))) if radius > 0 else 1.0
    return mean.astype(np.float32), scale


def fp16_search_graph(bank: np.ndarray, chunk: int) -> bytes:
    """The memory bank for a TensorRT FP16 engine (strongly typed: the ONNX types are the precisions). Input
    ``queries`` float32 ``[n, D]``, already ``(q - mean) / scale`` (``center_and_scale``) → ``min_partial`` float32
    ``[n]`` = ``min_j (|b̂_j|² − 2 q̂ · b̂_j)``. Only the GEMM is FP16 (bank chunk ``−2 b̂ᵀ`` and the cast queries;
    TensorRT accumulates in FP32); its ``[n, c]`` output is cast to FP32 before ``|b̂|²`` (an FP32 initializer) is
    added, so the sum that cancels digits, the row minimum and the final Min are FP32. The caller adds ``|q̂|²``,
    multiplies by ``scale²`` and takes the square root."""
    mean, scale = center_and_scale(bank)
    centred = (np.asarray(bank, dtype=np.float64) - mean.astype(np.float64)) / scale
    m, d = centred.shape
    c = max(1, min(int(chunk), m))
    inits, nodes, minima = [], [_node("Cast", [FP16_INPUT_NAME], ["queries_fp16"], "cast_queries",
                                      [_attr_int("to", _FLOAT16)])], []
    for k, s in enumerate(range(0, m, c)):
        b = centred[s:s + c]
        inits.append(_tensor(f"bank_{k}", np.ascontiguousarray((-2.0 * b).T, dtype=np.float16)))
        inits.append(_tensor(f"norm_{k}", np.einsum("ij,ij->i", b, b).astype(np.float32)))
        nodes += [_node("MatMul", ["queries_fp16", f"bank_{k}"], [f"cross_{k}"], f"matmul_{k}"),
                  _node("Cast", [f"cross_{k}"], [f"cross32_{k}"], f"cast_{k}", [_attr_int("to", _FLOAT)]),
                  _node("Add", [f"cross32_{k}", f"norm_{k}"], [f"dist_{k}"], f"add_{k}"),
                  _node("ReduceMin", [f"dist_{k}"], [f"min_{k}"], f"reducemin_{k}",
                        [_attr_ints("axes", [1]), _attr_int("keepdims", 0)])]
        minima.append(f"min_{k}")
    return _model(nodes, minima, inits, FP16_INPUT_NAME, d)
