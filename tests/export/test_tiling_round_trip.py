"""Training → export → predict with tiling on a generated image set: the manifest records the tiling, the model
takes a frame's tiles as one batch, one search over all tiles gives the image score (the max over the tiles), the
map is stitched to the frame's size, and frames of other sizes (smaller than a tile, larger than training) work."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tocoad_edge.data import load_dataset, read_image
from tocoad_edge.eval.metrics import auroc
from tocoad_edge.runtime import Detector
from tocoad_edge.runtime.tiling import tile_layout


def test_manifest_records_the_tiling_and_a_batched_model(tiled_bundle) -> None:
    m = json.loads((tiled_bundle / "manifest.json").read_text())
    assert m["input"]["tiling"] == {"overlap": 0.25, "scale": 1.0, "combine": "mean"}
    assert m["models"]["fp32"]["dynamic_batch"] is True            # forced for a tiled run, no flag needed


def test_image_score_is_the_max_over_the_tiles_and_the_map_has_the_frame_size(tiled_bundle, sample_dataset) -> None:
    frame = read_image(next(iter(load_dataset(sample_dataset).test)).path)
    assert frame.shape[:2] == (96, 96)
    with Detector.open(tiled_bundle, search="exact") as det:
        pred = det.predict(frame)
        lay = tile_layout(frame.shape[:2], (64, 64), det.manifest.input.tiling)
        assert lay.count == 4
        # each tile on its own is a one-tile frame: the whole frame's raw score is the largest of theirs
        per_tile = [det.predict(np.ascontiguousarray(frame[y:y + 64, x:x + 64])).raw_score for y, x in lay.origins()]
        assert pred.raw_score == pytest.approx(max(per_tile), rel=1e-5)
        assert pred.anomaly_map.shape == (96, 96) and np.isfinite(pred.anomaly_map).all()
        # a frame smaller than a tile (padded) and one larger than training (3 × 3 tiles) are scored
        small = det.predict(frame[:40, :90])
        large = det.predict(np.concatenate([np.concatenate([frame, frame[:, :50]], 1)] * 2)[:150])
        assert small.anomaly_map.shape == (40, 90) and large.anomaly_map.shape == (150, 146)
        # predict_batch is predict frame by frame
        batch = det.predict_batch([frame, frame[:40, :90]])
        assert [b.raw_score for b in batch] == pytest.approx([pred.raw_score, small.raw_score], rel=1e-5)


def test_tiled_detector_separates_defects_on_the_generated_set(tiled_bundle, sample_dataset) -> None:
    test = load_dataset(sample_dataset).test
    with Detector.open(tiled_bundle, search="exact") as det:
        scores = [det.predict(read_image(t.path)).raw_score for t in test]
    labels = np.array([t.label for t in test])
    assert auroc(labels, np.array(scores)) >= 0.8


def test_predict_stream_gives_predict_results(tiled_bundle, sample_dataset) -> None:
    frames = [read_image(t.path) for t in load_dataset(sample_dataset).test][:5]
    with Detector.open(tiled_bundle, search="exact", threads=1) as det:
        one = [det.predict(f).raw_score for f in frames]
        streamed = list(det.predict_stream(frames))
    assert [p.raw_score for p in streamed] == pytest.approx(one, rel=1e-5)
    assert all(p.anomaly_map.shape == (96, 96) for p in streamed)


def test_torch_reference_pipeline_tiles_like_the_detector(tiled_bundle, sample_dataset) -> None:
    """tocoad-bench's reference (torch FP32 + cdist) cuts the same tiles: same patches, same image score."""
    from tocoad_edge.bench.reference import ReferencePipeline

    frame = read_image(next(iter(load_dataset(sample_dataset).test)).path)[:90]
    with Detector.open(tiled_bundle, search="exact") as det:
        ref = ReferencePipeline(det.manifest, np.load(tiled_bundle / "coreset.npy"), None, 1)
        ours = det.embed(frame)[0]
        assert ref.embed(frame).shape == ours.shape == (4 * 64, det.manifest.features.dim)
        assert ref.predict(frame)[0] == pytest.approx(det.predict(frame).raw_score, rel=1e-4)
