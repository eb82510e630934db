"""A trained run scored on the synthetic set: image AUROC, recall at FPR <= 5 % and <= 1 % (image level) and pixel
AUROC on G's masks. Scores are computed as the runtime computes them (nearest memory-bank distance per patch,
image score = the largest, anomaly map = ``runtime.scoring.anomaly_map``) with exact search, in torch.

The set is drawn once at one reference size (the largest candidate input); each candidate sees it resized to its
own input, and its maps are brought back to the reference size, so every candidate is judged on the same pixels.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ...data.images import resize_to_input
from ...eval.metrics import auroc, pixel_auroc, recall_at_fpr
from ...runtime.scoring import anomaly_map, image_score, score_kernel
from ...runtime.search.exact import ExactSearch
from ...synth.labelled_set import SyntheticSet
from ..embedder_factory import embedder_from_run
from ..features import embed_images
from ..run_folder import RunFolder


@dataclass(frozen=True)
class SyntheticMetrics:
    image_auroc: float
    recall_at_fpr_5: float      # share of synthetic anomalies caught with <= 5 % of held-out normals called NG
    recall_at_fpr_1: float      # the same at <= 1 % (with < 100 normals: above every held-out normal)
    pixel_auroc: float
    normals: int
    anomalies: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def metrics_from_scores(labels: np.ndarray, scores: np.ndarray, masks: np.ndarray,
                        maps: list[np.ndarray]) -> SyntheticMetrics:
    return SyntheticMetrics(image_auroc=auroc(labels, scores),
                            recall_at_fpr_5=recall_at_fpr(labels, scores, 0.05)[0],
                            recall_at_fpr_1=recall_at_fpr(labels, scores, 0.01)[0],
                            pixel_auroc=pixel_auroc(list(masks), maps),
                            normals=int((labels == 0).sum()), anomalies=int((labels == 1).sum()))


def score_run(run_dir: Path, synthetic: SyntheticSet, batch_size: int = 16) -> SyntheticMetrics:
    """The run folder's model (weights, bank, smoothing as trained) on ``synthetic``."""
    embedder, cfg = embedder_from_run(run_dir)
    search = ExactSearch(RunFolder(Path(run_dir)).memory_bank())
    size = cfg.data.image_size
    ref = tuple(synthetic.images.shape[1:3])
    grid = embedder.grid_size(size, size)
    kernel = score_kernel(cfg.scoring.image_score, cfg.scoring.gaussian_sigma, embedder.stride)
    scores, maps = [], []
    for s in range(0, len(synthetic), batch_size):
        batch = np.stack([resize_to_input(img, size) for img in synthetic.images[s:s + batch_size]])
        feats = embed_images(embedder, batch, batch_size=batch_size)
        for f in feats:
            d = search.query(f)
            scores.append(image_score(d, grid, kernel))
            maps.append(anomaly_map(d, grid, (size, size), cfg.scoring.gaussian_sigma, frame_size=ref))
    return metrics_from_scores(synthetic.labels, np.asarray(scores), synthetic.masks, maps)
