"""Bank compression at export: parsing of --bank, the measured candidates and the gate, and a bundle whose bank
was compressed (projection in the ONNX graph, float16 storage, re-derived thresholds) that the runtime scores."""
import json

import numpy as np
import pytest

from tocoad_edge.errors import ConfigError
from tocoad_edge.export.bank_compression import (BankCandidate, CandidateEvaluator, Gate, choose, cost,
                                                 default_candidates, parse_bank_option)
from tocoad_edge.train.config import ScoringConfig


@pytest.mark.parametrize("text,want", [("full", "full"), ("AUTO", "auto"),
                                       ("2%x128xfloat16", BankCandidate(0.02, 128, "float16")),
                                       ("0.05xallxfp32", BankCandidate(0.05, None, "float32"))])
def test_parse_bank_option(text, want):
    assert parse_bank_option(text) == want


@pytest.mark.parametrize("text,match", [("2%x128", "RATIOxDIMSxDTYPE"), ("two%x128xfloat16", "not a number"),
                                        ("0%x128xfloat16", "out of range"), ("2%x128xfloat61", "did you mean")])
def test_parse_bank_option_errors_say_what_to_give(text, match):
    with pytest.raises(ConfigError, match=match) as e:
        parse_bank_option(text)
    assert "2%x128xfloat16" in e.value.fix


def _low_rank_set(seed=0, n_bank=3000, dim=96, rank=12, images=24, patches=64, off_subspace=False):
    """Embeddings on a rank-``rank`` subspace plus small noise. Anomalous patches lie far out along that subspace,
    or (``off_subspace``) off it, where a projection onto the normal patches' principal axes cannot see them."""
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((rank, dim)).astype(np.float32)

    def sample(n):
        return (rng.standard_normal((n, rank)).astype(np.float32) @ basis
                + 0.01 * rng.standard_normal((n, dim)).astype(np.float32))
    bank = sample(n_bank)
    normal = sample(images * patches).reshape(images, patches, dim)
    anomal = sample(images * patches).reshape(images, patches, dim)
    if off_subspace:
        anomal[:, :4] += 3.0 * rng.standard_normal((images, 4, dim)).astype(np.float32)
    else:
        anomal[:, :4] += 3.0 * rng.standard_normal((images, 4, rank)).astype(np.float32) @ basis
    gate = np.concatenate([normal[: images // 2], anomal[: images // 2]])
    labels = np.r_[np.zeros(images // 2), np.ones(images // 2)].astype(int)
    return bank, gate, labels, normal[images // 2:]


def _evaluator(off_subspace=False):
    bank, gate, labels, hold = _low_rank_set(off_subspace=off_subspace)
    return CandidateEvaluator(bank, gate, labels, hold, source_patches=30000, grid=(8, 8), input_hw=(64, 64),
                              sigma=2.0, scoring_cfg=ScoringConfig(), threads=1)


def test_full_candidate_equals_reference_and_projection_keeps_scores_on_low_rank_data():
    ev = _evaluator()
    row, res = ev.evaluate(BankCandidate(None, None, "float32"))
    assert row["spearman_vs_full"] == 1.0 and row["auroc_drop"] == 0.0 and row["map_mean_abs_error"] == 0.0
    row16, res16 = ev.evaluate(BankCandidate(None, 16, "float16"))     # the data has rank 12
    assert res16.stored.dtype == np.float16 and res16.bank.shape == (3000, 16) and res16.projection.shape == (96, 16)
    assert row16["passes"] and row16["spearman_vs_full"] > 0.99
    assert row16["bank_mb"] < row["bank_mb"] / 10
    row4, _ = ev.evaluate(BankCandidate(None, 4, "float16"))           # below the rank: scores scramble
    assert row4["spearman_vs_full"] < row16["spearman_vs_full"] and not row4["passes"]


def test_gate_rejects_a_projection_that_hides_the_anomalies():
    row, _ = _evaluator(off_subspace=True).evaluate(BankCandidate(None, 16, "float16"))
    assert not row["passes"] and row["auroc_drop"] > 0.1


def test_smaller_coreset_is_a_prefix_of_the_greedy_order():
    ev = _evaluator()
    small, large = set(ev.rows(0.01)), set(ev.rows(0.05))
    assert len(small) == 300 and len(large) == 1500 and small <= large


def test_choose_keeps_the_cheapest_candidate_that_passes():
    ev = _evaluator()
    cands = [BankCandidate(None, None, "float16"), BankCandidate(None, 16, "float16"),
             BankCandidate(None, 4, "float16"), BankCandidate(0.05, 16, "float16")]
    res = choose(ev, cands, measure_all=True)
    rows = res.report["candidates"]
    costs = [cost(BankCandidate(r["ratio"], r["dims"], r["dtype"]), 3000, 96, 30000) for r in rows]
    assert costs == sorted(costs) and len(rows) == 4
    passing = [r for r in rows if r["passes"]]
    assert res.report["chosen"] == passing[0]["candidate"]
    assert all(not r["passes"] for r in rows[:rows.index(passing[0])])
    strict = choose(ev, cands, Gate(min_spearman=1.01))                 # nothing can pass: the trained bank
    assert strict.scoring is None and strict.projection is None and strict.bank.shape == (3000, 96)
    assert "no candidate passed" in strict.report["reason"]


def test_default_candidates_only_shrink():
    cands = default_candidates(0.1, 384)
    assert {c.ratio for c in cands} == {None, 0.05, 0.02, 0.01}
    assert {c.dims for c in cands} == {None, 256, 128, 64}
    assert {c.ratio for c in default_candidates(0.03, 128)} == {None, 0.02, 0.01}
    assert {c.dims for c in default_candidates(0.03, 128)} == {None, 64}


def test_compressed_bundle_is_scored_by_the_runtime(tmp_path, tiny_run, sample_dataset):
    import onnxruntime as ort

    from tocoad_edge.data import load_dataset, read_image
    from tocoad_edge.export.bundle_writer import ExportOptions, write_bundle
    from tocoad_edge.runtime import Detector

    out = write_bundle(tiny_run, tmp_path / "b", ExportOptions(bank="50%x32xfloat16"))
    m = json.loads((out / "manifest.json").read_text())
    assert m["memory_bank"]["dim"] == 32 and m["memory_bank"]["dtype"] == "float16"
    assert m["features"]["dim"] == 32 and m["features"]["projection"] == "pca"
    assert np.load(out / "coreset.npy").dtype == np.float16
    assert "backbone.safetensors" not in m["files"]                     # the torch backend cannot use it
    info = m["search"]["bank"]
    assert info["chosen"] == "50%x32xfloat16" and info["candidates"][0]["dims"] == 32
    assert m["scoring"]["image_threshold"] == pytest.approx(info["candidates"][0]["image_threshold"])
    assert json.loads((out / "parity.json").read_text())["bank_compression"]["chosen"] == "50%x32xfloat16"
    sess = ort.InferenceSession(str(out / "backbone.onnx"), providers=["CPUExecutionProvider"])
    assert sess.get_outputs()[0].shape[-1] == 32
    frames = [read_image(t.path) for t in load_dataset(sample_dataset, require_test=True).test]
    with Detector.open(out, search="exact", threads=1) as det:
        preds = [det.predict(f) for f in frames]
    assert all(np.isfinite(p.raw_score) and p.anomaly_map.shape == f.shape[:2] for p, f in zip(preds, frames))
