"""``manifest.json``: the typed description of a bundle, with the sha256 of every file.

The manifest is read strictly (unknown keys are errors) into frozen dataclasses. Files are hashed and
compared with the manifest before any native loader (ONNX Runtime, TensorRT, hnswlib, numpy) sees
them. See ``docs/bundle.md`` for the format.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BundleError, ConfigError
from ..typed_config import from_dict, require, to_dict

MANIFEST_NAME = "manifest.json"
# the files export writes into every bundle (the manifest records each one with its sha256)
FP32_NAME = "backbone.onnx"
INT8_NAME = "backbone.int8.onnx"
CORESET_NAME = "coreset.npy"
INDEX_NAME = "index.hnsw"
PROJECTION_NAME = "search_projection.npy"
# 2: memory_bank.index may be a projected index (kind, projection, dims, candidates); version 1 manifests (full-
# dimension index only) read as before. Readers before version 2 refuse a version 2 manifest by its number.
SCHEMA_VERSION = 2
READABLE_SCHEMA_VERSIONS = (1, 2)
INDEX_KINDS = ("hnsw", "projected_hnsw")
# scoring.image_score: the largest patch distance, or the largest value of the patch grid smoothed by the map's
# own Gaussian (runtime/scoring.py)
IMAGE_SCORES = ("max", "smoothed-max")


MAX_TILE_OVERLAP = 0.75            # more overlap multiplies the tiles (and the time) for little gain
MAX_TILE_SCALE = 4.0


@dataclass(frozen=True)
class TilingSpec:
    """Frames are cut into tiles of the model input size instead of being resized to it (``runtime/tiling.py``)."""
    overlap: float = 0.25           # least overlap of neighbouring tiles, as a share of the tile size
    scale: float = 1.0              # fixed resize of the frame before tiling (1.0: native resolution)
    combine: str = "mean"           # how overlapping tiles' maps combine (the only one: mean)

    def __post_init__(self) -> None:
        require(0.0 <= self.overlap <= MAX_TILE_OVERLAP, "tiling.overlap", f"a number in [0, {MAX_TILE_OVERLAP}]",
                self.overlap)
        require(0.0 < self.scale <= MAX_TILE_SCALE, "tiling.scale", f"a number in (0, {MAX_TILE_SCALE}]", self.scale)
        require(self.combine == "mean", "tiling.combine", "'mean'", self.combine)


@dataclass(frozen=True)
class InputSpec:
    height: int                     # model input height (frames are resized to it, or cut into tiles of it)
    width: int
    channels: int = 3
    layout: str = "NHWC"
    dtype: str = "uint8"
    color: str = "BGR"
    resize: str = "bilinear"        # how the runtime resizes a frame to height × width
    tiling: TilingSpec | None = None   # None: the frame is resized to the input (every bundle before tiling)


@dataclass(frozen=True)
class ModelFile:
    file: str                       # ONNX file name inside the bundle
    input_name: str = "image"
    output_name: str = "embeddings"
    precision: str = "fp32"         # fp32 | int8 (Q/DQ)
    dynamic_batch: bool = False


@dataclass(frozen=True)
class EngineFingerprint:
    file: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    input_shape: tuple[int, ...]
    onnx_sha256: str
    dla_core: int | None = None
    # dynamic-batch engines: input_shape[0] is -1 and the optimisation profile's (min, opt, max) batch says which
    # batches the engine runs; None for a static shape
    batch_profile: tuple[int, int, int] | None = None
    # what the engine computes: "backbone" (the embedding model: ``onnx_sha256`` is one of the manifest's models) or
    # "search" (the memory-bank distance graph: ``source_sha256`` is the bank file's sha256, ``onnx_sha256`` the
    # graph built from it with ``chunk_entries`` bank entries per chunk); records without these are backbones
    role: str = "backbone"
    source_sha256: str | None = None
    chunk_entries: int | None = None


# IndexSpec fields that only a projected_hnsw index uses (schema 2)
PROJECTED_INDEX_KEYS = ("projection", "dims", "candidates")


@dataclass(frozen=True)
class IndexSpec:
    file: str
    kind: str = "hnsw"              # hnsw: over the bank itself; projected_hnsw: over the bank projected to ``dims``
    space: str = "l2"               # hnswlib space; distances are squared L2
    M: int = 16
    ef_construction: int = 200
    ef: int = 64                    # query-time ef chosen at export by measured recall / score error
    seed: int = 0
    projection: str | None = None   # projected_hnsw: float32 [D + 1, dims] .npy (matrix rows, then the bias)
    dims: int | None = None         # projected_hnsw: the index's dimension
    candidates: int = 1             # projected_hnsw: neighbours re-ranked in the bank's full dimension
    lend: int = 0                   # projected_hnsw: best rows each patch lends its grid neighbours (projected.py)

    def __post_init__(self) -> None:
        require(self.kind in INDEX_KINDS, "memory_bank.index.kind", f"one of {list(INDEX_KINDS)}", self.kind)
        projected = self.kind == "projected_hnsw"
        require((self.projection is not None) == projected, "memory_bank.index.projection",
                "a file name for kind projected_hnsw, null for hnsw", self.projection)
        require((self.dims is not None and self.dims >= 1) == projected, "memory_bank.index.dims",
                "an integer >= 1 for kind projected_hnsw, null for hnsw", self.dims)
        require(self.candidates >= 1 and (projected or self.candidates == 1), "memory_bank.index.candidates",
                "an integer >= 1 (1 for kind hnsw)", self.candidates)
        require(0 <= self.lend <= self.candidates and (projected or self.lend == 0), "memory_bank.index.lend",
                f"an integer in 0 .. candidates ({self.candidates}); 0 for kind hnsw", self.lend)


@dataclass(frozen=True)
class MemoryBankSpec:
    file: str                       # coreset.npy, float32 or float16 [entries, dim]
    entries: int
    dim: int
    dtype: str = "float32"
    index: IndexSpec | None = None


@dataclass(frozen=True)
class FeatureSpec:
    backbone: str
    layers: tuple[str, ...]
    aggregation: int
    stride: int                     # patch grid stride in model-input pixels
    grid: tuple[int, int]           # patch grid (h, w)
    dim: int                        # embedding dimension the model outputs
    projection: str = "none"
    aggregation_mode: str = "mean"  # "patchcore": k×k unfold + adaptive pooling (in the graph); "mean": average
    aggregation_dim: int = 0        # per-layer dimension for "patchcore"
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    # (mean, std) grey levels each model input is standardised to inside the model graph (data.tone: standardize);
    # recorded so a rebuilt embedder (torch backend, reference pipeline) does the same; null: none
    tone_reference: tuple[float, float] | None = None


@dataclass(frozen=True)
class ScoringSpec:
    image_score: str = "max"        # one of IMAGE_SCORES; bundles without the field: the largest patch distance
    gaussian_sigma: float = 4.0     # map smoothing in model-input pixels
    image_threshold: float = 1.0    # on the raw image score; raw > threshold → NG
    pixel_threshold: float = 1.0    # on the raw map
    review_threshold: float | None = None   # on the raw image score: above it (and not NG) → REVIEW

    def __post_init__(self) -> None:
        require(self.image_score in IMAGE_SCORES, "scoring.image_score", " or ".join(IMAGE_SCORES), self.image_score)
        require(self.normalization_scale > 0, "scoring.normalization_scale", "a number > 0", self.normalization_scale)
        require(self.review_threshold is None or self.review_threshold < self.image_threshold,
                "scoring.review_threshold", f"null or below scoring.image_threshold ({self.image_threshold})",
                self.review_threshold)
    normalization_offset: float = 0.0   # normalised = (raw - offset) / scale; threshold maps to 1.0
    normalization_scale: float = 1.0


@dataclass(frozen=True)
class FileEntry:
    sha256: str
    bytes: int


@dataclass(frozen=True)
class Manifest:
    schema_version: int
    model_id: str
    created_by: str
    input: InputSpec
    features: FeatureSpec
    models: dict[str, ModelFile]            # key: precision ("fp32", "int8")
    memory_bank: MemoryBankSpec
    scoring: ScoringSpec
    files: dict[str, FileEntry]             # every file in the bundle but the manifest itself
    engines: tuple[EngineFingerprint, ...] = ()
    versions: dict[str, str] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    search: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    self_test: dict[str, Any] = field(default_factory=dict)   # golden-image scores at export (runtime/golden.py)
    decision: dict[str, Any] = field(default_factory=dict)    # how the thresholds were chosen (tocoad-threshold)

    def to_json(self) -> str:
        data = to_dict(self)
        if self.input.tiling is None:
            # an untiled bundle's manifest stays exactly as before tiling existed: older runtimes read it
            del data["input"]["tiling"]
        index = self.memory_bank.index
        if index is not None and index.kind == "hnsw":
            # likewise a full-dimension index's entry stays as before projected indexes existed, so a schema 1
            # manifest that tocoad-threshold or an engine build rewrites still reads in a schema 1 runtime
            for key in PROJECTED_INDEX_KEYS:
                del data["memory_bank"]["index"][key]
        if index is not None and index.lend == 0:
            # an index without lending reads in runtimes from before lending; one with it is refused there by the
            # unknown key, where answering without it would move the map
            del data["memory_bank"]["index"]["lend"]
        return json.dumps(data, indent=2, sort_keys=True) + "\n"


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def read_manifest(bundle_dir: str | Path, data: bytes | None = None) -> Manifest:
    """Parse ``bundle_dir/manifest.json`` strictly. Does not hash files (see ``verify_files``).

    ``data``: parse these bytes instead of reading the file again (the bytes a signature was checked over)."""
    bundle = Path(bundle_dir)
    path = bundle / MANIFEST_NAME
    if not bundle.is_dir():
        raise BundleError(f"bundle folder not found: {bundle}", expected="a folder written by tocoad-export",
                          fix="give the --out folder of tocoad-export")
    try:
        data = json.loads(data.decode("utf-8") if data is not None else path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"no {MANIFEST_NAME} in {bundle}", expected="a folder written by tocoad-export",
                          fix="export the bundle again with tocoad-export") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path} is not valid JSON", got=str(exc),
                          fix="the manifest is damaged: export the bundle again") from None
    if not isinstance(data, dict):
        raise BundleError(f"{path} is not a JSON object", got=type(data).__name__)
    version = data.get("schema_version")
    if version not in READABLE_SCHEMA_VERSIONS:
        raise BundleError(f"{path} has an unsupported schema version",
                          expected=" or ".join(map(str, READABLE_SCHEMA_VERSIONS)),
                          got=repr(version), fix="export the bundle with this version of tocoad-edge")
    try:
        return from_dict(Manifest, data)
    except ConfigError as exc:
        raise BundleError(f"{path} does not match the manifest schema: {exc.message}", expected=exc.expected,
                          got=exc.got, fix="export the bundle again with this version of tocoad-edge") from None


def safe_member_path(bundle_dir: Path, name: str) -> Path:
    """Resolve a file named by the manifest, refusing anything that leaves the bundle folder."""
    p = Path(name)
    if p.is_absolute() or ".." in p.parts or name.strip() == "":
        raise BundleError(f"manifest names a file outside the bundle: {name!r}",
                          expected="a plain file name inside the bundle folder", got=name)
    full = bundle_dir / p
    if full.is_symlink():
        raise BundleError(f"bundle file {name} is a symbolic link", expected="a regular file", got="a link")
    root = bundle_dir.resolve()
    if root not in full.resolve().parents:
        raise BundleError(f"manifest names a file outside the bundle: {name!r}", got=str(full.resolve()))
    return full


def verify_files(bundle_dir: str | Path, manifest: Manifest, names: list[str] | None = None) -> dict[str, Path]:
    """Hash ``names`` (default: every file in the manifest) and compare with the manifest.

    Returns name → path. Raises ``BundleError`` naming the file on any mismatch, before any loader runs.
    """
    bundle = Path(bundle_dir)
    out: dict[str, Path] = {}
    for name in names if names is not None else list(manifest.files):
        if name not in manifest.files:
            raise BundleError(f"bundle file {name} is not listed in the manifest",
                              expected=f"one of {sorted(manifest.files)}", got=name)
        entry = manifest.files[name]
        path = safe_member_path(bundle, name)
        if not path.is_file():
            raise BundleError(f"bundle file missing: {path}", fix="copy the whole bundle folder again")
        size = path.stat().st_size
        if size != entry.bytes:
            raise BundleError(f"bundle file {name} has the wrong size (truncated or replaced)",
                              expected=f"{entry.bytes} bytes", got=f"{size} bytes",
                              fix="copy the bundle again or re-export it")
        digest = sha256_file(path)
        if digest != entry.sha256:
            raise BundleError(f"bundle file {name} fails its sha256 check (corrupt or tampered)",
                              expected=entry.sha256, got=digest, fix="copy the bundle again or re-export it")
        out[name] = path
    return out
