"""tocoad-threshold on a real bundle: the decision section changes and nothing else, REVIEW comes out of
predict, a running detector takes the new decision, and a signed bundle is re-signed or refused."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from tocoad_edge.bundle.manifest import read_manifest
from tocoad_edge.cli.threshold import main
from tocoad_edge.data import load_dataset, read_image
from tocoad_edge.errors import BundleError
from tocoad_edge.runtime import Detector


@pytest.fixture()
def bundle(tmp_path, tiny_bundle):
    return shutil.copytree(tiny_bundle, tmp_path / "bundle")


def _raw_scores(det, data):
    items = load_dataset(data, require_train=False, require_test=True).test
    return items, np.array([det.predict(read_image(t.path)).raw_score for t in items])


def test_labelled_policy_with_a_review_band_changes_only_the_decision(bundle, sample_dataset, tmp_path, capsys):
    before = read_manifest(bundle)
    out = tmp_path / "decision.json"
    assert main([str(bundle), "--data", str(sample_dataset), "--policy", "labelled", "--target-fpr", "0.2",
                 "--review-fpr", "0.5", "--json", str(out)]) == 0
    after = read_manifest(bundle)
    record = json.loads(out.read_text())
    assert after.decision["policy"] == "labelled" and record["ng"]["target_fpr"] == 0.2
    assert after.scoring.image_threshold == pytest.approx(record["ng"]["threshold"])
    assert after.scoring.review_threshold == record["review_threshold"]
    for part in ("models", "files", "memory_bank", "features", "input", "engines"):
        assert getattr(after, part) == getattr(before, part)
    with Detector.open(bundle, search="exact") as det:
        items, raw = _raw_scores(det, sample_dataset)
        decisions = [det.predict(read_image(t.path)).decision for t in items]
    ng_t, rv_t = after.scoring.image_threshold, after.scoring.review_threshold
    expected = ["NG" if r > ng_t else "REVIEW" if rv_t is not None and r > rv_t else "OK" for r in raw]
    assert decisions == expected
    good = np.array([t.label == 0 for t in items])
    assert (raw[good] > ng_t).mean() <= 0.2                    # the false-call target holds on the set it used


def test_review_band_is_the_review_fpr_option_by_its_other_name(bundle, sample_dataset, tmp_path):
    records = []
    for flag in ("--review-fpr", "--review-band"):
        out = tmp_path / f"{flag}.json"
        assert main([str(bundle), "--data", str(sample_dataset), "--policy", "labelled", "--target-fpr", "0.2",
                     flag, "0.5", "--dry-run", "--json", str(out)]) == 0
        records.append(json.loads(out.read_text()))
    assert records[0]["review_threshold"] is not None
    assert records[0]["review_threshold"] == records[1]["review_threshold"]
    assert records[0]["ng"] == records[1]["ng"]


def test_running_detector_reloads_the_decision(bundle, sample_dataset):
    with Detector.open(bundle, search="exact") as det:
        items, raw = _raw_scores(det, sample_dataset)
        threshold = float(np.median(raw))
        from tocoad_edge.bundle.decision import write_decision

        write_decision(bundle, threshold, float(np.min(raw)) - 1e-6, {"policy": "manual"})
        assert det.reload_decision() == {"policy": "manual"}
        got = [det.predict(read_image(t.path)) for t in items]
    assert [p.is_anomalous for p in got] == [bool(r > threshold) for r in raw]
    assert all(p.decision in ("NG", "REVIEW") for p in got)           # everything is above the review threshold
    assert all((p.score > 1.0) == p.is_anomalous for p in got)        # the threshold still maps to score 1.0


def test_reload_refuses_a_changed_model(bundle):
    with Detector.open(bundle, search="exact") as det:
        m = json.loads((bundle / "manifest.json").read_text())
        m["model_id"] = "another-model"
        (bundle / "manifest.json").write_text(json.dumps(m))
        with pytest.raises(BundleError, match="model_id changed"):
            det.reload_decision()


def test_normal_quantile_refuses_too_few_normal_images(bundle, sample_dataset, capsys):
    before = (bundle / "manifest.json").read_bytes()
    assert main([str(bundle), "--data", str(sample_dataset), "--policy", "normal-quantile",
                 "--target-fpr", "0.01"]) == 2
    err = capsys.readouterr().err
    assert "cannot support" in err and ">= 299 normal images" in err
    assert (bundle / "manifest.json").read_bytes() == before                  # nothing written


def test_signed_bundle_is_resigned_or_refused(bundle, sample_dataset, tmp_path, capsys):
    from tocoad_edge.bundle.signature import generate_key_pair, sign_bundle

    private, public = generate_key_pair()
    (tmp_path / "k.pem").write_bytes(private)
    sign_bundle(bundle, private)
    args = [str(bundle), "--data", str(sample_dataset), "--policy", "normal-quantile", "--target-fpr", "0.5",
            "--confidence", "0.9"]
    before = (bundle / "manifest.json").read_bytes()
    assert main(args) == 2
    assert "--sign-key" in capsys.readouterr().err and (bundle / "manifest.json").read_bytes() == before
    assert main(args + ["--sign-key", str(tmp_path / "k.pem")]) == 0
    with Detector.open(bundle, search="exact", public_key=public) as det:     # the new signature verifies
        assert det.manifest.decision["policy"] == "normal-quantile"
        assert det.manifest.decision["ng"]["order_statistic"] <= det.manifest.decision["images"]
    assert main(args + ["--drop-signature"]) == 0
    assert not (bundle / "manifest.sig").exists()


def test_image_score_switch_sets_the_thresholds_on_the_new_score(bundle, sample_dataset, tmp_path):
    """An older bundle (image_score max) takes smoothed-max: the rewritten manifest says so, and its thresholds are
    those the labelled policy picks on the smoothed scores, which the detector then gives."""
    from tocoad_edge.cli.threshold import choose

    manifest_path = bundle / "manifest.json"
    m = json.loads(manifest_path.read_text())
    m["scoring"]["image_score"] = "max"                     # as written by runs from before smoothed-max
    manifest_path.write_text(json.dumps(m))
    with Detector.open(bundle, search="exact") as det:
        _, max_scores = _raw_scores(det, sample_dataset)
    out = tmp_path / "decision.json"
    assert main([str(bundle), "--data", str(sample_dataset), "--policy", "labelled", "--target-fpr", "0.2",
                 "--image-score", "smoothed-max", "--json", str(out)]) == 0
    after = read_manifest(bundle)
    assert after.scoring.image_score == "smoothed-max" and json.loads(out.read_text())["image_score"] == "smoothed-max"
    with Detector.open(bundle, search="exact") as det:
        items, scores = _raw_scores(det, sample_dataset)
    assert not np.allclose(scores, max_scores)              # the detector now scores the other way
    labels = np.array([t.label for t in items])
    _, want, _ = choose("labelled", labels, scores, 0.2, 0.95, None)
    assert after.scoring.image_threshold == pytest.approx(want)
