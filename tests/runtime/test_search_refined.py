"""RefinedSearch: HNSW bounds + exact refinement give exactly the exact search's image scores."""
import numpy as np
import pytest

from tocoad_edge.errors import InputError
from tocoad_edge.runtime.search.exact import ExactSearch
from tocoad_edge.runtime.search.hnsw import HnswSearch, build_hnsw_index
from tocoad_edge.runtime.search.refined import RefinedSearch


@pytest.fixture()
def bank_and_index(tmp_path):
    rng = np.random.default_rng(7)
    bank = rng.standard_normal((4000, 24)).astype(np.float32)
    build_hnsw_index(bank, tmp_path / "i.hnsw", M=8, ef_construction=40)
    return bank, tmp_path / "i.hnsw"


def test_refined_image_scores_equal_exact_even_with_a_poor_index(bank_and_index):
    bank, index = bank_and_index
    rng = np.random.default_rng(8)
    emb = (bank[rng.integers(0, 4000, 20 * 100)] + 0.3 * rng.standard_normal((2000, 24))).astype(np.float32)
    emb = emb.reshape(20, 100, 24)
    emb[3, 17] += 4.0                                               # one clear outlier patch
    exact = ExactSearch(bank, threads=1)
    poor = HnswSearch(bank, index, ef=1, threads=1)                  # ef 1: many wrong neighbours
    want = exact.image_scores(emb)
    assert not np.allclose(poor.image_scores(emb), want, rtol=1e-4)  # the bounds alone are not exact
    refined = RefinedSearch(poor, exact)
    got = refined.image_scores(emb)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert 20 <= refined.exact_queries < 20 * 100                    # refinement stopped early
    np.testing.assert_array_equal(refined.query(emb[0]), poor.query(emb[0]))   # per-patch: the approximate search
    assert refined.describe()["image_score"] == "exact"


def test_refined_search_refuses_mismatched_banks_and_shapes(bank_and_index):
    bank, index = bank_and_index
    with pytest.raises(InputError, match="same bank"):
        RefinedSearch(HnswSearch(bank, index), ExactSearch(bank[:100]))
    refined = RefinedSearch(HnswSearch(bank, index), ExactSearch(bank))
    with pytest.raises(InputError, match=r"\[images, patches, 24\]"):
        refined.image_scores(np.zeros((5, 24), np.float32))


@pytest.mark.parametrize("first_block, block", [(1, 32), (1, 1), (4, 8), (64, 64)])
def test_refined_scores_do_not_depend_on_the_refinement_blocks(bank_and_index, first_block, block):
    bank, index = bank_and_index
    rng = np.random.default_rng(9)
    emb = (bank[rng.integers(0, 4000, 12 * 100)] + 0.3 * rng.standard_normal((1200, 24))).astype(np.float32)
    emb = emb.reshape(12, 100, 24)
    exact = ExactSearch(bank, threads=1)
    refined = RefinedSearch(HnswSearch(bank, index, ef=2, threads=1), exact, block=block, first_block=first_block)
    np.testing.assert_allclose(refined.image_scores(emb), exact.image_scores(emb), rtol=1e-5)
    assert refined.exact_queries >= 12 * first_block                 # every image refines at least its first block


def test_refined_search_refuses_empty_blocks(bank_and_index):
    bank, index = bank_and_index
    with pytest.raises(InputError, match="at least one patch"):
        RefinedSearch(HnswSearch(bank, index), ExactSearch(bank), first_block=0)
