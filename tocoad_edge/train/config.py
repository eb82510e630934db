"""Training configuration: frozen, typed dataclasses read from YAML with ``safe_load`` only.

Every key has a documented default (``docs/config.md``); ``tocoad-train --print-config`` prints the
resolved file. Sections the ToCoAD stages need (``synth``, ``stage1``, ``stage2``) live here too so
one file describes a whole run.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from ..bundle.manifest import IMAGE_SCORES, MAX_TILE_OVERLAP, MAX_TILE_SCALE, TilingSpec
from ..typed_config import from_dict, load_yaml, require, to_dict


TONES = ("none", "standardize")


@dataclass(frozen=True)
class TilingConfig:
    """Cut images into tiles of image_size × image_size at native resolution instead of resizing them to it
    (``runtime/tiling.py``: grid rule and stitching; docs/tiling.md). Recorded in the bundle's manifest."""
    enabled: bool = False
    overlap: float = 0.25           # least overlap of neighbouring tiles, as a share of the tile size
    scale: float = 1.0              # fixed resize before tiling (0.5: tiles cover twice the area at half the detail)

    def __post_init__(self) -> None:
        # the manifest's bounds, named by this file's keys, so a bad value fails before training starts
        require(0.0 <= self.overlap <= MAX_TILE_OVERLAP, "data.tiling.overlap", f"a number in [0, {MAX_TILE_OVERLAP}]",
                self.overlap)
        require(0.0 < self.scale <= MAX_TILE_SCALE, "data.tiling.scale", f"a number in (0, {MAX_TILE_SCALE}]",
                self.scale)

    def spec(self) -> TilingSpec | None:
        """What the manifest records (None: untiled)."""
        return TilingSpec(overlap=self.overlap, scale=self.scale) if self.enabled else None


@dataclass(frozen=True)
class DataConfig:
    image_size: int = 224           # frames are resized to image_size × image_size for the backbone
    max_train_images: int | None = None   # cap on training images (None: all)
    holdout_images: int = 16        # normal training images held out to set the threshold
    extensions: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp")
    tiling: TilingConfig = field(default_factory=TilingConfig)
    tone: str = "standardize"       # each frame's mean and spread → the training images' (models/tone.py); or none
    tone_reference: tuple[float, float] | None = None   # (mean, std) grey levels; null: the trainer measures them

    def __post_init__(self) -> None:
        require(self.tone in TONES, "data.tone", " or ".join(TONES), self.tone)
        require(self.tone_reference is None or (0 <= self.tone_reference[0] <= 255 and
                                                0 < self.tone_reference[1] <= 255),
                "data.tone_reference", "null or [mean, std] grey levels, mean in 0..255 and std in (0, 255]",
                self.tone_reference)
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
    # patchcore: unfold k×k + adaptive pool; mean: average
    aggregation_mode: Literal["patchcore", "mean"] = "patchcore"
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
    # "smoothed-max": the image score is the largest value of the patch grid smoothed by the map's Gaussian (a lone
    # stray patch of a good part counts for less than a defect over neighbouring patches); "max": the largest
    # patch distance. docs/tocoad_method.md has the comparison on the real sets.
    image_score: str = "smoothed-max"
    threshold_quantile: float = 1.0  # quantile of held-out normal image scores that becomes the threshold
    threshold_margin: float = 1.05  # threshold = quantile × margin

    def __post_init__(self) -> None:
        require(self.gaussian_sigma >= 0.0, "scoring.gaussian_sigma", "a number >= 0", self.gaussian_sigma)
        require(self.image_score in IMAGE_SCORES, "scoring.image_score", " or ".join(IMAGE_SCORES), self.image_score)
        require(0.0 < self.threshold_quantile <= 1.0, "scoring.threshold_quantile", "a number in (0, 1]",
                self.threshold_quantile)
        require(self.threshold_margin > 0.0, "scoring.threshold_margin", "a number > 0", self.threshold_margin)


@dataclass(frozen=True)
class SynthConfig:
    """Anomaly generator G (``tocoad_edge.synth``). Defaults are documented in docs/tocoad_method.md."""
    method: Literal["perlin", "cutpaste", "seamless"] = "perlin"   # Perlin was best in the paper's ablation
    textures: str | None = None         # folder of texture images (e.g. DTD); tocoad-train --textures DIR
    # auto: the folder if given, else normal images + procedural
    texture_source: Literal["auto", "normal", "procedural", "folder"] = "auto"
    anomaly_probability: float = 0.5    # share of G's outputs that carry an anomaly (the rest are normal, mask 0)
    perlin_min_scale: int = 0           # Perlin grid scales 2^min .. 2^max per axis, drawn independently
    perlin_max_scale: int = 6
    perlin_threshold: float = 0.5       # noise > threshold → anomaly mask
    min_coverage: float = 0.005         # redraw a mask that covers less than this share of the image (or foreground)
    # blend: out = (1-β)·image + β·texture inside the mask, β ~ U[beta_min, beta_max]
    beta_min: float = 0.1
    beta_max: float = 1.0
    rotation_degrees: float = 10.0      # slight random rotation of the normal image, ± degrees
    rotate90: bool = True               # random multiple of 90° rotation of the normal image
    foreground: Literal["none", "otsu"] = "none"  # keep defects on the object (use "otsu" for objects like hazelnut)
    grayscale_textures: Literal["auto", "always", "never"] = "auto"  # auto: gray textures on gray images

    def __post_init__(self) -> None:
        require(0.0 <= self.anomaly_probability <= 1.0, "synth.anomaly_probability", "a number in [0, 1]",
                self.anomaly_probability)
        require(0 <= self.perlin_min_scale <= self.perlin_max_scale <= 8, "synth.perlin_min_scale/max_scale",
                "0 <= perlin_min_scale <= perlin_max_scale <= 8", (self.perlin_min_scale, self.perlin_max_scale))
        require(-1.0 < self.perlin_threshold < 1.0, "synth.perlin_threshold", "a number in (-1, 1)",
                self.perlin_threshold)
        require(0.0 <= self.min_coverage < 0.5, "synth.min_coverage", "a number in [0, 0.5)", self.min_coverage)
        require(0.0 < self.beta_min <= self.beta_max <= 1.0, "synth.beta_min/beta_max",
                "0 < beta_min <= beta_max <= 1", (self.beta_min, self.beta_max))
        require(0.0 <= self.rotation_degrees <= 180.0, "synth.rotation_degrees", "a number in [0, 180]",
                self.rotation_degrees)
        require(self.texture_source != "folder" or self.textures is not None, "synth.textures",
                "a folder of texture images when synth.texture_source is 'folder'", self.textures)


@dataclass(frozen=True)
class Stage1Config:
    """Stage 1: discriminative network D on the frozen backbone, trained on G's synthetic anomalies."""
    epochs: int = 12                    # passes over the cached synthetic training set (features are cached)
    synthetic_per_image: int = 2        # synthetic samples drawn per normal training image
    max_synthetic: int = 600            # cap on the synthetic training set
    holdout_synthetic: int = 64         # held-out synthetic samples for D's pixel AUROC
    batch_size: int = 16
    learning_rate: float = 1e-3         # Adam
    weight_decay: float = 1e-5
    decoder_width: int = 64             # channels of the decoder
    focal_alpha: float = 0.5            # focal loss α (paper's best)
    focal_gamma: float = 2.0            # focal loss γ (paper's best)

    def __post_init__(self) -> None:
        for key in ("epochs", "synthetic_per_image", "max_synthetic", "batch_size", "decoder_width"):
            require(getattr(self, key) >= 1, f"stage1.{key}", "an integer >= 1", getattr(self, key))
        require(self.holdout_synthetic >= 0, "stage1.holdout_synthetic", "an integer >= 0", self.holdout_synthetic)
        require(self.learning_rate > 0.0, "stage1.learning_rate", "a number > 0", self.learning_rate)
        require(self.weight_decay >= 0.0, "stage1.weight_decay", "a number >= 0", self.weight_decay)
        require(0.0 <= self.focal_alpha <= 1.0, "stage1.focal_alpha", "a number in [0, 1]", self.focal_alpha)
        require(self.focal_gamma >= 0.0, "stage1.focal_gamma", "a number >= 0", self.focal_gamma)


@dataclass(frozen=True)
class Stage2Config:
    """Stage 2: contrastive fine-tuning of the backbone (SimSiam + negative guide from frozen D)."""
    epochs: int = 3
    batch_size: int = 8
    images_per_epoch: int | None = None  # cap per epoch (a different random subset each epoch); None: all images
    learning_rate: float = 1e-4         # Adam, backbone; heads use head_learning_rate
    head_learning_rate: float = 1e-3
    weight_decay: float = 0.0
    trainable_from: str = "auto"        # first fine-tuned layer; earlier ones stay frozen (auto: the first layer of
                                        # the deepest feature layer's stage: Lite0 blocks.8, WRN layer3)
    batchnorm: Literal["frozen", "train"] = "frozen"   # frozen: BN running statistics are kept (eval mode)
    projector_dim: int = 256            # SimSiam projector output channels (dense, 1×1 convs)
    predictor_dim: int = 64             # SimSiam predictor bottleneck
    simsiam_weight: float = 1.0
    guide_weight: float = 1.0           # negative guide (full ToCoAD); ignored with --stages no-guide
    guide_margin: float = 0.3           # anomalous regions are pushed until cos(anomalous, normal) <= margin
    guide_normal_weight: float = 1.0    # weight of the "normal regions stay aligned" term
    guide_map: Literal["discriminator", "mask", "product"] = "discriminator"  # what marks anomalous regions
    brightness: float = 0.2             # view augmentation: brightness jitter ± (of full range)
    contrast: float = 0.2               # view augmentation: contrast factor in [1-c, 1+c]
    noise_std: float = 0.02             # view augmentation: Gaussian noise (of full range)
    blur_probability: float = 0.3       # view augmentation: 3×3 blur probability
    collapse_std_ratio: float = 0.2     # TrainingError if feature std falls below this share of its start value
    max_grad_norm: float = 5.0

    def __post_init__(self) -> None:
        for key in ("epochs", "batch_size", "projector_dim", "predictor_dim"):
            require(getattr(self, key) >= 1, f"stage2.{key}", "an integer >= 1", getattr(self, key))
        require(self.images_per_epoch is None or self.images_per_epoch >= 1, "stage2.images_per_epoch",
                "an integer >= 1 or null", self.images_per_epoch)
        for key in ("learning_rate", "head_learning_rate", "max_grad_norm"):
            require(getattr(self, key) > 0.0, f"stage2.{key}", "a number > 0", getattr(self, key))
        for key in ("weight_decay", "simsiam_weight", "guide_weight", "guide_normal_weight", "brightness",
                    "contrast", "noise_std"):
            require(getattr(self, key) >= 0.0, f"stage2.{key}", "a number >= 0", getattr(self, key))
        require(-1.0 <= self.guide_margin < 1.0, "stage2.guide_margin", "a number in [-1, 1)", self.guide_margin)
        require(0.0 <= self.blur_probability <= 1.0, "stage2.blur_probability", "a number in [0, 1]",
                self.blur_probability)
        require(0.0 < self.collapse_std_ratio < 1.0, "stage2.collapse_std_ratio", "a number in (0, 1)",
                self.collapse_std_ratio)


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    stages: Literal["baseline", "no-guide", "full"] = "full"
    device: str = "cpu"
    threads: int | None = None
    data: DataConfig = field(default_factory=DataConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    synth: SynthConfig = field(default_factory=SynthConfig)
    stage1: Stage1Config = field(default_factory=Stage1Config)
    stage2: Stage2Config = field(default_factory=Stage2Config)

    def with_overrides(self, **changes: Any) -> "TrainConfig":
        return replace(self, **changes)


def load_train_config(path: str | Path | None) -> TrainConfig:
    """Default config, or the YAML file at ``path`` merged over the defaults (strictly)."""
    if path is None:
        return TrainConfig()
    return from_dict(TrainConfig, load_yaml(path))


def config_to_dict(cfg: Any) -> dict[str, Any]:
    return to_dict(cfg)
