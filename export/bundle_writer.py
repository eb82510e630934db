"""Run folder → bundle folder. Written into a staging folder and renamed into place at the end, so a failed
export never leaves a partial bundle (and never damages an existing one)."""
from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tocoad_edge import __version__
from tocoad_edge.bundle.atomic import replace_dir
from tocoad_edge.bundle.manifest import (CORESET_NAME, FP32_NAME, INDEX_NAME, INT8_NAME, MANIFEST_NAME, SCHEMA_VERSION,
                                         FeatureSpec, FileEntry, IndexSpec, InputSpec, Manifest, MemoryBankSpec,
                                         ModelFile, ScoringSpec, sha256_file)
from tocoad_edge.train.config import TrainConfig
from tocoad_edge.errors import ExportError
from tocoad_edge.train.run_folder import RunFolder

log = logging.getLogger("tocoad_edge.export")



@dataclass(frozen=True)
class ExportOptions:
    int8: bool = False
    dynamic_batch: bool = False
    allow_degraded: bool = False
    calibration_images: int = 256
    calibration_method: str = "auto"      # auto | max | percentile | entropy
    hnsw_M: int = 16
    hnsw_ef_construction: int = 200
    bank_dtype: str = "float32"           # float32 | float16
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
    extra_manifest: dict[str, Any] = field(default_factory=dict)
    phase_seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def phase(self, name: str):
        """Time one export step; the bundle writer logs the breakdown at the end."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.phase_seconds[name] = self.phase_seconds.get(name, 0.0) + time.perf_counter() - t0


def _versions() -> dict[str, str]:
    import hnswlib  # noqa: F401
    import onnx
    import onnxruntime
    import torch

    return {"tocoad_edge": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__, "numpy": np.__version__, "python": platform.python_version()}


def _load_run(run_dir: Path) -> tuple[RunFolder, TrainConfig, dict[str, Any]]:
    from tocoad_edge.train.config import load_train_config

    run = RunFolder(Path(run_dir))
    meta = run.meta()
    cfg = load_train_config(run.file("config.yaml"))
    return run, cfg, meta


def write_bundle(run_dir: str | Path, out_dir: str | Path, options: ExportOptions = ExportOptions()) -> Path:
    t_start = time.perf_counter()
    out = Path(out_dir)
    if out.exists() and not options.force and any(out.iterdir()):
        raise ExportError(f"bundle folder {out} already exists and is not empty",
                          fix="choose another --out, or pass --force to replace it")
    run, cfg, meta = _load_run(Path(run_dir))
    staging = out.parent / f".{out.name}.staging-{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True)
    try:
        manifest = _write_into(staging, run, cfg, meta, options)
        (staging / MANIFEST_NAME).write_text(manifest.to_json(), encoding="utf-8")
        from tocoad_edge.runtime.golden import record_golden_scores

        record_golden_scores(staging)       # the golden-image scores every device self-tests against
        if options.sign_key is not None:
            from tocoad_edge.bundle.signature import sign_bundle

            sign_bundle(staging, options.sign_key)
        replace_dir(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("bundle written: %s (%.1f s)", out, time.perf_counter() - t_start)
    return out


def _write_into(staging: Path, run: RunFolder, cfg: TrainConfig, meta: dict[str, Any],
                options: ExportOptions) -> Manifest:
    from tocoad_edge.runtime.search.hnsw import build_hnsw_index
    from tocoad_edge.train.embedder_factory import load_run_embedder

    from .onnx_export import INPUT_NAME, OUTPUT_NAME, export_onnx

    t0 = time.perf_counter()
    size = int(meta["image_size"])
    embedder = load_run_embedder(run.path, cfg, run.projection())
    bank = run.memory_bank().astype(np.float32)
    compressed = None
    if options.bank != "full":
        from .bank_compression import compress_run_bank, parse_bank_option

        compressed, embedder = compress_run_bank(run, cfg, meta, embedder, bank, parse_bank_option(options.bank))
        bank = compressed.bank
    fp32_path = export_onnx(embedder, staging / FP32_NAME, size, dynamic_batch=options.dynamic_batch)

    bank_store = bank.astype(np.float16) if options.bank_dtype == "float16" else bank
    if compressed is not None:
        bank_store = compressed.stored
    with open(staging / CORESET_NAME, "wb") as f:
        np.save(f, bank_store, allow_pickle=False)
    # The index is built over exactly what the runtime loads (float16 storage is widened on load).
    bank_loaded = bank_store.astype(np.float32)
    build_hnsw_index(bank_loaded, staging / INDEX_NAME, M=options.hnsw_M,
                     ef_construction=options.hnsw_ef_construction, seed=cfg.seed)

    t_index = time.perf_counter() - t0
    # The trained backbone weights, for the optional torch backend (and reference measurements). That backend
    # cannot rebuild a projection, so a bundle whose bank was projected at export leaves them out.
    if compressed is None or compressed.projection is None:
        shutil.copyfile(run.file("backbone.safetensors"), staging / "backbone.safetensors")

    f = meta["feature"]
    features = FeatureSpec(backbone=f["backbone"], layers=tuple(f["layers"]), aggregation=int(f["aggregation"]),
                           stride=int(f["stride"]), grid=tuple(f["grid"]), dim=int(f["dim"]),
                           projection=f["projection"], mean=tuple(f["mean"]), std=tuple(f["std"]),
                           aggregation_mode=f.get("aggregation_mode", "mean"),
                           aggregation_dim=int(f.get("aggregation_dim", 0)))
    if compressed is not None:
        from .bank_compression import compressed_features

        features = compressed_features(features, compressed)
    th = meta["thresholds"]
    scoring = ScoringSpec(gaussian_sigma=float(meta["gaussian_sigma"]), image_threshold=th["image_threshold"],
                          pixel_threshold=th["pixel_threshold"], normalization_offset=th["normalization_offset"],
                          normalization_scale=th["normalization_scale"])
    if compressed is not None:
        from .bank_compression import with_scoring

        scoring = with_scoring(scoring, compressed.scoring)
    ctx = ExportContext(run=run, cfg=cfg, meta=meta, staging=staging, options=options, embedder=embedder,
                        bank=bank_loaded, fp32_path=fp32_path, scoring=scoring, features=features,
                        phase_seconds={"onnx + hnsw index": t_index})

    models = {"fp32": ModelFile(file=FP32_NAME, input_name=INPUT_NAME, output_name=OUTPUT_NAME, precision="fp32",
                                dynamic_batch=options.dynamic_batch)}
    calibration: dict[str, Any] = {}
    if options.int8:
        from tocoad_edge.calibration.pipeline import build_int8_model

        with ctx.phase("int8 calibration + gate"):
            int8_path, calibration = build_int8_model(ctx, staging / INT8_NAME)
        models["int8"] = ModelFile(file=int8_path.name, input_name=INPUT_NAME, output_name=OUTPUT_NAME,
                                   precision="int8", dynamic_batch=options.dynamic_batch)

    from .search_tuning import tune_search

    with ctx.phase("hnsw ef tuning"):
        search_info, ef = tune_search(ctx, staging / INDEX_NAME,
                                      {p: staging / m.file for p, m in models.items() if p != "fp32"})

    from .parity import write_parity_report

    with ctx.phase("parity report"):
        write_parity_report(ctx, models)
    if compressed is not None:
        from .bank_compression import record_choice

        search_info = record_choice(staging, search_info, compressed)
    log.info("export steps: %s", ", ".join(f"{k} {v:.1f} s" for k, v in ctx.phase_seconds.items()))

    files = {}
    for p in sorted(staging.iterdir()):
        if p.is_file() and p.name != MANIFEST_NAME:
            files[p.name] = FileEntry(sha256=sha256_file(p), bytes=p.stat().st_size)
    model_id = f"{features.backbone}-{files[FP32_NAME].sha256[:12]}"
    return Manifest(
        schema_version=SCHEMA_VERSION, model_id=model_id, created_by=f"tocoad-edge {__version__}",
        input=InputSpec(height=size, width=size), features=features, models=models,
        memory_bank=MemoryBankSpec(file=CORESET_NAME, entries=int(bank.shape[0]), dim=int(bank.shape[1]),
                                   dtype=str(bank_store.dtype),
                                   index=IndexSpec(file=INDEX_NAME, M=options.hnsw_M,
                                                   ef_construction=options.hnsw_ef_construction, ef=ef,
                                                   seed=cfg.seed)),
        scoring=scoring, files=files, versions=_versions(), calibration=calibration, search=search_info,
        training={"stages": meta.get("stages"), "train_images": meta.get("train_images"),
                  "data_dir": os.path.basename(str(meta.get("data_dir", ""))),
                  "holdout_images": meta.get("holdout_images", [])},
        **ctx.extra_manifest,
    )


def manifest_summary(bundle: Path) -> str:
    data = json.loads((bundle / MANIFEST_NAME).read_text())
    return (f"model {data['model_id']}: {data['memory_bank']['entries']} bank entries × {data['memory_bank']['dim']}, "
            f"models {sorted(data['models'])}, files {len(data['files'])}")
