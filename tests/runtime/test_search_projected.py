"""ProjectedSearch: projected HNSW candidates re-ranked in the full dimension. Its distances are real distances
to bank rows (never below exact), RefinedSearch on top of it gives exact image scores, and the map is close."""
import numpy as np
import pytest

from tocoad_edge.errors import BundleError, InputError
from tocoad_edge.export.search_index import pca_search_projection
from tocoad_edge.runtime.search.exact import ExactSearch
from tocoad_edge.runtime.search.projected import ProjectedSearch, project
from tocoad_edge.runtime.search.refined import RefinedSearch

from search_helpers import grid_queries as _grid_queries
from search_helpers import projected_bank_and_index
from search_helpers import queries_near as _queries
from search_helpers import true_nn as _true_nn


@pytest.fixture(scope="module")
def bank_projection_index(tmp_path_factory):
    """A bank with most variance in a few directions (like patch embeddings), projected to 8 of 48 dims."""
    return projected_bank_and_index(tmp_path_factory.mktemp("proj"), rows=3000, dim=48, rank=12, dims=8, seed=3)


def test_projection_file_layout_centres_the_projected_bank(bank_projection_index):
    bank, projection, _ = bank_projection_index
    assert projection.shape == (49, 8) and projection.dtype == np.float32
    projected = project(bank, projection)
    np.testing.assert_allclose(projected.mean(0), 0.0, atol=1e-3)           # bias row = −mean·P
    # axes are orthonormal (PCA), so projected distances never exceed full ones
    np.testing.assert_allclose(projection[:-1].T @ projection[:-1], np.eye(8), atol=1e-4)


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "numpy"])
def test_reranked_distances_are_real_distances_never_below_exact(bank_projection_index, compiled):
    bank, projection, path = bank_projection_index
    q = _queries(bank, 500, 1)
    search = ProjectedSearch(bank, path, projection, ef=16, candidates=4, threads=1, compiled=compiled)
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


def test_grid_neighbours_stay_in_their_grid():
    from tocoad_edge.runtime.search.projected import grid_neighbours

    # two 2 × 3 grids; up, down, left, right; a border patch counts itself for the missing neighbour
    got = grid_neighbours(2, 2, 3)
    first = [[0, 3, 0, 1], [1, 4, 0, 2], [2, 5, 1, 2],
             [0, 3, 3, 4], [1, 4, 3, 5], [2, 5, 4, 5]]
    np.testing.assert_array_equal(got[:6], first)
    np.testing.assert_array_equal(got[6:], np.array(first) + 6)


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "numpy"])
def test_lending_answers_the_best_of_own_and_lent_rows(bank_projection_index, compiled):
    """Each patch's answer is the nearest of its own walked rows and the best ``lend`` rows of each grid neighbour
    (each neighbour's rows ranked by its own float64 distances), found here with explicit loops."""
    bank, projection, path = bank_projection_index
    grids, h, w, k, lend = 2, 7, 9, 6, 2
    q = _grid_queries(bank, grids, h, w, 11)
    search = ProjectedSearch(bank, path, projection, ef=6, candidates=k, lend=lend, grid=(h, w), threads=1,
                             compiled=compiled)
    assert search.describe()["kernels"] == ("compiled" if compiled else "numpy")
    got = search.query(q)
    own = search.candidate_rows(q)
    b64, q64 = bank.astype(np.float64), q.astype(np.float64)
    dist = [np.linalg.norm(b64[own[p]] - q64[p], axis=1) for p in range(len(q))]
    best = [own[p][np.argsort(dist[p], kind="stable")[:lend]] for p in range(len(q))]
    want = np.empty(len(q))
    for g in range(grids):
        for i in range(h):
            for j in range(w):
                p = (g * h + i) * w + j
                rows = set(own[p].tolist())
                for ni, nj in ((i - 1, j), (i + 1, j), (i, j - 1), (i, j + 1)):
                    n = (g * h + min(max(ni, 0), h - 1)) * w + min(max(nj, 0), w - 1)
                    rows |= set(best[n].tolist())
                want[p] = np.linalg.norm(b64[sorted(rows)] - q64[p], axis=1).min()
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_lending_only_ever_lowers_a_patch_distance(bank_projection_index):
    bank, projection, path = bank_projection_index
    q = _grid_queries(bank, 3, 10, 10, 12)
    # a short walk (2 rows) misses more, so there is something for the neighbours to lend
    alone = ProjectedSearch(bank, path, projection, ef=2, candidates=2, threads=1).query(q)
    lent = ProjectedSearch(bank, path, projection, ef=2, candidates=2, lend=2, grid=(10, 10), threads=1).query(q)
    exact = _true_nn(bank, q)
    assert np.all(lent <= alone * (1 + 1e-6)) and np.all(lent >= exact * (1 - 1e-5))
    assert np.mean(lent / exact - 1) < np.mean(alone / exact - 1)           # and here, lowers the map error


def test_lending_split_over_threads_gives_the_same_distances(bank_projection_index):
    """The second thread's rows start mid-grid (3 grids of 10 × 10, cut at row 150): patches at the cut still get
    what their neighbours on the other thread lend them."""
    bank, projection, path = bank_projection_index
    q = _grid_queries(bank, 3, 10, 10, 13)
    one = ProjectedSearch(bank, path, projection, ef=4, candidates=4, lend=2, grid=(10, 10), threads=1)
    two = ProjectedSearch(bank, path, projection, ef=4, candidates=4, lend=2, grid=(10, 10), threads=2)
    assert two.splitter.splits(len(q))
    np.testing.assert_array_equal(one.query(q), two.query(q))
    assert two.describe()["lend"] == 2
    two.close()


def test_lending_needs_whole_grids_and_rows_it_walked(bank_projection_index):
    bank, projection, path = bank_projection_index
    search = ProjectedSearch(bank, path, projection, ef=4, candidates=4, lend=2, grid=(10, 10), threads=1)
    with pytest.raises(InputError, match="whole patch grids") as err:
        search.query(_queries(bank, 150, 14))
    assert "a multiple of 10×10 = 100 rows" in str(err.value) and "150 rows" in str(err.value)
    with pytest.raises(InputError, match="lends more rows than it walks"):
        ProjectedSearch(bank, path, projection, ef=4, candidates=4, lend=5, grid=(10, 10))
    with pytest.raises(InputError, match="needs the patch grid"):
        ProjectedSearch(bank, path, projection, ef=4, candidates=4, lend=2)


def test_re_rank_in_small_blocks_gives_the_same_distances(bank_projection_index, monkeypatch):
    """numpy's re-rank in blocks of 3 queries (the last one short) against the whole frame in one block."""
    import tocoad_edge.runtime.search.projected as projected

    bank, projection, path = bank_projection_index
    q = _queries(bank, 100, seed=11)
    whole = ProjectedSearch(bank, path, projection, ef=16, candidates=8, threads=1, compiled=False).query(q)
    monkeypatch.setattr(projected, "GATHER_BYTES", 3 * 8 * bank.shape[1] * 4)
    blocked = ProjectedSearch(bank, path, projection, ef=16, candidates=8, threads=1, compiled=False)
    np.testing.assert_array_equal(blocked.query(q), whole)
    assert len(blocked._buffers.rerank[8][0]) == 3
