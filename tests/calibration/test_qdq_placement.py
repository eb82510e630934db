"""Our Q/DQ placement against NVIDIA ModelOpt's ONNX PTQ on the same residual network.

``tests/calibration/fixtures/modelopt_qdq_pattern.json`` is ModelOpt's real output (nvidia-modelopt 0.47.0, made by
``benchmarks/modelopt/qdq_pattern.py`` in the environment of ``benchmarks/modelopt/requirements.txt``; its
``made_by`` entry says how). CI cannot run ModelOpt (it pins onnx 1.21 and onnxruntime-gpu), so it compares
against that file: same consumers quantized, same inputs, weight axes and source tensors.
"""
import json
import tempfile
from pathlib import Path

import numpy as np
import onnx

from int8_helpers import qdq_pattern, residual_model, run_model_on
from tocoad_edge.calibration.activations import collect_histograms
from tocoad_edge.calibration.float_layers import float_layers
from tocoad_edge.calibration.placement import extra_quant_inputs
from tocoad_edge.calibration.qdq import activation_tensors, build_qdq_model, find_quantizable_layers, quantized_tensors
from tocoad_edge.calibration.ranges import scale_from_amax

FIXTURE = Path(__file__).parent / "fixtures" / "modelopt_qdq_pattern.json"


def _calibrated(model):
    layers = find_quantizable_layers(model)
    images = np.random.default_rng(0).uniform(-1, 1, (8, 3, 16, 16)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        onnx.save(model, f"{tmp}/m.onnx")
        hists = collect_histograms(f"{tmp}/m.onnx", activation_tensors(model, layers), images, bins=256)
    return layers, {t: scale_from_amax(h.absmax) for t, h in hists.items()}, images


def test_placement_matches_modelopt_on_the_residual_network():
    """With ``--int8-float none`` (every layer INT8, ModelOpt's default) the placement is ModelOpt's."""
    model = residual_model()
    layers, scales, _ = _calibrated(model)
    ours = qdq_pattern(build_qdq_model(model, scales, layers=layers))
    theirs = json.loads(FIXTURE.read_text())
    assert ours["consumers"] == theirs["consumers"]
    assert float_layers(model, layers, "none") == {}


def test_residual_adds_quantize_the_shortcut_and_not_the_conv_branch():
    model = residual_model()
    extra = extra_quant_inputs(model, find_quantizable_layers(model))
    assert [(q.node, q.index, q.tensor, q.tied_to, q.reason) for q in extra] == [
        ("add1", 1, "stem.act", "b1b.conv", "residual_add"),     # stem output is the shortcut; b1b.bn fuses
        ("add2", 1, "add1", "b2pw.conv", "residual_add"),
        ("pool", 0, "add2", "head.conv", "pool")]


def test_keeping_a_layer_in_float_drops_the_qdq_of_its_fused_add():
    model = residual_model()
    layers, scales, images = _calibrated(model)
    q = build_qdq_model(model, scales, keep_float={"b1b.conv"}, layers=layers)
    add1 = next(n for n in q.graph.node if n.name == "add1")
    assert list(add1.input) == ["b1b.bn", "stem.act"]                # no INT8 epilogue without the INT8 conv
    add2 = next(n for n in q.graph.node if n.name == "add2")
    assert add2.input[1] == "add1_dequantized"
    assert "stem.act" not in quantized_tensors(model, layers, {"b1b.conv", "b1a.conv"})
    onnx.checker.check_model(q, full_check=True)
    ref, got = run_model_on(model, images, "input"), run_model_on(q, images, "input")
    rel = np.linalg.norm(got - ref) / np.linalg.norm(ref)
    assert 0 < rel < 0.1


def test_placement_matches_modelopt_on_the_real_backbone(tmp_path):
    """EfficientNet-Lite0 patch embedder at 64 px: 35 convolutions, 6 residual Adds and the Resize of the deep
    features, placed as ModelOpt placed them (``Shape`` nodes reading a Q/DQ'd tensor's shape are ignored)."""
    import pytest

    pytest.importorskip("torch")          # the export needs the training extra
    from tocoad_edge.export.onnx_export import export_onnx
    from tocoad_edge.models.backbones import build_backbone
    from tocoad_edge.models.patch_embedder import PatchEmbedder

    emb = PatchEmbedder(build_backbone("efficientnet_lite0"), ["blocks.4", "blocks.10"], aggregation_mode="patchcore",
                        aggregation_dim=192)
    model = onnx.load(str(export_onnx(emb, tmp_path / "backbone.onnx", 64)))
    layers = find_quantizable_layers(model)
    ours = qdq_pattern(build_qdq_model(model, {t: 0.05 for t in activation_tensors(model, layers)}, layers=layers))
    theirs = json.loads((FIXTURE.parent / "modelopt_qdq_pattern_lite0_64.json").read_text())

    def placed(pattern):            # by (op, ordinal): the writers may order independent nodes differently
        return sorted((e for e in pattern["consumers"] if e["op"] != "Shape"), key=lambda e: (e["op"], e["ordinal"]))

    assert placed(ours) == placed(theirs)
    # six residual Adds, and the Add of each aggregation's two depthwise convolutions
    assert sum(e["op"] == "Add" for e in placed(ours)) == 8
    assert [e["ordinal"] for e in placed(ours) if e["op"] == "Gather"] == [1, 2]  # blocks.4 is quantized for its reader

    # The export's default deliberately differs from ModelOpt's default placement in exactly one entry: the stem
    # convolution, whose input is the normalised image, stays float (``float_layers.py``). With
    # ``--int8-float stem+embedding`` the four aggregation convolutions that write the embeddings stay float too,
    # and with them the Q/DQ tied to them: each aggregation's Add and the Resize of the deep one. Every other
    # Q/DQ is ModelOpt's.
    ordinal = {n.name: k for k, n in enumerate(n for n in model.graph.node if n.op_type == "Conv")}
    scales = {t: 0.05 for t in activation_tensors(model, layers)}
    aggregation = ["/Conv", "/Conv_1", "/Conv_2", "/Conv_3"]
    assert float_layers(model, layers) == {"stem": ["/_conv_stem/Conv"]}
    assert float_layers(model, layers, "embedding") == {"embedding": aggregation}
    writes = {o for n in model.graph.node if n.name in aggregation for o in n.output}
    adds = [k for k, n in enumerate(n for n in model.graph.node if n.op_type == "Add") if set(n.input) <= writes]
    assert len(adds) == 2
    for rule, dropped in (("stem", {("Conv", 0)}),
                          ("stem+embedding", {("Conv", 0), *(("Conv", ordinal[c]) for c in aggregation),
                                              *(("Add", k) for k in adds), ("Resize", 0)})):
        keep = {n for names in float_layers(model, layers, rule).values() for n in names}
        ours_rule = qdq_pattern(build_qdq_model(model, scales, keep_float=keep, layers=layers))
        assert placed(ours_rule) == [e for e in placed(theirs) if (e["op"], e["ordinal"]) not in dropped]
        assert len(placed(theirs)) - len(placed(ours_rule)) == len(dropped)
