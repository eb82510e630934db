"""What the bundle writer hands its steps (INT8 calibration, search tuning, parity report): the export options
and the ``ExportContext``. Here rather than in ``export/`` because calibration reads it too and never imports
export (export → calibration, never back)."""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from tocoad_edge.bundle.manifest import FeatureSpec, IndexSpec, ScoringSpec

from .float_layers import DEFAULT_FLOAT_RULE

if TYPE_CHECKING:
    from tocoad_edge.train.config import TrainConfig
    from tocoad_edge.train.run_folder import RunFolder


@dataclass(frozen=True)
class ExportOptions:
    int8: bool = False
    dynamic_batch: bool = False
    allow_degraded: bool = False
    calibration_images: int = 256
    calibration_method: str = "auto"      # auto | max | percentile | entropy
    int8_float: str = DEFAULT_FLOAT_RULE   # boundary layers kept in float: float_layers.FLOAT_RULES
    hnsw_M: int = 16
    hnsw_ef_construction: int = 200
    bank_dtype: str = "float16"           # float16 | float32 (image scores moved < 1e-3 relative: docs/performance.md)
    search_index: str = "projected"       # projected (PCA + hnswlib + full-dimension re-rank) | full (hnswlib over D)
    search_dims: int = 32                 # projected: the index's dimension (export/search_index.py: why)
    search_candidates: int = 8            # projected: neighbours each patch walks to, re-ranked in the full dimension
    search_lend: int = 2                  # projected: of those, the best each patch lends its grid neighbours
    with_torch_weights: bool = False      # also ship backbone.safetensors (only the optional torch backend reads it)
    bank: str = "full"                    # full | auto | RATIOxDIMSxDTYPE (export/bank_compression.py)
    data_dir: Path | None = None          # real labelled test data for the parity report (optional)
    force: bool = False
    sign_key: Path | None = None          # Ed25519 private key PEM: sign the manifest (bundle/signature.py)


@dataclass
class ExportContext:
    """Everything the INT8 / parity / engine steps need, handed over by the bundle writer."""
    run: RunFolder
    cfg: TrainConfig
    meta: dict[str, Any]
    staging: Path
    options: ExportOptions
    embedder: Any                          # torch PatchEmbedder, exactly as trained
    bank: np.ndarray
    fp32_path: Path
    scoring: ScoringSpec
    features: FeatureSpec
    bank_dtype: str = "float32"            # the dtype coreset.npy is stored in
    index: IndexSpec | None = None         # the written search index (its ef is a placeholder until tuned)
    compression: Any = None                # export/bank_compression.CompressedBank when --bank is not 'full'
    extra_manifest: dict[str, Any] = field(default_factory=dict)
    phase_seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time one export step; the bundle writer logs the breakdown at the end."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.phase_seconds[name] = self.phase_seconds.get(name, 0.0) + time.perf_counter() - t0

    def score_kernel(self) -> np.ndarray | None:
        """The bundle's image-score kernel (``runtime/scoring.score_kernel``; None: the largest patch)."""
        from tocoad_edge.runtime.scoring import score_kernel

        return score_kernel(self.scoring.image_score, self.scoring.gaussian_sigma, self.features.stride)

    def image_scores(self, search: Any, embeddings: np.ndarray) -> np.ndarray:
        """Each image's score from its patch ``embeddings [images, patches, D]`` as the bundle's runtime draws it
        (``scoring.image_score``: the largest patch, or the ``smoothed-max`` peak), with ``search``."""
        out: np.ndarray = search.image_scores(embeddings, tuple(self.features.grid), self.score_kernel())
        return out

    def index_search(self, ef: int, threads: int | None = None) -> Any:
        """The staged index as the runtime opens it (full-dimension or projected + re-rank), at ``ef``."""
        from tocoad_edge.errors import ExportError
        from tocoad_edge.runtime.search.bundle_index import open_index_search

        if self.index is None:
            raise ExportError("the search index is not written yet", fix="a bug: write the bank before tuning")
        staged = {p.name: p for p in self.staging.iterdir() if p.is_file()}
        return open_index_search(self.bank, self.index, staged, ef=ef, threads=threads, grid=self.features.grid)
