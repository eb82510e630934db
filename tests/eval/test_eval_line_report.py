"""tocoad-eval on a real bundle: the line metrics (overall and per defect type), the counts at the bundle's own
threshold and review band, score histograms in the report, and a set with image-level labels only."""
from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from tocoad_edge.bundle.decision import write_decision
from tocoad_edge.cli.evaluate import main
from tocoad_edge.eval.report import NG_LINE_BGR, REVIEW_LINE_BGR


@pytest.fixture(scope="module")
def banded_bundle(tmp_path_factory, tiny_bundle, sample_dataset):
    """The tiny bundle with thresholds in the middle of its test scores and a review band below."""
    from tocoad_edge.data import load_dataset, read_image
    from tocoad_edge.runtime import Detector

    bundle = shutil.copytree(tiny_bundle, tmp_path_factory.mktemp("eval") / "bundle")
    with Detector.open(bundle, search="exact") as det:
        raw = np.sort([det.predict(read_image(t.path)).raw_score
                       for t in load_dataset(sample_dataset, require_train=False, require_test=True).test])
    ng, review = float(np.quantile(raw, 0.75)), float(np.quantile(raw, 0.4))
    write_decision(bundle, ng, review, {"policy": "manual"})
    return bundle


def _run(bundle, data, tmp_path, name):
    out = tmp_path / f"{name}.json"
    assert main([str(bundle), "--data", str(data), "--json", str(out), "--report", str(tmp_path / name),
                 "--search", "exact", "--quiet"]) == 0
    return json.loads(out.read_text()), tmp_path / name


def test_line_metrics_and_counts_match_the_detector_decisions(banded_bundle, sample_dataset, tmp_path, capsys):
    res, report = _run(banded_bundle, sample_dataset, tmp_path, "report")
    line = res["line"]
    items = res["per_image"]
    assert line["review_threshold"] < line["image_threshold"]
    decisions = [i["decision"] for i in items]
    assert {"OK", "REVIEW", "NG"} <= set(decisions)      # the band really splits this set three ways
    good = [i for i in items if i["label"] == 0]
    bad = [i for i in items if i["label"] == 1]
    # the counts at the bundle's thresholds are what the detector itself decided, image by image
    c = line["overall"]["at_bundle_threshold"]
    assert c["escapes"] == sum(i["decision"] == "OK" for i in bad)
    assert c["defective_review"] == sum(i["decision"] == "REVIEW" for i in bad)
    assert c["defective_ng"] == sum(i["decision"] == "NG" for i in bad)
    assert c["false_calls"] == sum(i["decision"] == "NG" for i in good)
    assert c["good_review"] == sum(i["decision"] == "REVIEW" for i in good)
    assert c["good_ok"] == sum(i["decision"] == "OK" for i in good)
    defects = sorted({i["defect"] for i in bad})
    assert sorted(line["per_defect"]) == defects and len(defects) >= 2
    for d in defects:
        block = line["per_defect"][d]
        mine = [i["raw_score"] for i in bad if i["defect"] == d]
        assert (block["good"], block["defective"]) == (len(good), len(mine))
        for level, point in block["recall_at_fpr"].items():
            t = point["threshold"]           # the promise each operating point makes, checked on the scores
            assert np.mean([i["raw_score"] > t for i in good]) <= float(level)
            assert point["recall"] == pytest.approx(np.mean([s > t for s in mine]))
        for level, point in block["fpr_at_recall"].items():
            t = point["threshold"]
            assert np.mean([s > t for s in mine]) >= float(level)
            assert point["fpr"] == pytest.approx(np.mean([i["raw_score"] > t for i in good]))
    assert set(line["overall"]["recall_at_fpr"]) == {"0.01", "0.02", "0.05", "0.1"}
    assert set(line["overall"]["fpr_at_recall"]) == {"0.9", "0.95", "0.99"}
    assert res["pixel_metrics"] == "present" and 0.0 <= res["pixel_auroc"] <= 1.0
    # one histogram per defect type, with both thresholds drawn
    for d in defects:
        hist = cv2.imread(str(report / f"histogram_{d}.png"))
        assert hist is not None and hist.shape == (400, 640, 3)
        for colour in (NG_LINE_BGR, REVIEW_LINE_BGR):
            assert (hist == colour).all(axis=2).sum() > 50
    out = capsys.readouterr().out
    assert "recall at FPR <= 1.0%:" in out and "escapes of" in out and "to REVIEW" in out


def test_a_set_without_masks_gives_image_metrics_and_says_pixel_metrics_are_absent(banded_bundle, sample_dataset,
                                                                                   tmp_path, capsys):
    with_masks, _ = _run(banded_bundle, sample_dataset, tmp_path, "masks")
    data = shutil.copytree(sample_dataset, tmp_path / "labels_only", ignore=shutil.ignore_patterns("ground_truth"))
    assert not (data / "ground_truth").exists()
    res, report = _run(banded_bundle, data, tmp_path, "labels_only")
    assert res["pixel_auroc"] is None and res["aupro"] is None
    assert res["pixel_metrics"] == "absent: the set has no ground-truth masks"
    assert res["image_auroc"] == with_masks["image_auroc"]
    assert res["line"] == with_masks["line"]
    assert not (report / "roc_pixel.png").exists() and (report / "roc_image.png").is_file()
    assert any(p.name.startswith("histogram_") for p in report.iterdir())
    assert "pixel metrics: absent" in capsys.readouterr().out
