"""The export steps (parity report, INT8 gate) score images as the bundle's runtime will: a ``smoothed-max``
bundle's gate compares smoothed peaks, not the largest patch."""
from pathlib import Path

import numpy as np
import pytest

from tocoad_edge.bundle.manifest import FeatureSpec, ScoringSpec
from tocoad_edge.calibration.context import ExportContext, ExportOptions
from tocoad_edge.runtime.scoring import image_score, score_kernel
from tocoad_edge.runtime.search.exact import ExactSearch


def _context(image_score_mode: str, bank: np.ndarray) -> ExportContext:
    features = FeatureSpec(backbone="b", layers=("l",), aggregation=3, stride=8, grid=(6, 8), dim=bank.shape[1])
    return ExportContext(run=None, cfg=None, meta={}, staging=Path("."), options=ExportOptions(), embedder=None,
                         bank=bank, fp32_path=Path("m.onnx"), scoring=ScoringSpec(image_score=image_score_mode,
                                                                                  gaussian_sigma=12.0),
                         features=features)


@pytest.mark.parametrize("mode", ["max", "smoothed-max"])
def test_context_scores_images_with_the_manifests_image_score(mode):
    rng = np.random.default_rng(2)
    bank = rng.standard_normal((500, 10)).astype(np.float32)
    emb = (bank[rng.integers(0, 500, 4 * 48)] + 0.5 * rng.standard_normal((192, 10))).astype(np.float32)
    emb = emb.reshape(4, 48, 10)
    ctx = _context(mode, bank)
    dist = np.sqrt(((emb[:, :, None, :] - bank[None, None]) ** 2).sum(-1).min(-1))         # brute force [4, 48]
    k = score_kernel(mode, 12.0, 8)
    want = [image_score(d, (6, 8), k) for d in dist]
    np.testing.assert_allclose(ctx.image_scores(ExactSearch(bank), emb), want, rtol=1e-5)
    assert (ctx.score_kernel() is None) == (mode == "max")
