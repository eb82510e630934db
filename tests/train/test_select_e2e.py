"""tocoad-train --select end to end on the generated sample set (tiny images, tiny stages): every candidate is
trained without the held-out images and scored on G's anomalies over them, the pick follows the rule, the final
run is the pick trained on all images, and run.json says it was selected and from what."""
import json

import numpy as np

from tocoad_edge.train.config import TrainConfig
from tocoad_edge.train.selection.rule import Scored, pick
from tocoad_edge.train.selection.runner import selection_set

TINY = """seed: 0
threads: 1
data: {image_size: 64, holdout_images: 4}
stage1: {epochs: 1, max_synthetic: 12, holdout_synthetic: 4}
stage2: {epochs: 1, batch_size: 4, images_per_epoch: 8}
"""


def test_select_on_a_tiny_set_writes_the_candidates_and_trains_the_pick(tmp_path, sample_dataset):
    from tocoad_edge.cli.train import main

    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY, encoding="utf-8")
    cands = tmp_path / "candidates.yaml"          # the baseline is not listed: it is added anyway
    cands.write_text("synthetic_per_image: 2\ncandidates:\n  full: {stages: full}\n"
                     "  wide: {stages: baseline, data: {image_size: 96}}\n", encoding="utf-8")
    out = tmp_path / "run"
    rc = main(["--data", str(sample_dataset), "--out", str(out), "--config", str(cfg), "--select",
               "--candidates", str(cands), "--quiet"])
    assert rc == 0
    record = json.loads((out / "select" / "candidates.json").read_text())
    names = [c["name"] for c in record["candidates"]]
    assert names == ["baseline", "full", "wide"]
    assert record["synthetic"]["reference_size"] == 96       # drawn at the largest input, resized per candidate
    held = record["holdout"]["images"]
    assert record["holdout"]["count"] == len(held) == 5                 # 20 % of the 24 training images
    for c in record["candidates"]:
        m = c["metrics"]
        assert m["normals"] == 5 and m["anomalies"] == 10
        for key in ("image_auroc", "recall_at_fpr_5", "recall_at_fpr_1", "pixel_auroc"):
            assert 0.0 <= m[key] <= 1.0
        assert c["train_seconds"] > 0 and set(c) >= {"overrides", "chosen", "run"}
        run_meta = json.loads((out / c["run"] / "run.json").read_text())
        assert run_meta["excluded_images"] == held                    # candidates never saw the held-out images
        assert run_meta["stages"] == c["stages"]
        assert run_meta["train_images"] + len(run_meta["holdout_images"]) == 24 - len(held)
    chosen = [c["name"] for c in record["candidates"] if c["chosen"]]
    expected = pick([Scored(c["name"], c["metrics"]["recall_at_fpr_5"], c["train_seconds"])
                     for c in record["candidates"]], record["margin"])
    assert chosen == [record["chosen"]] == [expected.name]
    meta = json.loads((out / "run.json").read_text())
    assert meta["selection"]["selected"] == record["chosen"] and meta["selection"]["from"] == names
    assert meta["excluded_images"] == []                                # the pick is retrained on every image
    assert meta["train_images"] + len(meta["holdout_images"]) == 24
    assert meta["stages"] == next(c["stages"] for c in record["candidates"] if c["chosen"])
    report = (out / "select" / "report.md").read_text()
    assert "| baseline |" in report and "| full |" in report and f"Chosen: **{record['chosen']}**" in report


def test_the_selection_set_changes_each_normal_only_inside_its_mask():
    rng = np.random.default_rng(0)
    normals = rng.integers(60, 200, (3, 48, 48, 3), dtype=np.uint8)
    s = selection_set(TrainConfig(), normals, per_image=2)
    assert len(s) == 9 and s.labels.tolist() == [0] * 3 + [1] * 6
    assert not s.masks[:3].any()
    for j in range(6):
        img, mask, normal = s.images[3 + j], s.masks[3 + j].astype(bool), normals[j // 2]
        assert mask.any()
        assert np.array_equal(img[~mask], normal[~mask])              # no rotation: the defect is the only change
    again = selection_set(TrainConfig(), normals, per_image=2)
    assert np.array_equal(again.images, s.images)


def test_final_reuse_copies_the_picked_candidate_run(tmp_path, sample_dataset):
    from tocoad_edge.train.config import DataConfig
    from tocoad_edge.train.selection.config import SelectConfig
    from tocoad_edge.train.selection.runner import run_selection

    base = TrainConfig(threads=1, data=DataConfig(image_size=64, holdout_images=4))
    select = SelectConfig(synthetic_per_image=1, final="reuse", candidates={})    # the baseline alone
    run = run_selection(sample_dataset, tmp_path / "run", base, select, show_progress=False)
    record = json.loads((run / "select" / "candidates.json").read_text())
    assert [c["name"] for c in record["candidates"]] == ["baseline"] and record["chosen"] == "baseline"
    candidate = run / record["candidates"][0]["run"]
    assert (run / "memory_bank.npy").read_bytes() == (candidate / "memory_bank.npy").read_bytes()
    meta = json.loads((run / "run.json").read_text())
    assert meta["excluded_images"] == record["holdout"]["images"]       # the reused bank lacks the held-out images
    assert meta["selection"]["final"].startswith("reused")
