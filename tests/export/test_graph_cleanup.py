"""cleanup_onnx folds zero Pads of the spatial axes into the convolutions they feed; the cleaned model computes
the same outputs in ONNX Runtime, and every Pad it cannot fold stays."""
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from export.graph_cleanup import cleanup_onnx


def _model(tmp_path):
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    w2 = numpy_helper.from_array(rng.standard_normal((4, 4, 3, 3)).astype(np.float32), "w2")
    inits = [w, w2,
             numpy_helper.from_array(np.array([0, 0, 0, 0, 0, 0, 1, 1], np.int64), "same_pad"),   # TF "same", s 2
             numpy_helper.from_array(np.array([0, 0, 1, 2, 0, 0, 1, 0], np.int64), "odd_pad"),
             numpy_helper.from_array(np.array([0, 1, 0, 0, 0, 0, 0, 0], np.int64), "channel_pad"),
             numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
             numpy_helper.from_array(np.array(0.5, np.float32), "half")]
    nodes = [
        helper.make_node("Pad", ["x", "same_pad", "zero"], ["p1"], mode="constant"),                 # folds
        helper.make_node("Conv", ["p1", "w"], ["c1"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 0, 0, 1]),
        helper.make_node("Pad", ["c1", "odd_pad"], ["p2"], mode="constant"),                        # folds
        helper.make_node("Conv", ["p2", "w2"], ["c2"], kernel_shape=[3, 3]),
        helper.make_node("Pad", ["c2", "odd_pad"], ["p3"], mode="reflect"),                         # stays: reflect
        helper.make_node("Conv", ["p3", "w2"], ["c3"], kernel_shape=[3, 3]),
        helper.make_node("Pad", ["c3", "odd_pad", "half"], ["p4"], mode="constant"),                # stays: 0.5
        helper.make_node("Conv", ["p4", "w2"], ["c4"], kernel_shape=[3, 3]),
        helper.make_node("Pad", ["c4", "odd_pad"], ["p5"], mode="constant"),                        # stays: 2 users
        helper.make_node("Conv", ["p5", "w2"], ["y"], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["p5"], ["side"]),
        helper.make_node("Pad", ["x", "channel_pad"], ["pc"], mode="constant"),                     # stays: C axis
        helper.make_node("Conv", ["pc", "w2"], ["yc"], kernel_shape=[3, 3]),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["n", "c", "h", "w"])
                               for n in ("y", "side", "yc")],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    src = tmp_path / "raw.onnx"
    onnx.save(model, str(src))
    return src


def _run(path, x):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})


def test_zero_pads_fold_into_convs_and_outputs_do_not_change(tmp_path):
    src = _model(tmp_path)
    dst = tmp_path / "clean.onnx"
    counts = cleanup_onnx(src, dst)
    assert counts["pads_folded"] == 2
    cleaned = onnx.load(str(dst))
    pads = [n for n in cleaned.graph.node if n.op_type == "Pad"]
    assert len(pads) == 4                                             # reflect, 0.5, shared output, channel axis
    convs = {n.output[0]: {a.name: helper.get_attribute_value(a) for a in n.attribute}
             for n in cleaned.graph.node if n.op_type == "Conv"}
    assert convs["c1"]["pads"] == [1, 0, 1, 2]                         # its own [1, 0, 0, 1] + the Pad's [0, 0, 1, 1]
    assert convs["c2"]["pads"] == [1, 2, 1, 0]
    x = np.random.default_rng(1).standard_normal((1, 3, 32, 32)).astype(np.float32)
    for want, got in zip(_run(src, x), _run(dst, x)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
