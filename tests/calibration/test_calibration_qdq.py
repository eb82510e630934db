"""Q/DQ graph structure, per-channel weights, histograms collected through ONNX Runtime."""
import numpy as np
import pytest

from int8_helpers import random_images, run_model, tiny_conv_model
from tocoad_edge.calibration.activations import collect_histograms
from tocoad_edge.calibration.qdq import (build_qdq_model, describe_qdq, find_quantizable_layers, quantize_tensor,
                                         quantize_weight_per_channel)
from tocoad_edge.calibration.ranges import compute_amax, scale_from_amax

onnx = pytest.importorskip("onnx")


def test_quantizable_layers_found_in_graph_order():
    layers = find_quantizable_layers(tiny_conv_model())
    assert [(ly.node, ly.op, ly.weight_axis) for ly in layers] == [("conv1", "Conv", 0), ("conv2", "Conv", 0),
                                                                  ("proj", "MatMul", 1)]
    assert [ly.activation for ly in layers] == ["x", "r1", "flat"]


def test_per_channel_weight_quantization_error_is_within_half_a_step():
    w = np.random.default_rng(0).normal(0, 1, (5, 3, 3, 3)).astype(np.float32)
    w[2] *= 50
    q, scale = quantize_weight_per_channel(w, 0)
    assert q.dtype == np.int8 and scale.shape == (5,)
    assert np.abs(q).max() <= 127
    err = np.abs(q.astype(np.float32) * scale[:, None, None, None] - w)
    assert np.all(err <= scale[:, None, None, None] / 2 + 1e-6)
    assert scale[2] > 10 * scale[0]          # the wide channel has its own scale


def _scales(model, images):
    layers = find_quantizable_layers(model)
    tensors = [ly.activation for ly in layers]
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".onnx") as f:
        onnx.save(model, f.name)
        hists = collect_histograms(f.name, tensors, images, bins=256)
    return {t: scale_from_amax(compute_amax("max", h.hist, h.edges)) for t, h in hists.items()}, hists


def test_histograms_cover_the_activations():
    model = tiny_conv_model()
    images = random_images(4)
    _, hists = _scales(model, images)
    assert hists["x"].absmax <= 1.0 + 1e-6 and not hists["x"].negative
    assert not hists["r1"].negative                       # after ReLU
    assert hists["flat"].negative
    assert all(h.hist.sum() > 0 for h in hists.values())


def test_qdq_graph_structure_and_numerics():
    model = tiny_conv_model()
    images = random_images(4)
    scales, _ = _scales(model, images)
    q = build_qdq_model(model, scales)
    onnx.checker.check_model(q, full_check=True)
    counts = describe_qdq(q)
    assert counts == {"quantize_linear": 3, "dequantize_linear": 6, "int8_weights": 3}
    inits = {i.name: i for i in q.graph.initializer}
    assert "w1" not in inits and inits["w1_int8"].data_type == onnx.TensorProto.INT8   # no float copy left
    for n in q.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            zp = onnx.numpy_helper.to_array(inits[n.input[2]])
            assert zp.dtype == np.int8 and not zp.any()                 # symmetric: zero point 0, signed
    conv1 = next(n for n in q.graph.node if n.name == "conv1")
    assert conv1.input[0] == "x_dequantized" and conv1.input[1] == "w1_dequantized"
    wdq = next(n for n in q.graph.node if n.name == "w1_DQ")
    assert {a.name: a.i for a in wdq.attribute}["axis"] == 0
    # ONNX Runtime runs it, and the result equals a numpy fake-quant of the first layer's input
    ref, got = run_model(model, images), run_model(q, images)
    assert got.shape == ref.shape
    rel = np.linalg.norm(got - ref) / np.linalg.norm(ref)
    assert 0 < rel < 0.05


def test_fake_quantize_matches_onnx_runtime_quantize_dequantize():
    """``quantize_tensor`` against ONNX Runtime's own QuantizeLinear → DequantizeLinear (int8, zero point 0),
    on values that hit ties (x.5 steps) and both saturation ends."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    scale = 0.02
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-4, 4, 500), np.arange(-10.5, 10.5, 1.0) * scale, [-9.0, 9.0]]).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
         helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])],
        "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [len(x)])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [len(x)])],
        initializer=[helper.make_tensor("s", TensorProto.FLOAT, [], [scale]),
                     helper.make_tensor("z", TensorProto.INT8, [], [0])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = sess.run(None, {"x": x})[0]
    assert np.array_equal(quantize_tensor(x, scale), expected)


def test_keep_float_leaves_the_layer_untouched():
    model = tiny_conv_model()
    scales, _ = _scales(model, random_images(2))
    q = build_qdq_model(model, scales, keep_float={"conv1"})
    conv1 = next(n for n in q.graph.node if n.name == "conv1")
    assert list(conv1.input) == ["x", "w1", "b1"]
    assert describe_qdq(q)["quantize_linear"] == 2
    assert "w1" in {i.name for i in q.graph.initializer}
    onnx.checker.check_model(q)


def test_missing_scale_is_an_error():
    model = tiny_conv_model()
    with pytest.raises(KeyError, match="r1"):
        build_qdq_model(model, {"x": 0.01, "flat": 0.1})
