"""The compiled first stage's own walk of an hnswlib index (runtime/search/hnsw_graph.py, _kernels.c): it reads the
file's arrays, refuses a damaged one, finds hnswlib's rows in hnswlib's order, and a frame's first stage split over
threads in blocks gives the answers of one thread and of the hnswlib walk."""
import threading

import numpy as np
import pytest

from tocoad_edge.errors import BundleError, ResourceError
from tocoad_edge.runtime.search.hnsw import build_hnsw_index, load_hnsw_index
from tocoad_edge.runtime.search.hnsw_graph import read_hnsw_graph
from tocoad_edge.runtime.search.kernels import WalkGraph, WalkScratch, compiled_kernels
from tocoad_edge.runtime.search.projected import ProjectedSearch, project

from search_helpers import grid_queries, projected_bank_and_index, queries_near, true_nn

HEADER = 96                 # hnswlib 0.8's saveIndex header: 13 fields


@pytest.fixture(scope="module")
def kernels():
    k = compiled_kernels()
    assert k is not None, "the search kernels were not built: pip install -e . builds them (it needs a C compiler)"
    if not k.walks:
        pytest.skip("the compiled walk replicates hnswlib's x86-64 build; this CPU walks with hnswlib")
    return k


@pytest.fixture(scope="module")
def bank_and_index(tmp_path_factory):
    return projected_bank_and_index(tmp_path_factory.mktemp("graph"), rows=3000, dim=40, rank=10, dims=8, seed=5)


def _index(folder, rows, dim, m, seed=0):
    rng = np.random.default_rng(seed)
    data = rng.standard_normal((rows, dim)).astype(np.float32)
    path = folder / f"index_{rows}_{dim}_{m}.hnsw"
    build_hnsw_index(data, path, M=m, ef_construction=40, seed=seed)
    return data, path


@pytest.mark.parametrize("rows, dim, m", [(2000, 8, 4), (3000, 16, 8), (500, 32, 16)])
def test_the_compiled_walk_finds_hnswlibs_rows_in_hnswlibs_order(kernels, tmp_path, rows, dim, m):
    data, path = _index(tmp_path, rows, dim, m)
    graph = read_hnsw_graph(path, dim, rows)
    assert graph is not None and graph.count == rows
    walk, index = WalkGraph(graph), load_hnsw_index(path, dim, rows)
    q = queries_near(data, 400, seed=rows, noise=0.5)
    for ef, k in [(1, 1), (8, 8), (16, 4), (40, 10)]:
        scratch = WalkScratch(rows, ef)
        index.set_ef(ef)
        want = index.knn_query(q, k=k, num_threads=1)[0]
        np.testing.assert_array_equal(kernels.graph_walk(walk, q, ef, k, scratch), want)
    assert graph.max_level >= 1, "the test needs an index with upper layers"


def test_the_visited_tags_going_round_clears_them(kernels, tmp_path):
    data, path = _index(tmp_path, 1000, 8, 8)
    walk, index = WalkGraph(read_hnsw_graph(path, 8, 1000)), load_hnsw_index(path, 8, 1000)
    scratch = WalkScratch(1000, 16)
    scratch.tag[0] = np.uint32(2 ** 32 - 3)             # three queries before the tags go round
    scratch.visited[:] = 0                              # tag 0 is never used: nothing counts as visited
    q = queries_near(data, 20, seed=1)
    index.set_ef(16)
    np.testing.assert_array_equal(kernels.graph_walk(walk, q, 16, 5, scratch), index.knn_query(q, k=5)[0])
    assert 1 <= int(scratch.tag[0]) <= 20


def test_a_file_the_walk_cannot_follow_is_left_to_hnswlib(tmp_path):
    data, path = _index(tmp_path, 300, 6, 8)
    assert read_hnsw_graph(path, 6, 300) is None                # six floats: not the SSE path the walk replicates
    data, path = _index(tmp_path, 300, 8, 8)
    raw = path.read_bytes()
    (tmp_path / "longer.hnsw").write_bytes(raw + b"\0" * 4)     # another version's layout (an extra block)
    assert read_hnsw_graph(tmp_path / "longer.hnsw", 8, 300) is None
    (tmp_path / "short.hnsw").write_bytes(raw[:HEADER + 10])
    assert read_hnsw_graph(tmp_path / "short.hnsw", 8, 300) is None
    assert read_hnsw_graph(path, 8, 299) is None                # not this bank's index
    deleted = bytearray(raw)
    deleted[HEADER + 2] = 1                                     # the first element marked deleted
    (tmp_path / "deleted.hnsw").write_bytes(bytes(deleted))
    assert read_hnsw_graph(tmp_path / "deleted.hnsw", 8, 300) is None
    assert read_hnsw_graph(path, 8, 300) is not None


def test_a_damaged_index_is_refused_before_the_walk_reads_it(tmp_path):
    data, path = _index(tmp_path, 300, 8, 8)
    raw = path.read_bytes()
    per_element = int(np.frombuffer(raw[24:32], "<u8")[0])
    max_m0 = int(np.frombuffer(raw[64:72], "<u8")[0])

    def damaged(offset, value, dtype="<u4"):
        b = bytearray(raw)
        b[offset:offset + np.dtype(dtype).itemsize] = np.array([value], dtype).tobytes()
        p = tmp_path / "damaged.hnsw"
        p.write_bytes(bytes(b))
        return p

    with pytest.raises(BundleError, match="base-layer link points past"):
        read_hnsw_graph(damaged(HEADER + 4, 300), 8, 300)                      # element 0's first link
    with pytest.raises(BundleError, match="more links than it has room"):
        read_hnsw_graph(damaged(HEADER, max_m0 + 1), 8, 300)                   # element 0's list size
    with pytest.raises(BundleError, match="label is not a bank row"):
        read_hnsw_graph(damaged(HEADER + per_element - 8, 300, "<u8"), 8, 300)  # element 0's label
    with pytest.raises(BundleError, match="entry point"):
        read_hnsw_graph(damaged(52, 299), 8, 300)                               # an entry point below the top


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("lend", [1, 2])
def test_the_compiled_first_stage_gives_the_hnswlib_walks_answers(kernels, bank_and_index, threads, lend):
    bank, projection, path = bank_and_index
    h, w = 12, 11
    q = grid_queries(bank, 3, h, w, seed=threads * 10 + lend)
    kw = dict(ef=8, candidates=8, lend=lend, grid=(h, w), threads=threads)
    compiled = ProjectedSearch(bank, path, projection, **kw)
    assert compiled.describe()["walk"] == "compiled"
    hnsw = ProjectedSearch(bank, path, projection, **kw)
    hnsw.walk_graph = None                                      # the same search walking with hnswlib
    assert hnsw.describe()["walk"] == "hnswlib"
    got, want = compiled.query(q), hnsw.query(q)
    # the walk projects each row in its own order of sums (BLAS's order depends on the block): a row whose
    # candidates tie at the last bit could differ, so the answers agree to rounding, and are true distances
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert np.all(got >= true_nn(bank, q) * (1 - 1e-5))
    one = ProjectedSearch(bank, path, projection, **{**kw, "threads": 1})
    np.testing.assert_array_equal(got, one.query(q))            # no block or thread changes a row's answer
    for s in (compiled, hnsw, one):
        s.close()


def test_a_first_stage_walks_hnswlibs_rows_for_the_projected_queries(kernels, bank_and_index):
    bank, projection, path = bank_and_index
    search = ProjectedSearch(bank, path, projection, ef=8, candidates=8, lend=1, grid=(10, 10), threads=1)
    q = grid_queries(bank, 1, 10, 10, seed=3)
    scratch = WalkScratch(len(bank), 8)
    mine = kernels.graph_walk(search.walk_graph, project(q, projection), 8, 8, scratch)
    np.testing.assert_array_equal(mine, search.candidate_rows(q, 1))
    search.close()


def test_a_block_another_thread_keeps_ends_the_wait_with_an_error(kernels, bank_and_index):
    """Every block claimed but none ranked: a thread of another frame that stopped in the middle. The caller waits
    out the timeout and says so, instead of spinning for ever."""
    bank, projection, path = bank_and_index
    search = ProjectedSearch(bank, path, projection, ef=8, candidates=8, lend=1, grid=(4, 8), threads=1)
    q = grid_queries(bank, 1, 4, 8, seed=4)
    n = len(q)
    stage = kernels.stage_state()
    stage[:8] = np.frombuffer(np.int64(2).tobytes(), np.uint8)     # the walk counter: both blocks taken
    scratch, projected = search._walk_buffers()
    args = (search.walk_graph, q, projection, 8, 8, search.bank, search.norms, search._grid_neighbours(n),
            np.empty((n, 1), np.int64), np.empty((n, 8), np.uint64), np.empty((n, 8), np.float32),
            np.empty(n, np.float32), scratch, projected)
    with pytest.raises(ResourceError, match="did not finish its part in time"):
        kernels.first_stage(stage, *args, timeout_s=0.05)
    fresh = kernels.stage_state()
    kernels.first_stage(fresh, *args, timeout_s=5.0)                # the same arguments on a fresh stage
    np.testing.assert_array_equal(args[-3], search.query(q))
    search.close()


def test_a_first_stage_split_over_threads_meets_and_answers_every_row(kernels, bank_and_index):
    """Two threads call the same stage at once: each row answered once, as one thread answers it."""
    bank, projection, path = bank_and_index
    search = ProjectedSearch(bank, path, projection, ef=8, candidates=8, lend=2, grid=(28, 28), threads=1)
    q = grid_queries(bank, 1, 28, 28, seed=6)
    n = len(q)
    want = search.query(q)
    for _ in range(5):
        stage = kernels.stage_state()
        shared = (np.empty((n, 2), np.int64), np.empty((n, 8), np.uint64), np.empty((n, 8), np.float32),
                  np.full(n, np.nan, np.float32))
        errors: list[Exception] = []

        def part(stage=stage, shared=shared, errors=errors):
            try:
                scratch, projected = search._walk_buffers()
                kernels.first_stage(stage, search.walk_graph, q, projection, 8, 8, search.bank, search.norms,
                                    search._grid_neighbours(n), *shared, scratch, projected, timeout_s=30.0)
            except Exception as exc:  # noqa: BLE001 - the test reports it below
                errors.append(exc)

        other = threading.Thread(target=part)
        other.start()
        part()
        other.join(timeout=60)
        assert not other.is_alive() and errors == []
        np.testing.assert_array_equal(shared[-1], want)
    search.close()
