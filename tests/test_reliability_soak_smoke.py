"""Item 10 is a benchmark (benchmarks/soak.py, 10 minutes); this only checks, in seconds, that the script runs:
restarts and swaps happen, the bad bundle is refused, every frame is scored, and the report has its slopes."""
from __future__ import annotations

import argparse
import importlib.util
import math
from pathlib import Path

import pytest

from reliability_fixtures import rel_bundle  # noqa: F401

SOAK = Path(__file__).resolve().parents[1] / "benchmarks" / "soak.py"


def test_soak_script_runs_briefly(rel_bundle, tmp_path):
    spec = importlib.util.spec_from_file_location("soak", SOAK)
    soak = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(soak)
    args = argparse.Namespace(bundle=str(rel_bundle), minutes=0.15, restart_s=1.5, swap_s=2.0, sample_s=0.5,
                              search="exact", threads=1, work=str(tmp_path / "work"), out=None)
    report = soak.run(args)
    counts = report["counts"]
    assert counts["frames"] > 0 and counts["errors"] == 0
    assert counts["restarts"] >= 2 and counts["swaps"] >= 1 and counts["refused_swaps"] >= 1
    assert counts["unexpected_swap_results"] == 0
    assert set(report["slope_per_minute"]) == {"rss_mib", "threads", "fds"}
    assert all(math.isfinite(v) for v in report["slope_per_minute"].values())
    assert soak.slope_per_minute([0, 60, 120], [1, 2, 3]) == pytest.approx(1.0)
