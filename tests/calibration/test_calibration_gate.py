"""Accuracy gate: metrics, pass/fail, the failure report, the labelled set, the sensitivity search."""
import numpy as np
import pytest

from int8_helpers import random_images, tiny_conv_model
from tocoad_edge.calibration.gate import GateCriteria, evaluate_gate, gate_failure
from tocoad_edge.calibration.gate_data import build_labelled_set, patch_defect
from tocoad_edge.errors import ExportError


def test_gate_passes_and_fails_on_the_criteria():
    rng = np.random.default_rng(0)
    labels = np.array([0] * 20 + [1] * 20)
    fp32 = np.concatenate([rng.normal(1, 0.1, 20), rng.normal(3, 0.3, 20)])
    ok = evaluate_gate(fp32, fp32 * 1.01 + 1e-4, labels, 0.01)
    assert ok.passed and ok.spearman == pytest.approx(1.0) and ok.auroc_drop == pytest.approx(0.0)
    noisy = fp32 + rng.normal(0, 0.3, 40)
    bad = evaluate_gate(fp32, noisy, labels, 0.01)
    assert not bad.passed and bad.spearman < 0.99
    strict = evaluate_gate(fp32, fp32, labels, 0.0, GateCriteria(min_spearman=1.01))
    assert not strict.passed
    with pytest.raises(ExportError, match="relative error"):
        evaluate_gate(fp32, fp32, labels, float("nan"))


def test_gate_fails_on_the_embedding_error_when_the_scores_still_rank_alike():
    """The case the synthetic set cannot see: a coarse activation scale perturbs every embedding of a real ONNX
    model, the image scores keep their order on easy anomalies, and only the embedding bound fails it."""
    import tempfile

    import onnx

    from int8_helpers import run_model
    from tocoad_edge.calibration.activations import collect_histograms
    from tocoad_edge.calibration.gate import relative_error
    from tocoad_edge.calibration.ranges import scale_from_amax
    from tocoad_edge.calibration.qdq import build_qdq_model, find_quantizable_layers

    model = tiny_conv_model()
    layers = find_quantizable_layers(model)
    normals = random_images(6, seed=2)
    gate_set = build_labelled_set(normals, per_image=1, seed=0, use_synth=False)
    bank = run_model(model, random_images(4, seed=3)).reshape(-1, 6)
    from tocoad_edge.runtime.search.exact import ExactSearch

    search = ExactSearch(bank)
    ref = run_model(model, gate_set.images)
    ref_scores = search.image_scores(ref)

    with tempfile.TemporaryDirectory() as tmp:
        onnx.save(model, f"{tmp}/m.onnx")
        hists = collect_histograms(f"{tmp}/m.onnx", [ly.activation for ly in layers], random_images(8, seed=1))
    calibrated = {ly.activation: scale_from_amax(hists[ly.activation].absmax) for ly in layers}

    def gate_with(coarsen: float):
        scales = {t: s * coarsen for t, s in calibrated.items()}
        got = run_model(build_qdq_model(model, scales, layers=layers), gate_set.images)
        return evaluate_gate(ref_scores, search.image_scores(got), gate_set.labels, relative_error(ref, got),
                             GateCriteria(min_spearman=0.0, max_auroc_drop=1.0))

    fine, coarse = gate_with(1.0), gate_with(16.0)   # 16 × the step: 8 levels a side
    assert fine.embedding_error < GateCriteria().max_embedding_error < coarse.embedding_error
    assert fine.passed and not coarse.passed
    assert "embedding error" in coarse.summary()


def test_gate_failure_report_names_the_fix():
    labels = np.array([0, 0, 1, 1])
    res = evaluate_gate(np.array([1, 2, 3, 4.0]), np.array([4, 3, 2, 1.0]), labels, 0.2)
    err = gate_failure(res, GateCriteria(), [{"description": "all layers INT8, max", "gate": res.to_dict(),
                                              "embedding_rel_error": 0.2}])
    assert isinstance(err, ExportError)
    text = str(err)
    assert "--allow-degraded" in text and "Spearman" in text and "all layers INT8, max" in text
    assert "embedding error 20.0 %" in text and "--int8-float" in text


def test_patch_defect_changes_only_a_local_region_and_is_deterministic():
    img = np.full((64, 64, 3), 128, np.uint8)
    img[::8] = 90
    a = patch_defect(img, np.random.default_rng(3))
    b = patch_defect(img, np.random.default_rng(3))
    assert np.array_equal(a, b)
    changed = np.any(a != img, axis=2)
    assert 0 < changed.mean() < 0.25


def test_labelled_set_fallback_generator():
    normals = random_images(3, size=32)
    s = build_labelled_set(normals, per_image=2, seed=0, use_synth=False)
    assert s.generator == "patch_defect"
    assert len(s) == 9 and s.labels.sum() == 6
    assert np.array_equal(s.images[:3], normals)


def test_calibrate_and_gate_keeps_sensitive_layers_in_float():
    """A strict gate forces the sensitivity pass; the result records the float layers it chose."""
    from tocoad_edge.calibration.pipeline import calibrate_and_gate
    from tocoad_edge.runtime.search.exact import ExactSearch

    model = tiny_conv_model()
    from int8_helpers import run_model

    calib = random_images(8, seed=1)
    normals = random_images(6, seed=2)
    gate_set = build_labelled_set(normals, per_image=1, seed=0, use_synth=False)
    bank = run_model(model, random_images(4, seed=3)).reshape(-1, 6)
    search = ExactSearch(bank)
    _, easy = calibrate_and_gate(model, calib, gate_set, search, method="auto", float_rule="none",
                                 criteria=GateCriteria(min_spearman=-1.0, max_auroc_drop=1.0, max_embedding_error=1.0))
    assert easy["gate"]["passed"] and easy["layers_float"] == [] and easy["algorithm"] in ("max", "percentile",
                                                                                             "entropy")
    assert {t["method"] for t in easy["tried"]} == {"max", "percentile", "entropy"}
    _, strict = calibrate_and_gate(model, calib, gate_set, search, method="max", float_rule="none",
                                   criteria=GateCriteria(min_spearman=1.5))
    assert not strict["gate"]["passed"]
    assert len(strict["sensitivity"]) == 3 and len(strict["tried"]) >= 2
    assert {s["layer"] for s in strict["sensitivity"]} == {"conv1", "conv2", "proj"}
