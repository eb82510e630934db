"""BoundedExactSearch: the nearest-neighbour distance of each query to the bank, pruned by a principal-direction
lower bound, equals a brute-force float64 nearest-neighbour search; the refined search gets exact image scores
through it."""
import numpy as np
import pytest

from tocoad_edge.errors import InputError
from tocoad_edge.runtime.search.bounded import BoundedExactSearch
from tocoad_edge.runtime.search.hnsw import HnswSearch, build_hnsw_index
from tocoad_edge.runtime.search.refined import RefinedSearch


def brute_force(bank: np.ndarray, q: np.ndarray) -> np.ndarray:
    b = bank.astype(np.float64)
    return np.array([np.sqrt(((b - row) ** 2).sum(1).min()) for row in q.astype(np.float64)])


def clustered_bank(rng, n=3000, dim=48, clusters=30):
    """Patch-like features: a few directions carry most of the variance, rows gather in clusters."""
    scales = np.geomspace(8.0, 0.2, dim)
    centres = rng.standard_normal((clusters, dim)) * scales
    rows = centres[rng.integers(0, clusters, n)] + 0.3 * rng.standard_normal((n, dim)) * scales
    return rows.astype(np.float32), scales


def test_bounded_search_equals_brute_force_and_prunes_most_rows():
    rng = np.random.default_rng(11)
    bank, scales = clustered_bank(rng)
    near = bank[rng.integers(0, len(bank), 40)] + 0.05 * rng.standard_normal((40, bank.shape[1])).astype(np.float32)
    far = (rng.standard_normal((10, bank.shape[1])) * scales * 3).astype(np.float32)   # defect-like outliers
    q = np.concatenate([near, far, bank[:5]])                                            # and exact bank rows
    search = BoundedExactSearch(bank, prefix_dims=8)
    got = search.query(q)
    np.testing.assert_allclose(got, brute_force(bank, q), rtol=1e-5, atol=1e-4)
    assert got.dtype == np.float32 and got[-5:].max() < 1e-3
    assert search.rows_checked < 0.25 * len(q) * len(bank)      # the bound leaves most rows unvisited
    assert search.describe()["prefix_dims"] == 8


@pytest.mark.parametrize("dim, prefix", [(1, 96), (2, 1), (5, 96), (16, 15)])
def test_bounded_search_is_exact_for_any_prefix_including_all_dimensions(dim, prefix):
    rng = np.random.default_rng(dim)
    bank = rng.standard_normal((500, dim)).astype(np.float32)
    q = rng.standard_normal((70, dim)).astype(np.float32) * 2      # 70 rows: more than one query block
    search = BoundedExactSearch(bank, prefix_dims=prefix)
    np.testing.assert_allclose(search.query(q), brute_force(bank, q), rtol=1e-5, atol=1e-5)
    assert 1 <= search.prefix_dims <= max(1, dim - 1)


def test_bounded_search_takes_a_float16_bank_and_ties():
    rng = np.random.default_rng(3)
    bank = np.repeat(rng.standard_normal((50, 12)), 4, axis=0).astype(np.float16)    # every row four times
    q = rng.standard_normal((9, 12)).astype(np.float32)
    np.testing.assert_allclose(BoundedExactSearch(bank).query(q), brute_force(bank.astype(np.float32), q),
                               rtol=1e-5)


def test_bounded_search_refuses_bad_queries_and_an_empty_bank():
    search = BoundedExactSearch(np.zeros((10, 6), np.float32))
    with pytest.raises(InputError, match=r"\[n, 6\]"):
        search.query(np.zeros((3, 5), np.float32))
    with pytest.raises(InputError, match="empty"):
        BoundedExactSearch(np.zeros((0, 6), np.float32))


def test_refined_search_with_bounded_rechecks_gives_exact_image_scores(tmp_path):
    rng = np.random.default_rng(5)
    bank, scales = clustered_bank(rng, n=2000, dim=32)
    build_hnsw_index(bank, tmp_path / "i.hnsw", M=8, ef_construction=40)
    emb = bank[rng.integers(0, len(bank), 15 * 60)] + 0.2 * rng.standard_normal((900, 32)).astype(np.float32)
    emb = emb.reshape(15, 60, 32).astype(np.float32)
    emb[4, 9] += (scales * 2).astype(np.float32)                 # one defect-like patch
    poor = HnswSearch(bank, tmp_path / "i.hnsw", ef=1, threads=1)
    refined = RefinedSearch(poor, BoundedExactSearch(bank))
    want = np.array([brute_force(bank, e).max() for e in emb])
    np.testing.assert_allclose(refined.image_scores(emb), want, rtol=1e-5)
    assert 15 <= refined.exact_queries < 15 * 60


def test_a_large_bank_takes_fewer_queries_per_bound_gemm(monkeypatch):
    import tocoad_edge.runtime.search.bounded as bounded

    monkeypatch.setattr(bounded, "BOUND_ELEMENTS", 1500)           # a 500-row bank then takes 3 queries per GEMM
    rng = np.random.default_rng(4)
    bank = rng.standard_normal((500, 8)).astype(np.float32)
    q = rng.standard_normal((10, 8)).astype(np.float32)
    seen = []
    search = BoundedExactSearch(bank)
    inner = search._query_block
    search._query_block = lambda block, upper=None: seen.append(len(block)) or inner(block, upper)
    np.testing.assert_allclose(search.query(q), brute_force(bank, q), rtol=1e-5, atol=1e-5)
    assert seen == [3, 3, 3, 1]


def test_upper_bounds_from_an_approximate_search_give_the_same_exact_answers(tmp_path):
    rng = np.random.default_rng(9)
    bank, _ = clustered_bank(rng, n=2000, dim=32)
    build_hnsw_index(bank, tmp_path / "i.hnsw", M=8, ef_construction=40)
    q = (bank[rng.integers(0, len(bank), 300)] + 0.3 * rng.standard_normal((300, 32))).astype(np.float32)
    poor = HnswSearch(bank, tmp_path / "i.hnsw", ef=1, threads=1)
    upper = poor.query(q)
    search = BoundedExactSearch(bank)
    want = brute_force(bank, q)
    assert (upper > want * (1 + 1e-4)).sum() > 10                 # the bounds are loose for many rows
    np.testing.assert_allclose(search.query_below(q, upper), want, rtol=1e-5)   # loose bounds: still exact
    good = HnswSearch(bank, tmp_path / "i.hnsw", ef=64, threads=1).query(q)
    before = search.rows_checked
    np.testing.assert_allclose(search.query_below(q, good), want, rtol=1e-5)
    with_bounds = search.rows_checked - before
    search.query(q)
    assert with_bounds <= search.rows_checked - before - with_bounds   # good bounds: no more rows than its own guess
    with pytest.raises(InputError, match="upper bounds"):
        search.query_below(q, upper[:-1])


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "numpy"])
def test_the_bank_is_split_over_the_search_threads_for_two_or_more_queries(threads, compiled):
    """With several threads each takes a contiguous share of the bank's rows; the nearest row may sit in any
    share (here: each query's nearest row is placed in a different one), and the answers stay exact."""
    import threading

    rng = np.random.default_rng(21)
    bank, scales = clustered_bank(rng, n=1200, dim=24)
    q = (rng.standard_normal((6, 24)) * scales * 2).astype(np.float32)
    shares = BoundedExactSearch(bank, threads=threads, compiled=compiled)._shares()  # depend on the size alone
    cuts = [lo for lo, _ in shares] + [len(bank)]
    for i in range(len(q)):                                  # query i's near twin in share i % threads
        bank[cuts[i % threads] + 7 * i] = q[i] + 0.01
    want = brute_force(bank, q)
    split = BoundedExactSearch(bank, threads=threads, compiled=compiled)
    spans = []
    inner = split._nearest_in_rows

    def spy(q_, qa, q_sq, best, span):
        spans.append((threading.current_thread().name.split("_")[0], span))
        return inner(q_, qa, q_sq, best, span)
    split._nearest_in_rows = spy
    np.testing.assert_allclose(split.query(q), want, rtol=1e-5)
    assert sorted(s for _, s in spans) == [(int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:])]
    assert {name for name, s in spans if s[0] == 0} == {"MainThread"}
    assert {name for name, s in spans if s[0] > 0} == {"tocoad-search"}
    # given upper bounds from elsewhere (rows in another share than the nearest one): still exact
    loose = np.sqrt(((bank[cuts[-2]:][:1] - q) ** 2).sum(1))
    np.testing.assert_allclose(split.query_below(q, loose), want, rtol=1e-5)
    split.rows_checked = 0
    split.query(q)
    assert split.rows_checked >= len(q)                    # the shares' full-distance rows are all counted
    spans.clear()
    np.testing.assert_allclose(split.query(q[:1]), want[:1], rtol=1e-5)
    assert spans == [("MainThread", (0, len(bank)))]       # one query: a GEMV, not worth a hand-off
    split.close()
    tiny = bank[:2]                                         # fewer rows than threads: no empty share
    np.testing.assert_allclose(BoundedExactSearch(tiny, threads=3, compiled=compiled).query(q), brute_force(tiny, q),
                               rtol=1e-5)
    if compiled:                                            # shares start at whole blocks of the compiled loop
        assert all(lo % split.kernels.block == 0 for lo, _ in shares)


def test_the_runtime_refined_search_splits_its_rechecks_over_the_first_stage_pool(tmp_path):
    from tocoad_edge.runtime.search.refined import bounded_refined_search

    rng = np.random.default_rng(8)
    bank, scales = clustered_bank(rng, n=1500, dim=16)
    build_hnsw_index(bank, tmp_path / "i.hnsw", M=8, ef_construction=40)
    refined = bounded_refined_search(HnswSearch(bank, tmp_path / "i.hnsw", ef=4, threads=2), bank, 2)
    assert refined.exact.splitter is refined.approx.splitter              # one worker thread per frame, not two
    emb = (bank[rng.integers(0, len(bank), 64)] + 0.3 * rng.standard_normal((64, 16))).astype(np.float32)
    emb[5] += (scales * 3).astype(np.float32)
    want = brute_force(bank, emb).max()
    assert refined.max_distance(emb, refined.query(emb)) == pytest.approx(want, rel=1e-5)
    np.testing.assert_allclose(refined.exact.query(emb[:8]), brute_force(bank, emb[:8]), rtol=1e-5)
    pool = refined.approx.splitter._pool
    assert pool is not None                                                 # the 8 re-checks used the shared pool
    refined.exact.close()                                                   # not its pool: left running
    assert refined.approx.splitter._pool is pool
    refined.set_threads(1)                                                  # the owner resizes the shared pool
    assert refined.exact.splitter.threads == 1
    np.testing.assert_allclose(refined.exact.query(emb[:8]), brute_force(bank, emb[:8]), rtol=1e-5)
    refined.close()
