"""Small ONNX models and runs shared by the INT8 / TensorRT tests (imported by test modules, not a conftest)."""
from __future__ import annotations

import numpy as np


def tiny_conv_model(seed: int = 0, size: int = 16):
    """uint8 NHWC image → Cast → Transpose → Conv(3→8) → Relu → Conv(8→4) → Transpose → Reshape → MatMul(4→6)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32)
    w1[0] *= 10.0                           # one channel with a much larger range: per-channel scales matter
    b1 = rng.normal(0, 0.1, 8).astype(np.float32)
    w2 = rng.normal(0, 0.3, (4, 8, 1, 1)).astype(np.float32)
    wm = rng.normal(0, 0.5, (4, 6)).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in [
        (w1, "w1"), (b1, "b1"), (w2, "w2"), (wm, "wm"), (np.array([1, -1, 4], np.int64), "shape"),
        (np.array(1 / 255.0, np.float32), "inv255")]]
    nodes = [
        helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT, name="cast"),
        helper.make_node("Mul", ["f", "inv255"], ["fs"], name="scale"),
        helper.make_node("Transpose", ["fs"], ["x"], perm=[0, 3, 1, 2], name="to_nchw"),
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2"),
        helper.make_node("Transpose", ["c2"], ["t2"], perm=[0, 2, 3, 1], name="to_nhwc"),
        helper.make_node("Reshape", ["t2", "shape"], ["flat"], name="flatten"),
        helper.make_node("MatMul", ["flat", "wm"], ["embeddings"], name="proj"),
    ]
    graph = helper.make_graph(nodes, "tiny",
                              [helper.make_tensor_value_info("image", TensorProto.UINT8, [1, size, size, 3])],
                              [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, [1, size * size, 6])],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def run_model(model, images: np.ndarray) -> np.ndarray:
    return run_model_on(model, images, "image")


def run_model_on(model, images: np.ndarray, input_name: str) -> np.ndarray:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.disable_quant_qdq", "1")
    sess = ort.InferenceSession(model.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(None, {input_name: images[i:i + 1]})[0] for i in range(len(images))])


def random_images(n: int, size: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def residual_model(seed: int = 0, size: int = 16):
    """The small residual network the Q/DQ placement is compared on (ours vs NVIDIA ModelOpt's ONNX PTQ;
    ``benchmarks/modelopt/qdq_pattern.py`` builds it from here too, so keep it onnx + numpy only).

    float NCHW [1, 3, size, size] → Conv-BN-Relu (stem) → [Conv-BN-Relu → Conv-BN] + stem (residual Add) →
    depthwise Conv-BN-Clip(0, 6) → Conv-BN + previous (residual Add) → AveragePool 2×2 → Conv-BN-Relu (head) →
    NHWC patches [1, h·w, 16] → MatMul (16 → 32): the shape of the project's patch-embedding backbones.
    Channels are ≥ 16 so no layer falls under ModelOpt's small-channel / small-GEMM exclusions; the BN layers are
    real (ModelOpt and TensorRT fold them into the convolutions)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits, nodes = [], []
    c = 32

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr, np.float32), name))
        return name

    def conv_bn(x, name, cin, cout, k, group=1, act=None):
        w = const(f"{name}.w", rng.normal(0, (2.0 / (cin // group * k * k)) ** 0.5, (cout, cin // group, k, k)))
        nodes.append(helper.make_node("Conv", [x, w], [f"{name}.c"], name=f"{name}.conv", pads=[k // 2] * 4,
                                      kernel_shape=[k, k],
                                      group=group))
        bn = [const(f"{name}.{p}", v) for p, v in (("gamma", rng.uniform(0.5, 1.5, cout)),
                                                   ("beta", rng.normal(0, 0.1, cout)),
                                                   ("mean", rng.normal(0, 0.1, cout)),
                                                   ("var", rng.uniform(0.5, 1.5, cout)))]
        nodes.append(helper.make_node("BatchNormalization", [f"{name}.c", *bn], [f"{name}.bn"], name=f"{name}.bn"))
        out = f"{name}.bn"
        if act == "relu":
            nodes.append(helper.make_node("Relu", [out], [f"{name}.act"], name=f"{name}.relu"))
            out = f"{name}.act"
        elif act == "relu6":
            lo, hi = const(f"{name}.lo", 0.0), const(f"{name}.hi", 6.0)
            nodes.append(helper.make_node("Clip", [out, lo, hi], [f"{name}.act"], name=f"{name}.clip"))
            out = f"{name}.act"
        return out

    stem = conv_bn("input", "stem", 3, c, 3, act="relu")
    b1 = conv_bn(conv_bn(stem, "b1a", c, c, 3, act="relu"), "b1b", c, c, 1)
    nodes.append(helper.make_node("Add", [b1, stem], ["add1"], name="add1"))
    b2 = conv_bn(conv_bn("add1", "b2dw", c, c, 3, group=c, act="relu6"), "b2pw", c, c, 1)
    nodes.append(helper.make_node("Add", [b2, "add1"], ["add2"], name="add2"))
    nodes.append(helper.make_node("AveragePool", ["add2"], ["pool"], name="pool", kernel_shape=[2, 2], strides=[2, 2]))
    head = conv_bn("pool", "head", c, 16, 1, act="relu")
    nodes.append(helper.make_node("Transpose", [head], ["nhwc"], name="to_nhwc", perm=[0, 2, 3, 1]))
    inits.append(numpy_helper.from_array(np.array([1, -1, 16], np.int64), "patches_shape"))
    nodes.append(helper.make_node("Reshape", ["nhwc", "patches_shape"], ["patches"], name="to_patches"))
    const("proj.w", rng.normal(0, 0.25, (16, 32)))
    nodes.append(helper.make_node("MatMul", ["patches", "proj.w"], ["output"], name="proj"))
    graph = helper.make_graph(nodes, "residual", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                                  [1, 3, size, size])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT,
                                                             [1, (size // 2) ** 2, 32])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def qdq_pattern(model) -> dict:
    """Where a Q/DQ model quantizes, independent of node and tensor names (each writer names them differently):
    for every consumer node (by op type and its index among nodes of that type in graph order), which inputs
    come through a DequantizeLinear, whether that input is a weight (per-channel axis) or an activation
    (per tensor), and whether the activation is quantized as its producer's output was named in the FP32 graph.

    Folded layers: a ``Conv`` followed by ``BatchNormalization`` in the FP32 graph may appear as one ``Conv`` in the
    quantized graph, so consumers are keyed by (op type, ordinal among that op type), with BN-only differences
    ignored by callers comparing Conv/Add/Gemm/MatMul/Pool entries."""
    from onnx import numpy_helper

    producers = {o: n for n in model.graph.node for o in n.output}
    inits = {i.name: i for i in model.graph.initializer}
    counters: dict[str, int] = {}
    entries = []
    for n in model.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear", "Cast", "Identity"):
            continue
        k = counters.get(n.op_type, 0)
        counters[n.op_type] = k + 1
        inputs = []
        for i, name in enumerate(n.input):
            p = producers.get(name)
            if p is None or p.op_type != "DequantizeLinear":
                continue
            attrs = {a.name: a.i for a in p.attribute}
            src = p.input[0]
            if src in producers and producers[src].op_type == "QuantizeLinear":    # Q → DQ on a float weight
                src = producers[src].input[0]
            is_weight = src in inits or (src in producers and producers[src].op_type == "Constant")
            scale = inits.get(p.input[1])
            per_channel = scale is not None and numpy_helper.to_array(scale).size > 1
            entry = {"input": i, "kind": "weight" if is_weight else "activation",
                     "axis": attrs.get("axis", 1) if per_channel else None}
            if not is_weight:
                entry["tensor"] = src          # the FP32 graph's tensor name (both writers keep it)
            inputs.append(entry)
        if inputs:
            entries.append({"op": n.op_type, "ordinal": k, "quantized_inputs": inputs})
    return {"consumers": entries}
