"""``search: graph`` (the bank as an ONNX model run by ONNX Runtime) matches exact search; the model the runtime
writes without the onnx package is a valid ONNX model with the stated temporary bound."""
import numpy as np
import pytest

from tocoad_edge.runtime.search.distance_graph import (OPSET, augmented_width, chunk_entries, distance_graph)
from tocoad_edge.runtime.search.exact import ExactSearch
from tocoad_edge.runtime.search.graph import GraphSearch


def _data(entries, dim, queries, seed=0, noise=0.5):
    rng = np.random.default_rng(seed)
    bank = rng.standard_normal((entries, dim)).astype(np.float32)
    q = bank[rng.integers(0, entries, queries)] + noise * rng.standard_normal((queries, dim)).astype(np.float32)
    return bank, q


def _brute64(q, bank):
    q64, b64 = q.astype(np.float64), bank.astype(np.float64)
    return np.sqrt(((q64 ** 2).sum(1)[:, None] - 2 * q64 @ b64.T + (b64 ** 2).sum(1)[None]).min(1))


@pytest.mark.parametrize("entries,dim,max_temp", [(3000, 64, 1 << 20), (700, 40, 8 << 20), (5000, 384, 2 << 20)])
@pytest.mark.parametrize("threads", [1, 2])
def test_graph_matches_exact_search(entries, dim, max_temp, threads):
    bank, q = _data(entries, dim, 784)
    graph = GraphSearch(bank, threads=threads, max_temp_bytes=max_temp)
    exact = ExactSearch(bank, threads=1).query(q)
    got = graph.query(q)
    assert got.dtype == np.float32 and got.shape == (784,)
    np.testing.assert_allclose(got, exact, rtol=1e-5, atol=0)
    # image scores through the protocol too (queries → [images, patches, D])
    np.testing.assert_allclose(graph.image_scores(q.reshape(4, 196, dim)),
                               exact.reshape(4, 196).max(1), rtol=1e-5, atol=0)


def test_graph_within_1e5_of_float64_where_float32_cancellation_is_large():
    """Near neighbours 20× closer than the vectors' norms: |b|² − 2q·b + |q|² cancels most of its digits. The graph
    (MLAS, blocked sums) stays within 1e-5 relative of float64; the same check as exact search's own error."""
    bank, q = _data(5000, 384, 784, noise=0.3)
    ref = _brute64(q, bank)
    np.testing.assert_allclose(GraphSearch(bank, threads=1).query(q), ref, rtol=1e-5, atol=0)
    assert np.max(np.abs(ExactSearch(bank, threads=1).query(q) / ref - 1)) < 2e-5


def test_graph_is_valid_onnx_with_bounded_chunks():
    onnx = pytest.importorskip("onnx")   # the workstation has onnx; the runtime writes the bytes without it
    bank, _ = _data(10000, 96, 1)
    bound = 1 << 20
    model = onnx.load_from_string(distance_graph(bank, max_temp_bytes=bound, expected_queries=784))
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == OPSET
    c = chunk_entries(bound, 784)
    blocks = [onnx.numpy_helper.to_array(t) for t in model.graph.initializer]
    assert len(blocks) == -(-10000 // c)
    assert all(b.shape[0] == augmented_width(96) and b.shape[1] <= c for b in blocks)
    assert max(784 * b.shape[1] * 4 for b in blocks) <= bound
    # the stored blocks are the bank (transposed) with |b|² in row D
    np.testing.assert_array_equal(np.concatenate([b[:96].T for b in blocks]), bank)
    np.testing.assert_allclose(np.concatenate([b[96] for b in blocks]), (bank.astype(np.float64) ** 2).sum(1),
                               rtol=1e-5)
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    assert [d.dim_param for d in inferred.graph.output[0].type.tensor_type.shape.dim] == ["patches"]


def test_graph_rejects_wrong_query_width():
    from tocoad_edge.errors import InputError

    bank, q = _data(500, 32, 10)
    with pytest.raises(InputError, match=r"\[n, 32\]"):
        GraphSearch(bank).query(q[:, :31])


def test_set_threads_reopens_and_still_matches():
    bank, q = _data(2000, 48, 100)
    g = GraphSearch(bank, threads=1)
    before = g.query(q)
    g.set_threads(2)
    assert g.describe()["threads"] == 2
    np.testing.assert_array_equal(g.query(q), before)


def test_detector_graph_search_matches_exact_on_a_bundle(sample_dataset, tiny_bundle):
    from tocoad_edge.data import load_dataset, read_image
    from tocoad_edge.runtime import Detector

    frames = [read_image(t.path) for t in load_dataset(sample_dataset, require_test=True).test]
    with Detector.open(tiny_bundle, search="exact", threads=1) as ex, \
            Detector.open(tiny_bundle, search="graph", threads=2) as gr:
        assert gr.describe()["search"]["kind"] == "graph"
        for f in frames:
            e, g = ex.predict(f), gr.predict(f)
            assert g.raw_score == pytest.approx(e.raw_score, rel=1e-5)
            np.testing.assert_allclose(g.anomaly_map, e.anomaly_map, rtol=1e-4, atol=1e-5)
