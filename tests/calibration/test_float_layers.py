"""Which layers the INT8 export keeps in float by rule: the stem (reads the normalised image) and the layers that
write the embeddings, found on real ONNX graphs."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from int8_helpers import random_images, residual_model, run_model, tiny_conv_model
from tocoad_edge.calibration.float_layers import FLOAT_RULES, embedding_layers, float_layers, stem_layers
from tocoad_edge.calibration.gate import GateCriteria
from tocoad_edge.calibration.gate_data import build_labelled_set
from tocoad_edge.calibration.pipeline import search_int8
from tocoad_edge.calibration.qdq import find_quantizable_layers
from tocoad_edge.errors import ExportError
from tocoad_edge.runtime.search.exact import ExactSearch


def two_scale_embedder(size: int = 16):
    """uint8 image → normalise → stem Conv → Relu → Conv (stride 2) → Relu; the embedding is the concatenation of
    an averaging Conv on each of the two feature maps (the deep one resized up), as the patch embedders do."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(a, n) for a, n in [
        (rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32), "w_stem"),
        (rng.normal(0, 0.3, (8, 8, 3, 3)).astype(np.float32), "w_deep"),
        (np.full((8, 1, 3, 3), 1 / 9, np.float32), "w_avg_a"),
        (np.full((8, 1, 3, 3), 1 / 9, np.float32), "w_avg_b"),
        (np.array(1 / 64.0, np.float32), "inv"),
        (np.array([1, 1, 2, 2], np.float32), "up"),
        (np.array([1, -1, 16], np.int64), "shape")]]
    nodes = [
        helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT, name="cast"),
        helper.make_node("Transpose", ["f"], ["t"], perm=[0, 3, 1, 2], name="nchw"),
        helper.make_node("Mul", ["t", "inv"], ["x"], name="normalise"),
        helper.make_node("Conv", ["x", "w_stem"], ["s"], pads=[1] * 4, name="stem"),
        helper.make_node("Relu", ["s"], ["sa"], name="stem_act"),
        helper.make_node("Conv", ["sa", "w_deep"], ["d"], pads=[1] * 4, strides=[2, 2], name="deep"),
        helper.make_node("Relu", ["d"], ["da"], name="deep_act"),
        helper.make_node("Conv", ["sa", "w_avg_a"], ["ea"], pads=[1] * 4, group=8, name="avg_a"),
        helper.make_node("Conv", ["da", "w_avg_b"], ["eb"], pads=[1] * 4, group=8, name="avg_b"),
        helper.make_node("Resize", ["eb", "", "up"], ["ebu"], mode="nearest", name="up"),
        helper.make_node("Concat", ["ea", "ebu"], ["cat"], axis=1, name="cat"),
        helper.make_node("Transpose", ["cat"], ["nhwc"], perm=[0, 2, 3, 1], name="nhwc"),
        helper.make_node("Reshape", ["nhwc", "shape"], ["embeddings"], name="patches")]
    graph = helper.make_graph(nodes, "two_scale",
                              [helper.make_tensor_value_info("image", TensorProto.UINT8, [1, size, size, 3])],
                              [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT,
                                                             [1, size * size, 16])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def test_stem_and_embedding_layers_of_a_two_scale_embedder():
    model = two_scale_embedder()
    layers = find_quantizable_layers(model)
    assert stem_layers(model, layers) == ["stem"]                  # "deep" reads the stem's output: not a stem
    assert embedding_layers(model, layers) == ["avg_a", "avg_b"]   # through Resize / Concat / Reshape
    assert float_layers(model, layers) == {"stem": ["stem"]}
    assert float_layers(model, layers, "stem+embedding") == {"stem": ["stem"], "embedding": ["avg_a", "avg_b"]}
    assert float_layers(model, layers, "embedding") == {"embedding": ["avg_a", "avg_b"]}
    assert float_layers(model, layers, "none") == {}


def test_stem_and_embedding_layers_of_the_small_networks():
    for model, stem, emb in ((tiny_conv_model(), ["conv1"], ["proj"]), (residual_model(), ["stem.conv"], ["proj"])):
        layers = find_quantizable_layers(model)
        assert (stem_layers(model, layers), embedding_layers(model, layers)) == (stem, emb)


def test_unknown_rule_is_refused_with_a_suggestion():
    model = tiny_conv_model()
    with pytest.raises(ExportError, match="did you mean 'stem'") as err:
        float_layers(model, find_quantizable_layers(model), "stme")
    assert err.value.fix and all(r in str(err.value) for r in FLOAT_RULES)


def test_every_search_configuration_keeps_the_boundary_layers_in_float():
    model = two_scale_embedder()
    gate_set = build_labelled_set(random_images(6, seed=2), per_image=1, seed=0, use_synth=False)
    search = ExactSearch(run_model(model, random_images(4, seed=3)).reshape(-1, 16))
    found = search_int8(model, random_images(8, seed=1), gate_set, search, method="max",
                        criteria=GateCriteria(min_spearman=1.5), float_rule="stem+embedding")   # unreachable gate
    assert len(found.tried) > 1
    assert all({"stem", "avg_a", "avg_b"} <= t.keep_float for t in found.tried)
    assert {s["layer"] for s in found.sensitivity} == {"deep"}             # only INT8 layers are ranked
    report = found.report("max", 8, GateCriteria(min_spearman=1.5), gate_set.generator)
    assert report["float_rule"] == "stem+embedding" and report["layers_float"][:3] == ["avg_a", "avg_b", "deep"]
    assert report["layers_float_by_rule"] == {"stem": ["stem"], "embedding": ["avg_a", "avg_b"]}
    none = search_int8(model, random_images(8, seed=1), gate_set, search, method="max",
                       criteria=GateCriteria(min_spearman=-1, max_auroc_drop=1, max_embedding_error=1),
                       float_rule="none")
    assert none.best.keep_float == frozenset() and none.best.result.passed
    q = none.best.model
    assert sum(n.op_type == "QuantizeLinear" for n in q.graph.node) == 4   # stem, deep, avg_a/b inputs + resize
