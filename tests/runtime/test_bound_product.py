"""The bounded re-check's bound product on the reference path: numpy for one query, ONNX Runtime (the bank share
prepacked) for more; both the same product as float64 arithmetic, query-major. And what each path prepares."""
import numpy as np
import pytest

from tocoad_edge.runtime.search.bound_product import SESSION_MIN_QUERIES, BoundProduct
from tocoad_edge.runtime.search.bounded import BoundedExactSearch


@pytest.mark.parametrize("n", [1, 2, 9, 70])
def test_product_is_query_major_and_matches_float64(n):
    rng = np.random.default_rng(n)
    matrix = rng.standard_normal((3001, 98)).astype(np.float32)
    queries = rng.standard_normal((n, 98)).astype(np.float32)
    product = BoundProduct(matrix[1000:2500])               # a share: a view into the bank's rows
    got = product(queries)
    want = queries.astype(np.float64) @ matrix[1000:2500].astype(np.float64).T
    assert got.shape == (n, 1500) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    assert (product._session is not None) == (n >= SESSION_MIN_QUERIES)   # ONNX Runtime only from two queries


def test_bounded_search_prepares_one_product_per_share_when_opened_and_when_the_shares_are_re_cut():
    """The reference path (compiled=False): one ONNX Runtime session per share, made at open and when re-cut."""
    rng = np.random.default_rng(4)
    bank = rng.standard_normal((4000, 32)).astype(np.float32)
    q = (bank[:6] + 0.3 * rng.standard_normal((6, 32))).astype(np.float32)
    brute = np.sqrt(((q[:, None] - bank[None]) ** 2).sum(-1).min(1))
    search = BoundedExactSearch(bank, threads=2, prefix_dims=8, compiled=False)
    # sessions made at open, not during the first pass of a running line
    assert sorted(search._products) == [(0, 2000), (2000, 4000)]
    assert all(p._session is not None for p in search._products.values())
    np.testing.assert_allclose(search.query(q), brute, rtol=1e-5)
    assert sorted(search._products) == [(0, 2000), (2000, 4000)]
    search.set_threads(3)
    assert sorted(search._products) == [(0, 1333), (1333, 2666), (2666, 4000)]
    assert all(p._session is not None for p in search._products.values())
    np.testing.assert_allclose(search.query(q), brute, rtol=1e-5)
    search.close()
    assert search._products == {}


def test_the_compiled_bound_blocks_the_bank_once_and_cuts_shares_at_whole_blocks():
    """The compiled path: the whole bank's blocked rows made when the search opens; each share, however many
    threads, a view of them starting at a whole block; no ONNX Runtime session unless a query comes without upper
    bounds."""
    rng = np.random.default_rng(4)
    bank = rng.standard_normal((4000, 32)).astype(np.float32)
    q = (bank[:6] + 0.3 * rng.standard_normal((6, 32))).astype(np.float32)
    brute = np.sqrt(((q[:, None] - bank[None]) ** 2).sum(-1).min(1)).astype(np.float32)
    search = BoundedExactSearch(bank, threads=2, prefix_dims=8)
    block = search.kernels.block
    for threads in (2, 3):
        search.set_threads(threads)
        shares = search._shares()
        assert len(shares) == threads and shares[0][0] == 0 and shares[-1][1] == 4000
        assert all(lo % block == 0 and lo < hi for lo, hi in shares)
        assert all(np.shares_memory(search._blocked(span), search._blocked_rows) for span in shares)
        np.testing.assert_allclose(search.query_below(q, brute * np.float32(1.5)), brute, rtol=1e-5)
        assert search._products == {}
    search.close()
