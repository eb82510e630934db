"""The image score: the largest patch distance, or (``smoothed-max``) the largest value of the patch grid smoothed by
the anomaly map's Gaussian at grid scale; the refined search gives the latter exactly too."""
import numpy as np
import pytest

from tocoad_edge.bundle.manifest import ScoringSpec
from tocoad_edge.errors import ConfigError, InputError
from tocoad_edge.runtime.scoring import image_score, image_scores, score_kernel, smooth_grid
from tocoad_edge.runtime.search.bounded import BoundedExactSearch
from tocoad_edge.runtime.search.exact import ExactSearch
from tocoad_edge.runtime.search.hnsw import HnswSearch, build_hnsw_index
from tocoad_edge.runtime.search.refined import RefinedSearch


def test_kernel_is_the_maps_gaussian_at_grid_scale():
    k = score_kernel("smoothed-max", 4.0, 8)                # sigma 0.5 patch: one patch each side
    assert k.shape == (3,) and k.dtype == np.float32 and k.sum() == pytest.approx(1.0)
    assert k[0] / k[1] == pytest.approx(np.exp(-2.0), rel=1e-6)
    assert score_kernel("smoothed-max", 16.0, 8).shape == (9,)   # sigma 2 patches: out to 4 patches
    assert score_kernel("max", 4.0, 8) is None and score_kernel("smoothed-max", 0.0, 8) is None
    with pytest.raises(InputError, match="max or smoothed-max"):
        score_kernel("mean", 4.0, 8)


def _smoothed_by_definition(grid: np.ndarray, k: np.ndarray) -> np.ndarray:
    """sum_ab k[a] k[b] g[mirror(i + a - r), mirror(j + b - r)], mirror repeating the edge (…, 1, 0 | 0, 1, …)."""
    h, w = grid.shape
    r = len(k) // 2

    def mirror(i: int, n: int) -> int:
        while not 0 <= i < n:
            i = -i - 1 if i < 0 else 2 * n - 1 - i
        return i
    out = np.zeros((h, w), np.float64)
    for i in range(h):
        for j in range(w):
            out[i, j] = sum(k[a] * k[b] * grid[mirror(i + a - r, h), mirror(j + b - r, w)]
                            for a in range(len(k)) for b in range(len(k)))
    return out


@pytest.mark.parametrize("sigma", [4.0, 12.0])
def test_smoothing_matches_its_definition_with_mirrored_borders(sigma):
    rng = np.random.default_rng(0)
    grids = rng.random((3, 28, 20)).astype(np.float32)
    k = score_kernel("smoothed-max", sigma, 8)
    want = np.stack([_smoothed_by_definition(g, k) for g in grids])
    np.testing.assert_allclose(smooth_grid(grids, k), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(image_scores(grids.reshape(3, -1), (28, 20), k), want.reshape(3, -1).max(1),
                               rtol=1e-5)
    assert image_score(grids[1].ravel(), (28, 20), k) == pytest.approx(float(want[1].max()), rel=1e-5)


def test_a_lone_spike_weighs_less_than_a_blob_of_the_same_peak():
    k = score_kernel("smoothed-max", 4.0, 8)
    spike, blob = np.zeros((28, 28), np.float32), np.zeros((28, 28), np.float32)
    spike[10, 10] = 5.0
    blob[9:12, 9:12] = 5.0
    assert image_score(spike.ravel()) == image_score(blob.ravel()) == 5.0
    assert image_score(spike.ravel(), (28, 28), k) < 0.65 * image_score(blob.ravel(), (28, 28), k)


def test_manifest_refuses_an_unknown_image_score():
    assert ScoringSpec(image_score="smoothed-max").image_score == "smoothed-max"
    with pytest.raises(ConfigError, match="image_score"):
        ScoringSpec(image_score="mean")


@pytest.mark.parametrize("exact_kind,threads", [("exact", 1), ("bounded", 1), ("bounded", 2), ("compiled", 1),
                                                ("compiled", 2)])
def test_refined_smoothed_max_equals_smoothing_the_exact_distances(tmp_path, exact_kind, threads):
    """The numpy loop over an exact or bounded search, and the compiled loop (one call over the whole bank)."""
    import threading

    rng = np.random.default_rng(3)
    bank = rng.standard_normal((3000, 16)).astype(np.float32)
    build_hnsw_index(bank, tmp_path / "i.hnsw", M=8, ef_construction=40)
    poor = HnswSearch(bank, tmp_path / "i.hnsw", ef=1, threads=threads)  # many wrong neighbours: loose bounds
    exact = (ExactSearch(bank, threads=1) if exact_kind == "exact" else
             BoundedExactSearch(bank, threads=threads, compiled=exact_kind == "compiled"))
    seen = set()
    where = "_query_impl" if exact_kind == "exact" else "_nearest_in_rows"    # the bounded search's bank shares
    inner = getattr(exact, where)

    def spy(*args):
        seen.add(threading.current_thread().name.split("_")[0])
        return inner(*args)
    setattr(exact, where, spy)
    refined = RefinedSearch(poor, exact)
    k = score_kernel("smoothed-max", 4.0, 8)
    for grid in [(1, 12, 10), (2, 6, 7)]:                                  # one image, and two tiles
        n = int(np.prod(grid))
        for _ in range(5):
            emb = (bank[rng.integers(0, 3000, n)] + 0.4 * rng.standard_normal((n, 16))).astype(np.float32)
            emb[rng.integers(0, n)] += 3.0                                   # a lone outlier patch
            want = float(smooth_grid(ExactSearch(bank).query(emb).reshape(grid), k).max())
            before = refined.exact_queries
            got = refined.max_smoothed(emb, poor.query(emb), grid, k)
            assert got == pytest.approx(want, rel=1e-5)
            assert refined.exact_queries - before < n                        # not every patch re-checked
    # with two search threads the bank of a pass's re-checks is split between the caller and the search pool; the
    # compiled loop runs whole on the calling thread
    assert seen == (set() if exact_kind == "compiled" else {"MainThread", "tocoad-search"} if threads == 2
                    else {"MainThread"})
    # the approximate bounds alone are not the exact score
    emb = (bank[rng.integers(0, 3000, 120)] + 0.4 * rng.standard_normal((120, 16))).astype(np.float32)
    assert float(smooth_grid(poor.query(emb).reshape(1, 12, 10), k).max()) > \
        float(smooth_grid(ExactSearch(bank).query(emb).reshape(1, 12, 10), k).max()) * (1 + 1e-4)


@pytest.mark.parametrize("which", ["tiny", "tiled"])
def test_trained_threshold_and_runtime_score_the_held_out_images_alike(which, tiny_bundle, tiled_bundle,
                                                                        sample_dataset):
    """A new run sets its threshold on its held-out normal images scored as the runtime scores them: the default
    config's threshold is their largest score × 1.05."""
    import json

    from tocoad_edge.data import read_image
    from tocoad_edge.runtime import Detector
    from tocoad_edge.train.config import ScoringConfig

    bundle = tiny_bundle if which == "tiny" else tiled_bundle
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["scoring"]["image_score"] == "smoothed-max"          # the training default
    names = manifest["training"]["holdout_images"]
    assert len(names) == 4
    with Detector.open(bundle, search="exact", threads=1) as det:
        top = max(det.predict(read_image(sample_dataset / "train" / "good" / n)).raw_score for n in names)
        assert det.manifest.scoring.image_threshold == pytest.approx(top * ScoringConfig().threshold_margin,
                                                                     rel=1e-3)


def test_search_image_scores_take_the_bundles_image_score(tmp_path):
    """``image_scores(emb, grid, kernel)``: what export's parity report and the INT8 gate compare, for a
    ``smoothed-max`` bundle as for a ``max`` one; a refined search gives the exact search's values."""
    rng = np.random.default_rng(5)
    bank = rng.standard_normal((2000, 12)).astype(np.float32)
    emb = (bank[rng.integers(0, 2000, 6 * 70)] + 0.4 * rng.standard_normal((420, 12))).astype(np.float32)
    emb = emb.reshape(6, 70, 12)
    emb[2, 33] += 3.0
    k = score_kernel("smoothed-max", 12.0, 8)
    brute = np.sqrt(((emb[:, :, None, :] - bank[None, None]) ** 2).sum(-1).min(-1))        # [6, 70]
    want = np.array([_smoothed_by_definition(d.reshape(7, 10), k).max() for d in brute])
    exact = ExactSearch(bank, threads=1)
    np.testing.assert_allclose(exact.image_scores(emb, (7, 10), k), want, rtol=1e-5)
    np.testing.assert_allclose(exact.image_scores(emb), brute.max(1), rtol=1e-5)             # no kernel: the max
    assert not np.allclose(want, brute.max(1), rtol=1e-3)
    build_hnsw_index(bank, tmp_path / "i.hnsw", M=8, ef_construction=40)
    refined = RefinedSearch(HnswSearch(bank, tmp_path / "i.hnsw", ef=1, threads=1), exact)
    np.testing.assert_allclose(refined.image_scores(emb, (7, 10), k), want, rtol=1e-5)
    with pytest.raises(InputError, match=r"h·w = 70"):
        exact.image_scores(emb, (8, 10), k)
    with pytest.raises(InputError, match="patch grid"):
        exact.image_scores(emb, None, k)
