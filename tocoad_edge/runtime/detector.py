"""``Detector``: a bundle → frame in, score + decision + anomaly map out. No torch."""
from __future__ import annotations

import dataclasses
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from ..bundle.engine_record import engine_view
from ..bundle.manifest import Manifest, read_manifest, safe_member_path, verify_files
from ..bundle.onnx_refs import check_external_data
from ..bundle.signature import read_signed_manifest
from ..errors import BundleError, ConfigError, InputError, TocoadError
from .arrays import Float32Array
from .backends import Backend, create_backend
from .bank import load_bank
from .frames import to_bgr_frame, to_model_input
from .options import DetectorOptions, Precision, Search
from .pipeline import DEFAULT_DEPTH, Embedded, FrameFailure
from .prediction import Prediction
from .scoring import anomaly_map, score_kernel
from .search.base import NearestNeighbourSearch
from .tiling import TileLayout, cut_tiles, tile_layout, tiled_anomaly_map

log = logging.getLogger("tocoad_edge.runtime")


def choose_backend(name: str, manifest: Manifest, precision: str = "fp32") -> str:
    """``auto``: TensorRT only when an engine fits this device, the bundle's input and ``precision``; otherwise
    ONNX Runtime, with the reason logged (an engine for another precision or GPU is no reason to fail)."""
    if name != "auto":
        return name
    if not manifest.engines:
        return "onnxrt"
    try:
        from .backends.trt.runner import engine_for

        fp = engine_for(manifest, precision)
    except (TocoadError, ImportError) as exc:
        log.info("backend auto: ONNX Runtime, as no TensorRT engine can serve %s here: %s", precision, exc)
        return "onnxrt"
    log.info("backend auto: TensorRT engine %s", fp.file)
    return "tensorrt"


def query_ef(manifest: Manifest, precision: str) -> int:
    """The HNSW ``ef`` tuned at export for this precision's embeddings (``search.ef_per_precision``); bundles
    without it: the index's stored ef (the largest of all precisions)."""
    per = (manifest.search or {}).get("ef_per_precision") or {}
    ef = per.get(precision)
    if isinstance(ef, int) and ef > 0:
        return int(ef)
    index = manifest.memory_bank.index
    if index is None:
        raise BundleError("this bundle has no HNSW index to take the query ef from", expected="memory_bank.index",
                          got="none", fix="use search='exact' or 'graph', or re-export the bundle")
    return int(index.ef)


# With search="refined" a missed neighbour only raises one map value, by little: on magnetic tile (26k × 384 bank,
# 304 test images) ef 16 (recall 0.978 on the tuning images, 0.955 on the test images, mean map error +0.12 %)
# changed pixel AUROC by −0.02 pt and AUPRO by −0.09 pt against exact search; ef 32 by −0.00 / −0.01 pt, for ~1.6×
# the HNSW time. Image scores are exact either way.
REFINED_MIN_RECALL = 0.97
# A projected index's recall is capped by its dims and candidates, not by ef (magnetic tile, 32 dims, 16 candidates:
# recall 0.91 at ef 16, 0.93 at ef 32; benchmarks/projected_sweep.py), so its rule is the anomaly map's mean
# relative distance error, which ef 16 already keeps at 0.3 %.
REFINED_MAX_MAP_ERROR = 0.005


def map_ef(manifest: Manifest, precision: str) -> int:
    """ef for ``search="refined"``, where HNSW only draws the anomaly map (the image score is exact): the smallest
    ef in the export's tuning table whose recall@1 reached ``REFINED_MIN_RECALL`` (projected index: whose mean map
    error is within ``REFINED_MAX_MAP_ERROR``); else :func:`query_ef`."""
    rows = [r for r in ((manifest.search or {}).get("ef_tuning") or {}).get(precision) or [] if isinstance(r, dict)]
    index = manifest.memory_bank.index
    if index is not None and index.kind == "projected_hnsw":
        ok = [int(r["ef"]) for r in rows if float(r.get("mean_distance_rel_error", 1.0)) <= REFINED_MAX_MAP_ERROR]
    else:
        ok = [int(r["ef"]) for r in rows if float(r.get("recall_at_1", 0.0)) >= REFINED_MIN_RECALL]
    return min(ok) if ok else query_ef(manifest, precision)


def create_search(kind: str, bank: np.ndarray, manifest: Manifest, paths: dict[str, Path],
                  threads: int | None, precision: str = "fp32") -> NearestNeighbourSearch:
    from .search.exact import ExactSearch

    index = manifest.memory_bank.index
    if kind == "graph":
        from .search.graph import GraphSearch

        return GraphSearch(bank, threads=threads, expected_queries=int(np.prod(manifest.features.grid)))
    if kind == "auto":
        from .search.select import choose_search

        return choose_search(bank, manifest, paths, threads, refined_ef=map_ef(manifest, precision) if index else None)
    if kind in ("hnsw", "refined"):
        if index is None:
            raise BundleError("this bundle has no HNSW index", fix="use search='exact' or re-export the bundle")
        from .search.bundle_index import open_index_search

        if kind == "hnsw":
            return open_index_search(bank, index, paths, ef=query_ef(manifest, precision), threads=threads,
                                     grid=manifest.features.grid)
        from .search.refined import bounded_refined_search

        return bounded_refined_search(open_index_search(bank, index, paths, ef=map_ef(manifest, precision),
                                                        threads=threads, grid=manifest.features.grid), bank, threads)
    return ExactSearch(bank, threads=threads)


class Detector:
    """Anomaly detector for one bundle. Thread-compatible: one ``predict`` at a time per instance."""

    def __init__(self, bundle_dir: Path, manifest: Manifest, backend: Backend, search: NearestNeighbourSearch,
                 precision: str):
        self.bundle_dir = bundle_dir
        self.manifest = manifest
        self.backend = backend
        self.search = search
        self.precision = precision
        self._input_hw = (manifest.input.height, manifest.input.width)
        self._tiling = manifest.input.tiling       # None: frames are resized to the input
        self._output_name = manifest.models[precision].output_name
        self._closed = False
        self.threads: dict[str, int | None] = {}
        self._public_key: str | Path | bytes | None = None
        self._map_pool: ThreadPoolExecutor | None = None

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def open(cls, bundle_dir: str | Path, *, backend: str = "auto", precision: Precision = "fp32",
             search: Search = "auto", threads: int | None = None, search_threads: int | None = None,
             public_key: str | Path | bytes | None = None, engine_public_key: str | Path | bytes | None = None,
             search_idle_spin_ms: float | None = None, **backend_options: Any) -> "Detector":
        """Verify every file of the bundle against the manifest's sha256, then load model and search.

        ``threads``: ONNX Runtime intra-op threads (and search threads unless ``search_threads`` is given).
        For ``predict_stream`` on a small CPU give each stage its own core: ``threads=1, search_threads=1``.
        ``search_idle_spin_ms``: how long the search's worker threads wait on their CPU between frames before they
        block (default 50: a frame's part starts within microseconds instead of after a wake-up; meanwhile that CPU
        is busy, though it yields to any thread that wants it; 0: they block at once, for a line that wants its
        idle core back; ``search/pool.py``).
        With ``threads`` given, OpenCV's own pool is set to one thread, for the whole process (``runtime/threads.py``:
        ``set_opencv_threads``): its default, every core, contends with the search's threads.
        ``search``: ``exact`` (BLAS), ``hnsw`` (at the ef tuned at export for this precision), ``refined`` (HNSW at
        a lower ef draws the anomaly map; the image score is exact: the patches whose HNSW distance could hold the
        maximum are re-checked exactly), ``graph`` (exact search as an ONNX model run by ONNX Runtime,
        ``search/graph.py``) or ``auto`` (times them on this bank at load time, keeps the fastest).
        ``public_key`` (Ed25519 PEM bytes / text / path): when given, the manifest must carry a valid signature
        by that key (``bundle/signature.py``), checked before anything else is read.
        ``engine_public_key``: the device key TensorRT engines built on the device are recorded with
        (``engines.sig``, ``bundle/engine_record.py``); with ``public_key`` set, engines are used only when it is.
        """
        return cls.from_options(DetectorOptions(bundle=Path(bundle_dir), backend=backend, precision=precision,
                                                search=search, threads=threads, public_key=public_key,
                                                engine_public_key=engine_public_key),
                                search_threads=search_threads, search_idle_spin_ms=search_idle_spin_ms,
                                **backend_options)

    @classmethod
    def from_options(cls, options: DetectorOptions, *, search_threads: int | None = None,
                     search_idle_spin_ms: float | None = None, **backend_options: Any) -> "Detector":
        """``open`` with its options as one value (the ``detector:`` section of the stream and PLC configs).
        ``search_threads``, ``search_idle_spin_ms`` and ``backend_options`` are the rarely needed tuning knobs
        ``open`` takes too."""
        if not isinstance(options, DetectorOptions):
            raise ConfigError("Detector.from_options takes a DetectorOptions", expected="DetectorOptions(bundle=...)",
                              got=type(options).__name__, fix="or call Detector.open(bundle, **options)")
        spin_s = _idle_spin_seconds(search_idle_spin_ms)
        if options.bundle is None:
            raise ConfigError("no bundle given", expected="a bundle folder written by tocoad-export",
                              got="detector.bundle: null", fix="set detector.bundle (or pass --bundle BUNDLE)")
        bundle, precision, threads = options.bundle, options.precision, options.threads
        if options.public_key is not None:
            manifest = read_signed_manifest(bundle, options.public_key)
        else:
            manifest = read_manifest(bundle)
        if precision not in manifest.models:
            raise BundleError(f"this bundle has no {precision} model", expected=f"one of {sorted(manifest.models)}",
                              got=precision, fix="export with --int8 for an INT8 model, or choose precision='fp32'")
        paths = verify_files(bundle, manifest)
        # engines built on the device are recorded beside the manifest (engines.json), not in it
        view = (engine_view(bundle, manifest, bundle_key=options.public_key, engine_key=options.engine_public_key,
                            strict=options.backend == "tensorrt")
                if options.backend in ("auto", "tensorrt") else manifest)
        backend_name = choose_backend(options.backend, view, precision)
        model_file = manifest.models[precision].file
        if backend_name == "tensorrt":
            from .backends.trt.runner import engine_for

            # the backend hashes the engine's bytes against the view before deserialising them
            model_path = safe_member_path(bundle, engine_for(view, precision).file)
        else:
            model_path = paths[model_file]
            check_external_data(model_path, bundle, set(manifest.files))
        be = create_backend(backend_name, model_path, threads=threads, manifest=view, **backend_options)
        be.load()
        try:
            bank = load_bank(paths[manifest.memory_bank.file], manifest)
            nn = None
            if options.search == "graph" and backend_name == "tensorrt":
                from .backends.trt.search_runner import graph_search_on_tensorrt

                # the bank's FP16 search engine when one is recorded for this device; else ONNX Runtime's graph
                nn = graph_search_on_tensorrt(bank, bundle, view, search_threads or threads,
                                              strict=options.backend == "tensorrt")
            if nn is None:
                nn = create_search(options.search, bank, manifest, paths, search_threads or threads, precision)
        except Exception:
            be.close()
            raise
        if spin_s is not None:
            nn.set_idle_spin(spin_s)
        log.info("opened bundle %s: backend=%s precision=%s search=%s entries=%d", bundle, backend_name, precision,
                 nn.name, manifest.memory_bank.entries)
        det = cls(bundle, manifest, be, nn, precision)
        _check_decision(manifest.decision, precision, nn.name, bundle)
        det.threads = {"backbone": threads, "search": search_threads or threads}
        if threads:
            from .threads import set_opencv_threads

            set_opencv_threads(1)
        det._public_key = options.public_key
        return det

    @property
    def model_id(self) -> str:
        return self.manifest.model_id

    def describe(self) -> dict[str, Any]:
        """Backend (with how it runs the model where that depends on the CPU), precision, search (with the ``search:
        auto`` measurement) and thread pools, for reports."""
        details = self.backend.describe()
        return {"model_id": self.model_id, "backend": self.backend.name, "precision": self.precision,
                **({"backend_details": details} if details else {}),
                "threads": self.thread_plan(), "search": self.search.describe()}

    def thread_plan(self) -> dict[str, Any]:
        from .threads import thread_plan

        plan = thread_plan(self.threads.get("backbone"), self.threads.get("search"), self.search.name)
        spin = self.search.idle_spin() if (self.threads.get("search") or 1) > 1 else None
        plan["search_idle_spin_ms"] = None if spin is None else round(spin * 1000.0, 3)
        return plan

    # -- inference --------------------------------------------------------------------------------
    def embed(self, frame: np.ndarray) -> Embedded:
        """Frame → patch embeddings ``[h·w, D]`` (first half of ``predict``; used by pipelining). A tiled bundle:
        the frame's tiles go through the backbone as one batch, giving ``[tiles·h·w, D]`` (tile-major)."""
        t0 = time.perf_counter()
        bgr = to_bgr_frame(frame)
        if self._tiling is None:
            batch = to_model_input(bgr, *self._input_hw)
        else:
            batch = cut_tiles(bgr, self._layout(bgr.shape[:2]))
        t1 = time.perf_counter()
        out = self._infer(batch)
        t2 = time.perf_counter()
        return out.reshape(-1, out.shape[-1]), bgr.shape[:2], {"preprocess": (t1 - t0) * 1e3,
                                                                "backbone": (t2 - t1) * 1e3}

    def _layout(self, frame_hw: tuple[int, int]) -> TileLayout:
        assert self._tiling is not None
        return tile_layout(frame_hw, self._input_hw, self._tiling)

    def _infer(self, batch: np.ndarray) -> Float32Array:
        """Model inputs ``[N, H, W, 3]`` → embeddings ``[N, h·w, D]``, in chunks the model takes (one by one for a
        batch-1 model, up to a TensorRT profile's largest batch, all at once for a dynamic batch axis)."""
        step = self.backend.max_batch() or len(batch)
        outs = [self.backend.infer(batch[s:s + step])[self._output_name] for s in range(0, len(batch), step)]
        out: Float32Array = outs[0] if len(outs) == 1 else np.concatenate(outs)
        return out

    def score(self, embeddings: Float32Array, frame_hw: tuple[int, int], timings: dict[str, float],
              frame_id: int | None = None) -> Prediction:
        """Patch embeddings → Prediction (second half of ``predict``)."""
        t0 = time.perf_counter()
        sc = self.manifest.scoring
        grid = self.manifest.features.grid
        layout = self._layout(frame_hw) if self._tiling is not None else None
        tiles = layout.count if layout is not None else 1
        if len(embeddings) != tiles * grid[0] * grid[1]:
            raise BundleError("the model's patch grid does not match the manifest", expected=f"{grid[0] * grid[1]} "
                              f"patches ({grid[0]}×{grid[1]}) per tile × {tiles} tile(s)",
                              got=f"{len(embeddings)} patches", fix="re-export the bundle")
        kernel = score_kernel(sc.image_score, sc.gaussian_sigma, self.manifest.features.stride)
        drawn: list[np.ndarray] = []
        job = None
        if kernel is not None and self.search.runs_beside:
            # the search's worker draws the map between its part of the first stage and its part of the re-check
            dist, raw = self.search.query_and_max_smoothed(
                embeddings, (tiles, grid[0], grid[1]), kernel,
                beside=lambda d: drawn.append(self._normalised_map(d, frame_hw, layout)))
        else:
            dist = self.search.query(embeddings)
            # with a second search thread the map is drawn on the map pool while the refined search re-checks
            pool = self._overlap_pool()
            job = pool.submit(self._normalised_map, dist, frame_hw, layout) if pool is not None else None
            # the refined search re-checks exactly: search time
            raw = (self.search.max_distance(embeddings, dist) if kernel is None else
                   self.search.max_smoothed(embeddings, dist, (tiles, grid[0], grid[1]), kernel))
        t1 = time.perf_counter()
        if not np.isfinite(raw):
            # Never a silent OK: a NaN score compares False with the threshold.
            raise BundleError("the model produced a non-finite anomaly score", expected="finite distances",
                              got=f"raw score {raw}", fix="the model or memory bank is damaged: re-export the bundle")
        amap = (drawn[0] if drawn else job.result() if job is not None else
                self._normalised_map(dist, frame_hw, layout))
        norm = (raw - sc.normalization_offset) / sc.normalization_scale
        t2 = time.perf_counter()
        timings = dict(timings, search=(t1 - t0) * 1e3, postprocess=(t2 - t1) * 1e3)
        timings["total"] = sum(timings.values())
        ng = bool(raw > sc.image_threshold)
        review = not ng and sc.review_threshold is not None and bool(raw > sc.review_threshold)
        return Prediction(score=float(norm), raw_score=raw, is_anomalous=ng, anomaly_map=amap, timings_ms=timings,
                          frame_id=frame_id, is_review=review)

    def _normalised_map(self, dist: Float32Array, frame_hw: tuple[int, int], layout: TileLayout | None) -> np.ndarray:
        sc = self.manifest.scoring
        if layout is not None:
            amap = tiled_anomaly_map(dist, self.manifest.features.grid, layout, sc.gaussian_sigma)
        else:
            amap = anomaly_map(dist, self.manifest.features.grid, self._input_hw, sc.gaussian_sigma, frame_hw)
        amap -= sc.normalization_offset
        amap /= sc.normalization_scale
        return amap

    def _overlap_pool(self) -> ThreadPoolExecutor | None:
        """One worker for the anomaly map, where the search has a second thread and re-checks its image score."""
        if self._map_pool is None and (self.threads.get("search") or 1) >= 2 and self.search.rechecks_image_score:
            self._map_pool = ThreadPoolExecutor(1, thread_name_prefix="tocoad-map")
        return self._map_pool

    def reload_decision(self) -> dict[str, Any]:
        """Take the thresholds (and review band) of the bundle's manifest as it is now, without reopening the model:
        what ``tocoad-threshold`` rewrote. The model, bank and files must be those already loaded; a signed bundle
        is read through its signature again. Returns the new decision record. Safe while another thread predicts:
        a prediction uses either the old or the new thresholds, never a mix."""
        self._check_open()
        new = (read_signed_manifest(self.bundle_dir, self._public_key) if self._public_key is not None
               else read_manifest(self.bundle_dir))
        for part in ("model_id", "input", "features", "models", "memory_bank", "files"):
            if getattr(new, part) != getattr(self.manifest, part):
                raise BundleError(f"the bundle's {part} changed since it was opened: only the decision section may "
                                  "change under a running detector", expected=f"the same {part}", got="a different one",
                                  fix="open the new bundle (HotSwapDetector swaps a whole bundle safely)")
        self.manifest = dataclasses.replace(self.manifest, scoring=new.scoring, decision=new.decision)
        _check_decision(new.decision, self.precision, self.search.name, self.bundle_dir)
        log.info("decision reloaded from %s: image threshold %.6g, review threshold %s", self.bundle_dir,
                 new.scoring.image_threshold, new.scoring.review_threshold)
        return dict(new.decision)

    def predict(self, frame: np.ndarray, frame_id: int | None = None) -> Prediction:
        """Score one frame: uint8 BGR ``[H, W, 3]`` (gray and BGRA are converted; see runtime/frames.py)."""
        self._check_open()
        emb, hw, timings = self.embed(frame)
        return self.score(emb, hw, timings, frame_id)

    def predict_batch(self, frames: Sequence[np.ndarray],
                      frame_ids: Sequence[int | None] | None = None) -> list[Prediction]:
        """Score several frames (e.g. the newest of each camera) in one backend call when the model has a batch axis
        (``tocoad-export bundle --dynamic-batch``; a TensorRT engine up to its profile's largest batch, in chunks
        beyond it); a batch-1 model runs them one by one. One result per frame, in order, each equal to ``predict``
        on that frame (up to float rounding between batch sizes). The stage times of a batched frame are those of
        the whole batch (what the frame waited for); search and postprocessing are its own."""
        self._check_open()
        if not isinstance(frames, (list, tuple)) or not frames:
            raise InputError("predict_batch takes a non-empty list of frames", expected="[frame, frame, …] (uint8 "
                             "[H, W, 3] arrays)", got="an empty list" if isinstance(frames, (list, tuple))
                             else type(frames).__name__, fix="pass list(frames); one frame goes to predict(frame)")
        ids = list(frame_ids) if frame_ids is not None else [None] * len(frames)
        if len(ids) != len(frames):
            raise InputError("predict_batch got a different number of frame ids than frames",
                             expected=f"{len(frames)} frame ids", got=f"{len(ids)}")
        # a batch-1 model: nothing to gain, and nothing to get wrong; a tiled bundle already batches each frame's tiles
        if self.backend.max_batch() == 1 or len(frames) == 1 or self._tiling is not None:
            return [self.predict(f, i) for f, i in zip(frames, ids)]
        t0 = time.perf_counter()
        bgrs = [to_bgr_frame(f) for f in frames]
        inputs = np.concatenate([to_model_input(b, *self._input_hw) for b in bgrs])
        t1 = time.perf_counter()
        embeddings = self._infer(inputs)
        timings = {"preprocess": (t1 - t0) * 1e3, "backbone": (time.perf_counter() - t1) * 1e3}
        return [self.score(e, b.shape[:2], timings, i) for e, b, i in zip(embeddings, bgrs, ids)]

    def predict_stream(self, frames: Iterable[np.ndarray], *, depth: int = DEFAULT_DEPTH,
                       errors: str = "raise") -> Iterator[Prediction | FrameFailure]:
        """Score frames in order, one result per frame. Backbone inference of frame t+1 overlaps search of
        frame t; the worker reads a frame from ``frames`` only when fewer than ``depth`` frames are in flight
        between the stages, so a frame waits for at most ``depth`` searches. A bad frame surfaces at its position:
        ``errors="raise"`` raises it there, ``errors="yield"`` yields a ``FrameFailure`` and goes on
        (see runtime/pipeline.py)."""
        from .pipeline import pipelined_predictions

        self._check_open()
        yield from pipelined_predictions(self, frames, depth=depth, errors=errors)

    def close(self) -> None:
        if not self._closed:
            self.backend.close()
            self.search.close()
            if self._map_pool is not None:
                self._map_pool.shutdown(wait=True)
            self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            from ..errors import TocoadError

            raise TocoadError("this Detector is closed", fix="open the bundle again with Detector.open")

    def __enter__(self) -> "Detector":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# Searches whose image score is an upper bound of the exact one (the index alone); every other search scores exactly.
APPROXIMATE_SEARCHES = ("hnsw", "projected")


def _check_decision(decision: dict[str, Any], precision: str, search: str, bundle: Path) -> None:
    """Warn when the thresholds were chosen on other scores than this detector computes: another model's (FP32 and
    INT8 score images slightly differently), or approximate index scores against exact ones or the reverse. A
    false-call rate promised on one is not promised on the other. (A threshold set at training, with no decision
    record, is not a promise and gets no warning.)"""
    if not isinstance(decision, dict):
        return
    policy = decision.get("policy", "normal-quantile")
    set_on = decision.get("precision")
    if isinstance(set_on, str) and set_on != precision:
        log.warning("the thresholds of %s were chosen on %s scores (policy %s) but this detector runs the %s model: "
                    "its false-call rate is not the one promised; choose them for it: tocoad-threshold %s --data DIR "
                    "--policy %s --precision %s ...", bundle, set_on, policy, precision, bundle, policy, precision)
    searched = decision.get("search")
    if isinstance(searched, str) and (searched in APPROXIMATE_SEARCHES) != (search in APPROXIMATE_SEARCHES):
        log.warning("the thresholds of %s were chosen on %s image scores (search %s) but this detector's search (%s) "
                    "scores %s: its false-call rate is not the one promised; open it with the search the thresholds "
                    "were chosen with, or choose them again with --search %s", bundle,
                    "approximate" if searched in APPROXIMATE_SEARCHES else "exact", searched, search,
                    "approximately" if search in APPROXIMATE_SEARCHES else "exactly", search)


# The most a search's workers may wait on their CPU between frames: beyond a second a line is idle, not between frames.
MAX_IDLE_SPIN_MS = 1000.0


def _idle_spin_seconds(ms: float | None) -> float | None:
    """``search_idle_spin_ms`` in seconds (None: the search's default); a ``ConfigError`` for anything but a number
    of milliseconds from 0 to ``MAX_IDLE_SPIN_MS``."""
    if ms is None:
        return None
    try:
        value = float(ms)
    except (TypeError, ValueError):
        value = float("nan")
    if isinstance(ms, bool) or not 0.0 <= value <= MAX_IDLE_SPIN_MS:
        raise ConfigError("search_idle_spin_ms out of range", expected=f"milliseconds from 0 to {MAX_IDLE_SPIN_MS:g} "
                          "(0: the search's workers block between frames at once)", got=repr(ms),
                          fix="leave it out for the default (50 ms)")
    return value / 1000.0
