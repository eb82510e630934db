"""Exact and HNSW search agree (within the configured image-score bound); exact is exact."""
import logging

import numpy as np
import pytest

from tocoad_edge.runtime.search.exact import ExactSearch
from tocoad_edge.runtime.search.hnsw import HnswSearch, build_hnsw_index


def _brute(q, bank):
    d = ((q.astype(np.float64)[:, None, :] - bank.astype(np.float64)[None]) ** 2).sum(-1)
    return np.sqrt(d.min(1))


@pytest.mark.parametrize("chunk", [7, 64, 10000])
def test_exact_matches_brute_force(chunk):
    rng = np.random.default_rng(0)
    bank = rng.standard_normal((300, 24)).astype(np.float32)
    q = rng.standard_normal((50, 24)).astype(np.float32)
    d = ExactSearch(bank, chunk_entries=chunk, threads=1).query(q)
    assert d.dtype == np.float32 and d.shape == (50,)
    np.testing.assert_allclose(d, _brute(q, bank), rtol=1e-4, atol=1e-4)


def test_exact_float16_bank_kept_and_widened_agree():
    rng = np.random.default_rng(1)
    bank16 = rng.standard_normal((200, 16)).astype(np.float16)
    q = rng.standard_normal((40, 16)).astype(np.float32)
    kept = ExactSearch(bank16, keep_float16=True, chunk_entries=64)
    widened = ExactSearch(bank16)
    assert kept.bank.dtype == np.float16 and widened.bank.dtype == np.float32
    np.testing.assert_allclose(kept.query(q), widened.query(q), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(widened.query(q), _brute(q, bank16.astype(np.float32)), rtol=1e-4, atol=1e-4)


def test_hnsw_agrees_with_exact_on_random_bank(tmp_path):
    rng = np.random.default_rng(2)
    bank = rng.standard_normal((2000, 32)).astype(np.float32)
    build_hnsw_index(bank, tmp_path / "i.hnsw", M=16, ef_construction=100)
    q = bank[rng.integers(0, 2000, 400)] + 0.1 * rng.standard_normal((400, 32)).astype(np.float32)
    exact = ExactSearch(bank).query(q)
    for threads in (1, 2):
        h = HnswSearch(bank, tmp_path / "i.hnsw", ef=200, threads=threads).query(q)
        assert np.mean(np.isclose(h, exact, rtol=1e-4, atol=1e-4)) > 0.97
        assert np.all(h >= exact - 1e-3)          # HNSW can only miss the true nearest neighbour


def test_bundle_search_paths_agree_within_configured_bound(caplog, sample_dataset, tiny_bundle):
    from tocoad_edge.export.search_tuning import MAX_SCORE_ERROR
    from tocoad_edge.data import load_dataset, read_image
    from tocoad_edge.runtime import Detector

    data, bundle = sample_dataset, tiny_bundle
    frames = [read_image(t.path) for t in load_dataset(data, require_test=True).test]
    with Detector.open(bundle, search="exact", threads=1) as ex, Detector.open(bundle, search="hnsw", threads=2) as hn:
        assert hn.search.ef == hn.manifest.search["ef_per_precision"]["fp32"]
        for f in frames:
            e, h = ex.predict(f), hn.predict(f)
            assert abs(h.raw_score - e.raw_score) <= MAX_SCORE_ERROR * abs(e.raw_score) + 1e-6
    with caplog.at_level(logging.INFO, logger="tocoad_edge.runtime"):
        with Detector.open(bundle, search="auto", threads=1) as auto:
            sel = auto.describe()["search"]["selection"]
            assert sel["chosen"] in ("exact", "graph", "refined") and sel["chosen"] == auto.search.name
            assert sel["exact_ms"] > 0 and sel["graph_ms"] > 0 and sel["refined_ms"] > 0
            assert "hnsw_ms" not in sel            # the index alone scores approximately: never auto's choice
    assert any("search auto:" in r.getMessage() for r in caplog.records)


def test_ef_tuning_rows_are_measured(tiny_bundle):
    import json

    bundle = tiny_bundle
    m = json.loads((bundle / "manifest.json").read_text())
    rows = m["search"]["ef_tuning"]["fp32"]
    assert isinstance(rows, list) and rows
    chosen = m["memory_bank"]["index"]["ef"]
    assert chosen == max(m["search"]["ef_per_precision"].values())
    row = next(r for r in rows if r["ef"] == chosen)
    assert row["max_image_score_rel_error"] <= m["search"]["max_score_error"]


def test_choose_ef_takes_one_step_of_margin():
    from tocoad_edge.export.search_tuning import choose_ef

    rows = [{"ef": e, "max_image_score_rel_error": err} for e, err in ((16, 0.02), (32, 0.0), (48, 0.0), (64, 0.0))]
    assert choose_ef(rows, safety_steps=0) == 32
    assert choose_ef(rows) == 48
    assert choose_ef(rows[:2]) == 32                                  # no larger candidate: the largest
    assert choose_ef([{"ef": 16, "max_image_score_rel_error": 0.5}]) == 16
    # none passes (a projected index's floor): the smallest ef with the least error, not the largest
    floor = [{"ef": e, "max_image_score_rel_error": err} for e, err in ((16, 0.08), (32, 0.05), (48, 0.05), (64, 0.05))]
    assert choose_ef(floor) == 32


def test_ef_sweep_stops_after_the_safety_margin(tmp_path):
    from tocoad_edge.export.search_tuning import EF_CANDIDATES, PLATEAU_STEPS, choose_ef, measure_ef

    rng = np.random.default_rng(3)
    bank = rng.standard_normal((3000, 16)).astype(np.float32)
    build_hnsw_index(bank, tmp_path / "i.hnsw", M=16, ef_construction=200)
    patches = (bank[rng.integers(0, 3000, 6 * 50)] + 0.05 * rng.standard_normal((300, 16))).astype(np.float32)
    rows = measure_ef(bank, tmp_path / "i.hnsw", patches.reshape(6, 50, 16), threads=1)
    efs = [r["ef"] for r in rows]
    assert efs == list(EF_CANDIDATES[:len(efs)])                   # increasing, from the smallest candidate
    first_ok = next(i for i, r in enumerate(rows) if r["max_image_score_rel_error"] <= 0.01)
    assert len(rows) == first_ok + 2                               # one safety step measured, nothing beyond
    assert choose_ef(rows) == efs[-1]
    strict = measure_ef(bank, tmp_path / "i.hnsw", patches.reshape(6, 50, 16), bound=-1.0, threads=1)
    errs = [r["max_image_score_rel_error"] for r in strict]
    # nothing passes: the sweep runs until the error stops improving for PLATEAU_STEPS candidates
    assert len(strict) < len(EF_CANDIDATES) and min(errs[:-PLATEAU_STEPS]) <= min(errs[-PLATEAU_STEPS:])


def test_query_ef_follows_the_precision(tiny_bundle):
    import dataclasses

    from tocoad_edge.bundle.manifest import read_manifest
    from tocoad_edge.runtime.detector import query_ef

    m = read_manifest(tiny_bundle)
    both = dataclasses.replace(m, search={**m.search, "ef_per_precision": {"fp32": 48, "int8": 96}})
    assert query_ef(both, "fp32") == 48 and query_ef(both, "int8") == 96
    assert query_ef(dataclasses.replace(m, search={}), "int8") == m.memory_bank.index.ef   # older bundles


def test_refined_detector_scores_like_exact(sample_dataset, tiny_bundle):
    from tocoad_edge.data import load_dataset, read_image
    from tocoad_edge.runtime import Detector

    frames = [read_image(t.path) for t in load_dataset(sample_dataset, require_test=True).test]
    with Detector.open(tiny_bundle, search="exact", threads=1) as ex, \
            Detector.open(tiny_bundle, search="refined", threads=1) as rf:
        assert rf.search.name == "refined" and rf.describe()["search"]["image_score"] == "exact"
        for f in frames:
            e, r = ex.predict(f), rf.predict(f)
            assert abs(r.raw_score - e.raw_score) <= 1e-5 * abs(e.raw_score) + 1e-6     # the image score is exact
            assert r.is_anomalous == e.is_anomalous
            assert r.anomaly_map.shape == e.anomaly_map.shape


def test_map_ef_is_the_smallest_ef_with_enough_recall(tiny_bundle):
    import dataclasses

    from tocoad_edge.bundle.manifest import read_manifest
    from tocoad_edge.runtime.detector import map_ef, query_ef

    m = read_manifest(tiny_bundle)
    assert m.memory_bank.index.kind == "projected_hnsw"
    full = dataclasses.replace(m, memory_bank=dataclasses.replace(
        m.memory_bank, index=dataclasses.replace(m.memory_bank.index, kind="hnsw", projection=None, dims=None,
                                                 candidates=1, lend=0)))
    rows = [{"ef": 16, "recall_at_1": 0.95, "mean_distance_rel_error": 0.004},
            {"ef": 32, "recall_at_1": 0.985, "mean_distance_rel_error": 0.002},
            {"ef": 48, "recall_at_1": 0.999, "mean_distance_rel_error": 0.001}]
    search = {"ef_tuning": {"fp32": rows}, "ef_per_precision": {"fp32": 48}}
    tuned = dataclasses.replace(full, search=search)
    assert map_ef(tuned, "fp32") == 32
    assert map_ef(tuned, "int8") == query_ef(tuned, "int8")               # no table for int8: the tuned ef
    # a projected index: recall is capped by its dims and candidates; the map error decides
    projected = dataclasses.replace(m, search=search)
    assert map_ef(projected, "fp32") == 16
    rows[0]["mean_distance_rel_error"] = 0.02
    assert map_ef(projected, "fp32") == 32


@pytest.mark.parametrize("compiled", [True, False])
def test_two_thread_refined_predict_draws_the_same_map_beside_the_recheck(sample_dataset, tiny_bundle, compiled):
    """With two search threads the anomaly map is drawn on another thread while the refined search re-checks the
    image score: by the search's worker before it joins the compiled loop (or by the caller after the loop, where
    the worker had not started by then), or (numpy loop) on the detector's map pool. Score, decision and map are
    those of the one-thread detector, and close() stops the workers."""
    import threading

    from tocoad_edge.data import load_dataset, read_image
    from tocoad_edge.runtime import Detector

    frames = [read_image(t.path) for t in load_dataset(sample_dataset, require_test=True).test]
    with Detector.open(tiny_bundle, search="refined", threads=1) as one, \
            Detector.open(tiny_bundle, search="refined", threads=2) as two:
        if not compiled:
            one.search.exact.kernels = two.search.exact.kernels = None     # the numpy reference loop
        drew, draw = [], two._normalised_map

        def recorded(*args):
            drew.append(threading.current_thread().name)
            return draw(*args)
        two._normalised_map = recorded
        for f in frames:
            a, b = one.predict(f), two.predict(f)
            assert b.raw_score == a.raw_score and b.is_anomalous == a.is_anomalous
            np.testing.assert_allclose(b.anomaly_map, a.anomaly_map, rtol=1e-5, atol=1e-5)
            assert b.anomaly_map.shape == f.shape[:2]
        assert two.search.runs_beside == compiled and one._map_pool is None
        assert len(drew) == len(frames)
        where = {n.split("_")[0] for n in drew}
        assert (where <= {"tocoad-search", threading.current_thread().name} and two._map_pool is None if compiled
                else where == {"tocoad-map"})
        pools = [two._map_pool] if not compiled else [two.search.approx.splitter._pool]
    assert all(p._shutdown for p in pools)
