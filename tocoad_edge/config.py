"""Training configuration: frozen, typed dataclasses read from YAML with ``safe_load`` only.

Every key has a documented default (``docs/config.md``); ``tocoad-train --print-config`` prints the
resolved file. Sections the ToCoAD stages need (``synth``, ``stage1``, ``stage2``) live here too so
one file describes a whole run.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from .typed_config import from_dict, load_yaml, require, to_dict


@dataclass(frozen=True)
class DataConfig:
    image_size: int = 224           # frames are resized to image_size × image_size for the backbone
    max_train_images: int | None = None   # cap on training images (None: all)
    holdout_images: int = 16        # normal training images held out to set the threshold
    extensions: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp")

    def __post_init__(self) -> None:
        require(32 <= self.image_size <= 2048 and self.image_size % 16 == 0, "data.image_size",
                "a multiple of 16 between 32 and 2048", self.image_size)
        require(self.max_train_images is None or self.max_train_images > 0, "data.max_train_images",
                "a positive integer or null", self.max_train_images)
        require(self.holdout_images >= 0, "data.holdout_images", "an integer >= 0", self.holdout_images)


@dataclass(frozen=True)
class BackboneConfig:
    name: str = "efficientnet_lite0"
    weights: str | None = None      # local weights file; None: the weights shipped with the package
    layers: tuple[str, ...] = ("blocks.4", "blocks.10")

    def __post_init__(self) -> None:
        require(len(self.layers) >= 1, "backbone.layers", "at least one layer name", list(self.layers))


@dataclass(frozen=True)
class FeatureConfig:
    aggregation: int = 3            # local aggregation neighbourhood (odd kernel size)
    aggregation_mode: Literal["patchcore", "mean"] = "patchcore"   # patchcore: unfold k×k + adaptive pool; mean: average
    aggregation_dim: int = 192      # per-layer dimension with aggregation_mode patchcore (D = layers × this)
    projection: Literal["none", "random", "pca"] = "none"   # dimension reduction inside the graph
    projection_dim: int = 128

    def __post_init__(self) -> None:
        require(self.aggregation >= 1 and self.aggregation % 2 == 1, "features.aggregation",
                "an odd integer >= 1", self.aggregation)
        require(self.aggregation_dim >= 1, "features.aggregation_dim", "an integer >= 1", self.aggregation_dim)
        require(self.projection_dim >= 1, "features.projection_dim", "an integer >= 1", self.projection_dim)


@dataclass(frozen=True)
class MemoryConfig:
    coreset_ratio: float = 0.1      # fraction of training patches kept in the memory bank
    coreset_projection_dim: int = 128   # random projection used only while selecting the coreset
    max_patches: int | None = None  # subsample training patches before the coreset (None: all)

    def __post_init__(self) -> None:
        require(0.0 < self.coreset_ratio <= 1.0, "memory.coreset_ratio", "a number in (0, 1]", self.coreset_ratio)
        require(self.coreset_projection_dim >= 1, "memory.coreset_projection_dim", "an integer >= 1",
                self.coreset_projection_dim)
        require(self.max_patches is None or self.max_patches > 0, "memory.max_patches",
                "a positive integer or null", self.max_patches)


@dataclass(frozen=True)
class ScoringConfig:
    gaussian_sigma: float = 4.0     # smoothing of the anomaly map, in pixels of the model input
    threshold_quantile: float = 1.0  # quantile of held-out normal image scores that becomes the threshold
    threshold_margin: float = 1.05  # threshold = quantile × margin

    def __post_init__(self) -> None:
        require(self.gaussian_sigma >= 0.0, "scoring.gaussian_sigma", "a number >= 0", self.gaussian_sigma)
        require(0.0 < self.threshold_quantile <= 1.0, "scoring.threshold_quantile", "a number in (0, 1]",
                self.threshold_quantile)
        require(self.threshold_margin > 0.0, "scoring.threshold_margin", "a number > 0", self.threshold_margin)


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    stages: Literal["baseline", "no-guide", "full"] = "baseline"
    device: str = "cpu"
    threads: int | None = None
    data: DataConfig = field(default_factory=DataConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    # ToCoAD stage sections (issue: two-stage training) are plain mappings until their dataclasses land.
    extra: dict[str, Any] = field(default_factory=dict)

    def with_overrides(self, **changes: Any) -> "TrainConfig":
        return replace(self, **changes)


def load_train_config(path: str | Path | None) -> TrainConfig:
    """Default config, or the YAML file at ``path`` merged over the defaults (strictly)."""
    if path is None:
        return TrainConfig()
    return from_dict(TrainConfig, load_yaml(path))


def config_to_dict(cfg: Any) -> dict[str, Any]:
    return to_dict(cfg)
