"""benchmarks/jitter_probe.py runs and reports every stage's spread (keys and ordering only: no timing is asserted)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

PROBE = Path(__file__).resolve().parents[2] / "benchmarks" / "jitter_probe.py"


def test_jitter_probe_reports_each_stage(sample_dataset, tiny_bundle):
    spec = importlib.util.spec_from_file_location("jitter_probe", PROBE)
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    res = probe.probe(tiny_bundle, sample_dataset, repeats=10)
    assert res["repeats"] == 10 and len(res["stages"]) == 4
    for name, s in res["stages"].items():
        assert 0 < s["p50_ms"] <= s["p90_ms"] <= s["p99_ms"] <= s["max_ms"], name
        assert s["p99_over_p50"] >= 1.0
    assert any(k.startswith("hnsw map query (ef ") for k in res["stages"])
