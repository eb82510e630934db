"""ProjectedSearch: projected HNSW candidates re-ranked in the full dimension. Its distances are real distances
to bank rows (never below exact), RefinedSearch on top of it gives exact image scores, and the map is close."""
import numpy as np
import pytest

from tocoad_edge.errors import BundleError, InputError
from tocoad_edge.export.search_index import pca_search_projection
from tocoad_edge.runtime.search.exact import ExactSearch
from tocoad_edge.runtime.search.projected import ProjectedSearch, build_projected_index, project
from tocoad_edge.runtime.search.refined import RefinedSearch


@pytest.fixture(scope="module")
def bank_projection_index(tmp_path_factory):
    """A bank with most variance in a few directions (like patch embeddings), projected to 8 of 48 dims."""
    rng = np.random.default_rng(3)
    basis = rng.standard_normal((12, 48)).astype(np.float32)
    bank = (rng.standard_normal((3000, 12)) @ basis + 0.1 * rng.standard_normal((3000, 48))).astype(np.float32)
    projection = pca_search_projection(bank, 8)
    path = tmp_path_factory.mktemp("proj") / "index.hnsw"
    build_projected_index(bank, projection, path, M=8, ef_construction=60)
    return bank, projection, path


def _true_nn(bank, q):
    """float64 nearest-neighbour distances (the float32 GEMM form of ExactSearch rounds at ~1e-4 relative)."""
    b = bank.astype(np.float64)
    d2 = (q.astype(np.float64) ** 2).sum(1)[:, None] - 2 * q.astype(np.float64) @ b.T + (b ** 2).sum(1)[None]
    return np.sqrt(np.maximum(d2.min(1), 0.0))


def _queries(bank, n, seed, noise=0.2):
    rng = np.random.default_rng(seed)
    return (bank[rng.integers(0, len(bank), n)] + noise * rng.standard_normal((n, bank.shape[1]))).astype(np.float32)


def test_projection_file_layout_centres_the_projected_bank(bank_projection_index):
    bank, projection, _ = bank_projection_index
    assert projection.shape == (49, 8) and projection.dtype == np.float32
    projected = project(bank, projection)
    np.testing.assert_allclose(projected.mean(0), 0.0, atol=1e-3)           # bias row = −mean·P
    # axes are orthonormal (PCA), so projected distances never exceed full ones
    np.testing.assert_allclose(projection[:-1].T @ projection[:-1], np.eye(8), atol=1e-4)


def test_reranked_distances_are_real_distances_never_below_exact(bank_projection_index):
    bank, projection, path = bank_projection_index
    q = _queries(bank, 500, 1)
    search = ProjectedSearch(bank, path, projection, ef=16, candidates=4, threads=1)
    got = search.query(q)
    exact = _true_nn(bank, q)
    assert np.all(got >= exact * (1 - 1e-6))
    # each distance is the distance to one of the candidate rows
    labels = search.candidate_rows(q)
    direct = np.linalg.norm(bank[labels].astype(np.float64) - q[:, None, :], axis=2).min(1)
    np.testing.assert_allclose(got, direct, rtol=1e-5)
    assert np.mean(np.isclose(got, exact, rtol=1e-4)) > 0.9                   # mostly the true neighbour


def test_more_candidates_never_hurt(bank_projection_index):
    bank, projection, path = bank_projection_index
    q = _queries(bank, 400, 2, noise=0.5)
    exact = _true_nn(bank, q)
    errors = []
    for k in (1, 4, 16):
        d = ProjectedSearch(bank, path, projection, ef=1, candidates=k, threads=1).query(q)   # ef = k
        errors.append(float(np.mean(d / exact - 1)))
    assert errors[0] >= errors[1] >= errors[2] >= -1e-6              # float32 rounding of a real distance
    assert errors[2] < errors[0]


def test_refined_over_projected_gives_exact_image_scores(bank_projection_index):
    bank, projection, path = bank_projection_index
    emb = _queries(bank, 15 * 64, 4, noise=0.4).reshape(15, 64, 48)
    emb[2, 5] += 3.0                                                        # one outlier patch
    exact = ExactSearch(bank, threads=1)
    poor = ProjectedSearch(bank, path, projection, ef=1, candidates=1, threads=1)
    assert not np.allclose(poor.image_scores(emb), exact.image_scores(emb), rtol=1e-5)
    np.testing.assert_allclose(RefinedSearch(poor, exact).image_scores(emb), exact.image_scores(emb), rtol=1e-5)


def test_threads_split_gives_the_same_distances(bank_projection_index):
    bank, projection, path = bank_projection_index
    q = _queries(bank, 784, 5)
    one = ProjectedSearch(bank, path, projection, ef=16, candidates=8, threads=1)
    two = ProjectedSearch(bank, path, projection, ef=16, candidates=8, threads=2)
    assert two.splitter.splits(len(q))
    np.testing.assert_array_equal(one.query(q), two.query(q))
    assert two.describe()["projected_dims"] == 8 and two.describe()["candidates"] == 8
    two.close()


def test_bad_projection_or_candidates_are_refused(bank_projection_index):
    bank, projection, path = bank_projection_index
    with pytest.raises(BundleError, match="wrong shape") as err:
        ProjectedSearch(bank, path, projection[:-1], ef=16)                  # bias row missing
    assert "[49, d]" in str(err.value)
    with pytest.raises(BundleError, match="wrong shape"):
        ProjectedSearch(bank, path, projection.astype(np.float64), ef=16)
    bad = projection.copy()
    bad[0, 0] = np.nan
    with pytest.raises(BundleError, match="NaN"):
        ProjectedSearch(bank, path, bad, ef=16)
    with pytest.raises(InputError, match="candidates"):
        ProjectedSearch(bank, path, projection, candidates=0)
    other = pca_search_projection(bank, 12)                                  # 12 dims, index has 8
    with pytest.raises(BundleError):
        ProjectedSearch(bank, path, other, ef=16)
