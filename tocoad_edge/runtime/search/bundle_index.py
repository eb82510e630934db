"""The approximate search a bundle's ``memory_bank.index`` serves: ``HnswSearch`` over the bank itself (kind
``hnsw``) or ``ProjectedSearch`` (kind ``projected_hnsw``: index over the projected bank + full-dimension re-rank).
One place, so ``search: hnsw``, ``refined`` and ``auto`` open the same thing."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...bundle.manifest import IndexSpec
from ...errors import BundleError
from .base import NearestNeighbourSearch


def open_index_search(bank: np.ndarray, index: IndexSpec, paths: dict[str, Path], *, ef: int,
                      threads: int | None, grid: tuple[int, int]) -> NearestNeighbourSearch:
    """``paths``: the bundle's verified files (name → path), so every file read here was hashed first; ``grid``:
    the patch grid (h, w) of one image or tile (``features.grid``), where neighbours lend each other rows."""
    index_path = _listed(paths, index.file, "index")
    if index.kind != "projected_hnsw":
        from .hnsw import HnswSearch

        return HnswSearch(bank, index_path, ef=ef, threads=threads)
    from .projected import ProjectedSearch

    assert index.projection is not None             # IndexSpec checks it for this kind
    projection_path = _listed(paths, index.projection, "search projection")
    try:
        projection = np.load(projection_path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise BundleError(f"cannot read the search projection {index.projection}", got=str(exc),
                          fix="re-export the bundle") from None
    # shape, dtype and finiteness are checked by ProjectedSearch; here only the agreement with the manifest
    if projection.ndim == 2 and projection.shape[1] != index.dims:
        raise BundleError(f"{index.projection} does not match the manifest", expected=f"{index.dims} dims",
                          got=f"{projection.shape[1]} dims", fix="re-export the bundle")
    return ProjectedSearch(bank, index_path, projection, ef=ef, candidates=index.candidates, lend=index.lend,
                           grid=(int(grid[0]), int(grid[1])), threads=threads)


def _listed(paths: dict[str, Path], name: str, role: str) -> Path:
    if name not in paths:
        raise BundleError(f"the {role} file {name} is not listed in the manifest's files",
                          expected="every bundle file listed with its sha256", got=name,
                          fix="re-export the bundle with tocoad-export")
    return paths[name]
