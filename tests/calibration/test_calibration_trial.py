"""The calibration search's typed trials: ranking, the manifest entry, and the search result export reads."""
import numpy as np

from int8_helpers import random_images, run_model, tiny_conv_model
from tocoad_edge.calibration.gate import GateCriteria, GateResult
from tocoad_edge.calibration.gate_data import build_labelled_set
from tocoad_edge.calibration.pipeline import search_int8
from tocoad_edge.calibration.trial import Trial
from tocoad_edge.runtime.search.exact import ExactSearch


def _trial(passed: bool, spearman: float, drop: float, err: float, keep=frozenset()) -> Trial:
    res = GateResult(spearman=spearman, auroc_fp32=0.9, auroc_int8=0.9 - drop, auroc_drop=drop, images=8,
                     anomalies=4, passed=passed)
    return Trial(description=f"t{spearman}", method="max", keep_float=frozenset(keep), result=res,
                 embedding_rel_error=err, model=object())


def test_rank_prefers_a_pass_then_spearman_less_the_drop_then_the_smaller_error():
    failing_high = _trial(False, 0.999, 0.0, 0.01)
    passing_low = _trial(True, 0.990, 0.004, 0.05)
    assert max([failing_high, passing_low], key=Trial.rank) is passing_low
    steady = _trial(False, 0.96, 0.0, 0.01)
    dropped = _trial(False, 0.98, 0.03, 0.01)          # 0.98 - 0.03 < 0.96
    gained = _trial(False, 0.95, -0.02, 0.01)          # an AUROC gain is no bonus: 0.95, not 0.97
    assert max([dropped, steady], key=Trial.rank) is steady
    assert max([gained, steady], key=Trial.rank) is steady
    a, b = _trial(False, 0.9, 0.0, 0.02), _trial(False, 0.9, 0.0, 0.01)
    assert max([a, b], key=Trial.rank) is b


def test_to_dict_is_the_manifest_entry_without_the_model():
    t = _trial(True, 0.995, 0.001, 0.03, keep={"conv2", "conv1"})
    d = t.to_dict()
    assert list(d) == ["description", "keep_float", "gate", "embedding_rel_error", "method"]
    assert d["keep_float"] == ["conv1", "conv2"] and d["gate"] == t.result.to_dict()


def test_search_result_carries_the_gate_result_and_the_cache_scales_of_the_int8_layers():
    model = tiny_conv_model()
    gate_set = build_labelled_set(random_images(6, seed=2), per_image=1, seed=0, use_synth=False)
    search = ExactSearch(run_model(model, random_images(4, seed=3)).reshape(-1, 6))
    found = search_int8(model, random_images(8, seed=1), gate_set, search, method="auto",
                        criteria=GateCriteria(min_spearman=0.9999))
    report = found.report("auto", 8, GateCriteria(min_spearman=0.9999), gate_set.generator)
    assert found.best in found.tried and len(found.tried) > 3          # the sensitivity pass ran
    gate = {k: v for k, v in report["gate"].items() if k not in ("criteria", "generator")}
    assert gate == found.best.result.to_dict()
    assert report["tried"] == [t.to_dict() for t in found.tried]
    int8 = {ly["activation"]: ly["activation_scale"] for ly in report["layers"] if ly["precision"] == "int8"}
    assert found.int8_scales() == int8 and len(int8) < len(report["layers"])
    assert all(np.isfinite(s) and s > 0 for s in int8.values())
