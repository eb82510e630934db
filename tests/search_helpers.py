"""Banks, indexes and queries shaped like patch embeddings, and float64 nearest-neighbour distances, for the search
tests (projected, kernels)."""
import numpy as np

from tocoad_edge.export.search_index import pca_search_projection
from tocoad_edge.runtime.search.projected import build_projected_index


def projected_bank_and_index(folder, *, rows, dim, rank, dims, seed):
    """A bank with most variance in ``rank`` directions (like patch embeddings), its PCA projection to ``dims`` and
    a projected hnswlib index of it written into ``folder``."""
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((rank, dim)).astype(np.float32)
    bank = (rng.standard_normal((rows, rank)) @ basis + 0.1 * rng.standard_normal((rows, dim))).astype(np.float32)
    projection = pca_search_projection(bank, dims)
    path = folder / "index.hnsw"
    build_projected_index(bank, projection, path, M=8, ef_construction=60)
    return bank, projection, path


def true_nn(bank, q):
    """float64 nearest-neighbour distances (the float32 GEMM form of ExactSearch rounds at ~1e-4 relative)."""
    b = bank.astype(np.float64)
    d2 = (q.astype(np.float64) ** 2).sum(1)[:, None] - 2 * q.astype(np.float64) @ b.T + (b ** 2).sum(1)[None]
    return np.sqrt(np.maximum(d2.min(1), 0.0))


def queries_near(bank, n, seed, noise=0.2):
    rng = np.random.default_rng(seed)
    return (bank[rng.integers(0, len(bank), n)] + noise * rng.standard_normal((n, bank.shape[1]))).astype(np.float32)


def grid_queries(bank, grids, h, w, seed):
    """Patch grids like an image's: each patch is a bank row plus noise, and a patch's row is its upper or left
    neighbour's about half the time (so neighbours often share their nearest rows, as neighbouring patches do)."""
    rng = np.random.default_rng(seed)
    rows = np.empty((grids, h, w), dtype=np.int64)
    for g in range(grids):
        for i in range(h):
            for j in range(w):
                coin = rng.random()
                rows[g, i, j] = (rows[g, i - 1, j] if i and coin < 0.25 else rows[g, i, j - 1] if j and coin < 0.5
                                 else rng.integers(0, len(bank)))
    flat = rows.reshape(-1)
    return (bank[flat] + 0.4 * rng.standard_normal((len(flat), bank.shape[1]))).astype(np.float32)
