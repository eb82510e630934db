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
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(None, {"image": images[i:i + 1]})[0] for i in range(len(images))])


def random_images(n: int, size: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)
