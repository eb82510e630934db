"""tocoad-bench writes the documented JSON (keys only: no timing is asserted)."""
import json

import pytest


def test_bench_json_has_required_keys(tmp_path, sample_dataset, tiny_run, tiny_bundle):
    pytest.importorskip("torch")
    from tocoad_edge.bench.cli import main

    data, run, bundle = sample_dataset, tiny_run, tiny_bundle
    out = tmp_path / "bench.json"
    assert main([str(bundle), "--data", str(data), "--json", str(out), "--run", str(run), "--threads", "1",
                 "--max-images", "6", "--warmup", "1", "--stream-frames", "6", "--stream-depth", "1"]) == 0
    res = json.loads(out.read_text())
    for side in ("ours", "reference"):
        for k in ("p50_ms", "p99_ms", "fps", "stages", "image_auroc"):
            assert k in res[side], (side, k)
        assert res[side]["p50_ms"] > 0 and res[side]["fps"] > 0
        assert set(res[side]["stages"]) >= {"preprocess", "backbone", "search", "postprocess"}
    assert res["speedup_p50"] == pytest.approx(res["reference"]["p50_ms"] / res["ours"]["p50_ms"], rel=0.02)
    assert res["threads"]["per_pipeline"] == 1
    assert res["peak_rss_mb"] > 0
    assert res["reference_config"]["embedding_max_abs_diff_vs_onnx"] < 1e-2
    s = res["stream"]
    assert s["frames"] == 6 and s["depth"] == 1 and s["threads"]["backbone"] == 1 and s["threads"]["search"] == 1
    assert s["threads"]["onnxruntime"]["intra_op"] == 1 and s["threads"]["search_split"]
    assert all("threads" in lib for lib in s["threads"]["blas"])
    assert s["threads"]["opencv"] == 1              # a detector opened with threads sets OpenCV's pool to one
    assert s["search"]["kind"] == res["ours_config"]["search"]["kind"]      # the stream measures the same search
    for k in ("fps", "efficiency_vs_isolated_slowest_stage", "efficiency_vs_in_stream_slowest_stage_mean",
              "latency_p99_over_p50"):
        assert k in s


def test_bench_bad_data_is_a_clear_error(tmp_path, capsys, tiny_bundle):
    from tocoad_edge.bench.cli import main

    bundle = tiny_bundle
    assert main([str(bundle), "--data", str(tmp_path / "nope"), "--json", str(tmp_path / "o.json")]) == 2
    assert "error" in capsys.readouterr().err


def test_bench_refuses_a_stream_depth_below_one(tmp_path, capsys, tiny_bundle):
    from tocoad_edge.bench.cli import main

    with pytest.raises(SystemExit) as exc:
        main([str(tiny_bundle), "--data", str(tmp_path), "--json", str(tmp_path / "o.json"), "--stream-depth", "0"])
    assert exc.value.code == 2
    assert "expected an integer >= 1" in capsys.readouterr().err
