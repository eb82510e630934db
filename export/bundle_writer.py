"""Run folder → bundle folder. Written into a staging folder and renamed into place at the end, so a failed
export never leaves a partial bundle (and never damages an existing one)."""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import shutil
import time
import uuid
from pathlib import Path
from dataclasses import replace
from typing import Any

import numpy as np

from tocoad_edge import __version__
from tocoad_edge.bundle.atomic import replace_dir
from tocoad_edge.bundle.manifest import (CORESET_NAME, FP32_NAME, INT8_NAME, MANIFEST_NAME, SCHEMA_VERSION,
                                         FeatureSpec, FileEntry, IndexSpec, InputSpec, Manifest, MemoryBankSpec,
                                         ModelFile, ScoringSpec, TilingSpec, sha256_file)
from tocoad_edge.typed_config import from_dict
from tocoad_edge.calibration.context import ExportContext, ExportOptions
from tocoad_edge.train.config import TrainConfig
from tocoad_edge.errors import ExportError
from tocoad_edge.train.run_folder import RunFolder

log = logging.getLogger("tocoad_edge.export")


def _versions() -> dict[str, str]:
    import hnswlib  # noqa: F401
    import onnx
    import onnxruntime
    import torch

    return {"tocoad_edge": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__, "numpy": np.__version__, "python": platform.python_version()}


def _load_run(run_dir: Path) -> tuple[RunFolder, TrainConfig, dict[str, Any]]:
    from tocoad_edge.train.embedder_factory import run_config

    run = RunFolder(Path(run_dir))
    return run, run_config(run), run.meta()


def write_bundle(run_dir: str | Path, out_dir: str | Path, options: ExportOptions = ExportOptions()) -> Path:
    t_start = time.perf_counter()
    out = Path(out_dir)
    if out.exists() and not options.force and any(out.iterdir()):
        raise ExportError(f"bundle folder {out} already exists and is not empty",
                          fix="choose another --out, or pass --force to replace it")
    run, cfg, meta = _load_run(Path(run_dir))
    if _tiling_spec(meta) is not None and not options.dynamic_batch:
        # a frame's tiles go through the model as one batch: a batch-1 model would run them one by one
        log.info("the run is tiled: exporting with a dynamic batch axis (the tiles of a frame are one batch)")
        options = dataclasses.replace(options, dynamic_batch=True)
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
    ctx = _stage_model_and_bank(staging, run, cfg, meta, options)
    models, calibration = _models(ctx)

    from .search_tuning import tune_search

    with ctx.phase("hnsw ef tuning"):
        search_info, ef = tune_search(ctx, {p: staging / m.file for p, m in models.items() if p != "fp32"})

    from .parity import write_parity_report

    with ctx.phase("parity report"):
        write_parity_report(ctx, models)
    if ctx.compression is not None:
        from .bank_compression import record_choice

        search_info = record_choice(staging, search_info, ctx.compression)
    log.info("export steps: %s", ", ".join(f"{k} {v:.1f} s" for k, v in ctx.phase_seconds.items()))
    return _manifest(ctx, models, calibration, search_info, ef)


def _stage_model_and_bank(staging: Path, run: RunFolder, cfg: TrainConfig, meta: dict[str, Any],
                          options: ExportOptions) -> ExportContext:
    """Write the FP32 ONNX model, the memory bank with its HNSW index and the trained weights into ``staging``;
    returns the context the later steps share."""
    from tocoad_edge.train.embedder_factory import load_run_embedder

    from .onnx_export import export_onnx

    t0 = time.perf_counter()
    embedder = load_run_embedder(run.path, cfg, run.projection())
    bank = run.memory_bank().astype(np.float32)
    compressed = None
    if options.bank != "full":
        from .bank_compression import compress_run_bank, parse_bank_option

        compressed, embedder = compress_run_bank(run, cfg, meta, embedder, bank, parse_bank_option(options.bank))
    fp32_path = export_onnx(embedder, staging / FP32_NAME, int(meta["image_size"]),
                            dynamic_batch=options.dynamic_batch)
    if compressed is None:
        stored = bank.astype(np.float16) if options.bank_dtype == "float16" else bank
    else:
        stored = compressed.stored
    loaded, index = _write_bank(staging, stored, cfg, options)
    t_index = time.perf_counter() - t0
    # The trained backbone weights, only for the optional torch backend (and reference measurements): left out
    # unless asked for (12 MB of a 25 MB bundle). That backend cannot rebuild a projection, so a bundle whose bank
    # was projected at export leaves them out anyway.
    if options.with_torch_weights and (compressed is None or compressed.projection is None):
        shutil.copyfile(run.file("backbone.safetensors"), staging / "backbone.safetensors")
    features, scoring = _feature_spec(meta), _scoring_spec(meta)
    if compressed is not None:
        from .bank_compression import compressed_features, with_scoring

        features, scoring = compressed_features(features, compressed), with_scoring(scoring, compressed.scoring)
    return ExportContext(run=run, cfg=cfg, meta=meta, staging=staging, options=options, embedder=embedder,
                         bank=loaded, fp32_path=fp32_path, scoring=scoring, features=features,
                         bank_dtype=str(stored.dtype), compression=compressed, index=index,
                         phase_seconds={"onnx + hnsw index": t_index})


def _write_bank(staging: Path, bank_store: np.ndarray, cfg: TrainConfig,
                options: ExportOptions) -> tuple[np.ndarray, IndexSpec]:
    """Write the memory bank as stored (float32 or float16) and its search index (with its projection for
    ``--search-index projected``); returns the bank as the runtime loads it (float32) and the index spec."""
    from .search_index import write_search_index

    with open(staging / CORESET_NAME, "wb") as f:
        np.save(f, bank_store, allow_pickle=False)
    # The index is built over exactly what the runtime loads (float16 storage is widened on load).
    bank_loaded = bank_store.astype(np.float32)
    index = write_search_index(staging, bank_loaded, kind=options.search_index, dims=options.search_dims,
                               candidates=min(options.search_candidates, len(bank_loaded)),
                               lend=min(options.search_lend, len(bank_loaded)), M=options.hnsw_M,
                               ef_construction=options.hnsw_ef_construction, seed=cfg.seed)
    return bank_loaded, index


def _tiling_spec(meta: dict[str, Any]) -> TilingSpec | None:
    t = meta.get("tiling")      # absent in runs from before tiling existed
    return None if t is None else from_dict(TilingSpec, t)


def _feature_spec(meta: dict[str, Any]) -> FeatureSpec:
    f = meta["feature"]
    return FeatureSpec(backbone=f["backbone"], layers=tuple(f["layers"]), aggregation=int(f["aggregation"]),
                       stride=int(f["stride"]), grid=tuple(f["grid"]), dim=int(f["dim"]),
                       projection=f["projection"], mean=tuple(f["mean"]), std=tuple(f["std"]),
                       aggregation_mode=f.get("aggregation_mode", "mean"),
                       aggregation_dim=int(f.get("aggregation_dim", 0)),
                       tone_reference=None if f.get("tone_reference") is None else tuple(f["tone_reference"]))


def _scoring_spec(meta: dict[str, Any]) -> ScoringSpec:
    th = meta["thresholds"]
    # runs from before the field was written scored (and set their thresholds) by the largest patch distance
    return ScoringSpec(image_score=meta.get("image_score", "max"), gaussian_sigma=float(meta["gaussian_sigma"]),
                       image_threshold=th["image_threshold"],
                       pixel_threshold=th["pixel_threshold"], normalization_offset=th["normalization_offset"],
                       normalization_scale=th["normalization_scale"])


def _models(ctx: ExportContext) -> tuple[dict[str, ModelFile], dict[str, Any]]:
    """The FP32 model, and with ``--int8`` the calibrated INT8 one; returns them with the manifest's
    ``calibration`` section (empty without INT8)."""
    from .onnx_export import INPUT_NAME, OUTPUT_NAME

    dynamic = ctx.options.dynamic_batch
    models = {"fp32": ModelFile(file=FP32_NAME, input_name=INPUT_NAME, output_name=OUTPUT_NAME, precision="fp32",
                                dynamic_batch=dynamic)}
    calibration: dict[str, Any] = {}
    if ctx.options.int8:
        from tocoad_edge.calibration.pipeline import build_int8_model

        with ctx.phase("int8 calibration + gate"):
            int8_path, calibration = build_int8_model(ctx, ctx.staging / INT8_NAME)
        models["int8"] = ModelFile(file=int8_path.name, input_name=INPUT_NAME, output_name=OUTPUT_NAME,
                                   precision="int8", dynamic_batch=dynamic)
    return models, calibration


def _manifest(ctx: ExportContext, models: dict[str, ModelFile], calibration: dict[str, Any], search_info: dict,
              ef: int) -> Manifest:
    """The manifest over every file in the staging folder (hashes and sizes)."""
    staging, meta = ctx.staging, ctx.meta
    files = {}
    for p in sorted(staging.iterdir()):
        if p.is_file() and p.name != MANIFEST_NAME:
            files[p.name] = FileEntry(sha256=sha256_file(p), bytes=p.stat().st_size)
    model_id = f"{ctx.features.backbone}-{files[FP32_NAME].sha256[:12]}"
    size = int(meta["image_size"])
    return Manifest(
        schema_version=SCHEMA_VERSION, model_id=model_id, created_by=f"tocoad-edge {__version__}",
        input=InputSpec(height=size, width=size, tiling=_tiling_spec(meta)), features=ctx.features, models=models,
        memory_bank=MemoryBankSpec(file=CORESET_NAME, entries=int(ctx.bank.shape[0]), dim=int(ctx.bank.shape[1]),
                                   dtype=ctx.bank_dtype,
                                   index=replace(ctx.index, ef=ef)),
        scoring=ctx.scoring, files=files, versions=_versions(), calibration=calibration, search=search_info,
        training={"stages": meta.get("stages"), "train_images": meta.get("train_images"),
                  "data_dir": os.path.basename(str(meta.get("data_dir", ""))),
                  "holdout_images": meta.get("holdout_images", [])},
        **ctx.extra_manifest,
    )


def manifest_summary(bundle: Path) -> str:
    data = json.loads((bundle / MANIFEST_NAME).read_text())
    return (f"model {data['model_id']}: {data['memory_bank']['entries']} bank entries × {data['memory_bank']['dim']}, "
            f"models {sorted(data['models'])}, files {len(data['files'])}")
