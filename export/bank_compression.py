"""Bank compression chosen by measurement at export (``tocoad-export bundle --bank full|auto|RATIOxDIMSxDTYPE``).

The search is most of a frame, and its cost is entries × dims. A candidate bank is
  * a smaller coreset: the first ``ratio × training patches`` centres of a greedy k-center run over the trained
    bank (greedy selection is incremental, so these are the centres a coreset at that ratio starts with);
  * projected to ``dims`` dimensions by PCA fitted on the trained bank (composed with any projection learnt at
    training and placed in the ONNX graph, so the runtime never sees the wide embedding);
  * stored as float16 or float32 (the runtime widens float16 once at load).

Each candidate is measured against the trained (full) bank on the accuracy gate's labelled set (held-out normal
images + G's synthetic anomalies, ``calibration/gate_data.py``): Spearman of the image scores against the full
bank's, synthetic image AUROC, and the error of the normalised anomaly map (threshold = 1.0 in those units).
Thresholds and normalisation are re-derived for every candidate from the held-out normal images, exactly as
training derives them (``train/thresholds.py``). Candidates are measured cheapest first (entries × dims, then
bytes); the first that passes the gate is kept. ``measure_all`` measures every candidate (the benchmark's table).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from tocoad_edge.errors import ConfigError

log = logging.getLogger("tocoad_edge.export")

DEFAULT_RATIOS = (0.05, 0.02, 0.01)
DEFAULT_DIMS = (256, 128, 64)
DTYPES = ("float16", "float32")
MIN_SPEARMAN = 0.99
MAX_AUROC_DROP = 0.005          # 0.5 AUROC points
MAP_IMAGES = 16                 # images whose full anomaly maps are compared (maps cost a blur each)


@dataclass(frozen=True)
class BankCandidate:
    ratio: float | None          # fraction of the training patches; None: every entry of the trained bank
    dims: int | None             # None: the trained embedding's dimension (no extra projection)
    dtype: str = "float32"

    @property
    def label(self) -> str:
        r = "trained" if self.ratio is None else f"{self.ratio * 100:g}%"
        return f"{r}x{self.dims or 'all'}x{self.dtype}"


@dataclass(frozen=True)
class Gate:
    min_spearman: float = MIN_SPEARMAN
    max_auroc_drop: float = MAX_AUROC_DROP


DEFAULT_GATE = Gate()


@dataclass
class CompressedBank:
    bank: np.ndarray                        # float32 (float16 storage already widened), what the runtime loads
    stored: np.ndarray                      # what coreset.npy holds
    projection: np.ndarray | None           # composed [D_raw, dims] for the ONNX graph; None: the trained one
    scoring: dict[str, float] | None        # re-derived thresholds; None: the trained ones
    candidate: BankCandidate
    report: dict[str, Any] = field(default_factory=dict)


def parse_bank_option(text: str) -> str | BankCandidate:
    """``full`` | ``auto`` | ``RATIOxDIMSxDTYPE`` (``2%x128xfloat16``, ``0.02x128xfloat16``; DIMS ``all`` keeps
    the trained dimension)."""
    t = str(text).strip().lower()
    if t in ("full", "auto"):
        return t
    fix = "give --bank full, --bank auto, or e.g. --bank 2%x128xfloat16"
    parts = t.split("x")
    if len(parts) != 3:
        raise ConfigError("--bank is not full, auto or RATIOxDIMSxDTYPE", expected="e.g. 2%x128xfloat16",
                          got=text, fix=fix)
    r, d, dt = parts
    try:
        ratio = float(r[:-1]) / 100 if r.endswith("%") else float(r)
        dims = None if d == "all" else int(d)
    except ValueError:
        raise ConfigError("--bank ratio or dims is not a number", expected="RATIO like 2% or 0.02, DIMS like 128",
                          got=text, fix=fix) from None
    if not 0 < ratio <= 1 or (dims is not None and dims < 1):
        raise ConfigError("--bank ratio or dims out of range", expected="0 < ratio <= 1 (or 100%), dims >= 1",
                          got=text, fix=fix)
    aliases = {"fp16": "float16", "f16": "float16", "fp32": "float32", "f32": "float32"}
    dtype = aliases.get(dt, dt)
    if dtype not in DTYPES:
        from tocoad_edge.errors import did_you_mean

        raise ConfigError(f"--bank dtype '{dt}' is unknown{did_you_mean(dt, DTYPES)}", expected=f"one of {DTYPES}",
                          got=text, fix=fix)
    return BankCandidate(ratio, dims, dtype)


def default_candidates(trained_ratio: float, dim: int) -> list[BankCandidate]:
    """Ratios below the trained one × dims below the trained one (plus all dims) × float16, cheapest first; the
    float32 twin of a float16 candidate is only worth measuring if float16 fails, which ``choose`` handles."""
    ratios = [None] + [r for r in DEFAULT_RATIOS if r < trained_ratio]
    dims = [None] + [d for d in DEFAULT_DIMS if d < dim]
    return [BankCandidate(r, d, "float16") for r in ratios for d in dims]


def _pca(bank: np.ndarray) -> np.ndarray:
    """Principal axes of the bank, [D, D] float32, columns by decreasing variance. Distances are translation
    invariant, so the projection needs no mean: ‖(q − μ)V − (b − μ)V‖ = ‖qV − bV‖."""
    centred = bank.astype(np.float64) - bank.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return np.ascontiguousarray(vt.T, dtype=np.float32)


class CandidateEvaluator:
    """Measures candidates against the trained bank on fixed embeddings (computed once, torch, at export)."""

    def __init__(self, bank: np.ndarray, gate_embeddings: np.ndarray, gate_labels: np.ndarray,
                 holdout_embeddings: np.ndarray, *, source_patches: int, grid: tuple[int, int],
                 input_hw: tuple[int, int], sigma: float, scoring_cfg, seed: int = 0, threads: int | None = None,
                 score_kernel: np.ndarray | None = None):
        self.bank = np.ascontiguousarray(bank, dtype=np.float32)
        self.gate, self.labels, self.holdout = gate_embeddings, np.asarray(gate_labels), holdout_embeddings
        self.source_patches, self.grid, self.input_hw, self.sigma = int(source_patches), grid, input_hw, sigma
        self.scoring_cfg, self.seed, self.threads = scoring_cfg, int(seed), threads
        self.score_kernel = score_kernel        # the run's image score (runtime/scoring.py); None: the largest patch
        self.axes = _pca(self.bank)
        self._order: np.ndarray | None = None
        self.reference = self._measure(self.bank, None)

    def rows(self, ratio: float | None) -> np.ndarray:
        if ratio is None:
            return np.arange(len(self.bank))
        count = max(1, min(len(self.bank), int(round(ratio * self.source_patches))))
        if self._order is None or len(self._order) < count:
            from tocoad_edge.memory.coreset import greedy_coreset

            self._order = greedy_coreset(self.bank, count=count, seed=self.seed, selection_order=True)
        return np.sort(self._order[:count])

    def build(self, c: BankCandidate) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(stored bank, loaded float32 bank, PCA axes [D, dims] or None)."""
        b = self.bank[self.rows(c.ratio)]
        axes = None
        if c.dims is not None and c.dims < self.bank.shape[1]:
            axes = np.ascontiguousarray(self.axes[:, :c.dims])
            b = b @ axes
        stored = np.ascontiguousarray(b, dtype=np.dtype(c.dtype))
        return stored, stored.astype(np.float32), axes

    def _measure(self, bank: np.ndarray, axes: np.ndarray | None) -> dict[str, Any]:
        from tocoad_edge.runtime.scoring import anomaly_map, image_scores
        from tocoad_edge.runtime.search.graph import GraphSearch
        from tocoad_edge.train.thresholds import calibrate

        search = GraphSearch(bank, threads=self.threads, expected_queries=int(np.prod(self.grid)))

        def dist(e: np.ndarray) -> np.ndarray:
            q = e if axes is None else e @ axes
            return search.query(q.reshape(-1, q.shape[-1])).reshape(e.shape[0], -1)

        hold = dist(self.holdout)
        th = calibrate(image_scores(hold, self.grid, self.score_kernel), hold, self.scoring_cfg)
        d = dist(self.gate)
        scores = image_scores(d, self.grid, self.score_kernel)
        pick = np.linspace(0, len(d) - 1, min(MAP_IMAGES, len(d))).round().astype(int)
        maps = np.stack([anomaly_map(d[i], self.grid, self.input_hw, self.sigma) for i in pick])
        maps = (maps - th.normalization_offset) / th.normalization_scale
        frame = self.gate[0] if axes is None else self.gate[0] @ axes
        search.query(frame)
        t0 = time.perf_counter()
        for _ in range(3):
            search.query(frame)
        ms = (time.perf_counter() - t0) / 3 * 1e3
        search.close()
        return {"scores": scores, "maps": maps, "thresholds": th, "search_ms": ms}

    def evaluate(self, c: BankCandidate, gate: Gate = DEFAULT_GATE) -> tuple[dict[str, Any], CompressedBank]:
        from tocoad_edge.eval.metrics import auroc, spearman

        stored, loaded, axes = self.build(c)
        unchanged = c.ratio is None and axes is None and c.dtype == "float32"
        m = self.reference if unchanged else self._measure(loaded, axes)
        ref = self.reference
        th = m["thresholds"]
        a_ref, a = auroc(self.labels, ref["scores"]), auroc(self.labels, m["scores"])
        row = {"candidate": c.label, "ratio": c.ratio, "dims": int(loaded.shape[1]), "dtype": c.dtype,
               "entries": int(len(loaded)), "bank_mb": round(stored.nbytes / 2**20, 3),
               "search_ms_1frame": round(m["search_ms"], 2),
               "spearman_vs_full": round(float(spearman(ref["scores"], m["scores"])), 5),
               "synthetic_auroc": round(float(a), 5), "synthetic_auroc_full": round(float(a_ref), 5),
               "auroc_drop": round(float(a_ref - a), 5),
               "map_mean_abs_error": round(float(np.mean(np.abs(m["maps"] - ref["maps"]))), 5),
               "map_p99_abs_error": round(float(np.quantile(np.abs(m["maps"] - ref["maps"]), 0.99)), 5),
               "image_threshold": th.image_threshold}
        row["passes"] = bool(row["spearman_vs_full"] >= gate.min_spearman and row["auroc_drop"] <= gate.max_auroc_drop)
        scoring = {"image_threshold": th.image_threshold, "pixel_threshold": th.pixel_threshold,
                   "normalization_offset": th.normalization_offset, "normalization_scale": th.normalization_scale}
        return row, CompressedBank(bank=loaded, stored=stored, projection=axes, scoring=scoring, candidate=c)


def cost(c: BankCandidate, entries: int, dim: int, source_patches: int) -> tuple[int, int]:
    """Search work (entries × dims), then bytes: the order candidates are tried in."""
    n = entries if c.ratio is None else max(1, min(entries, int(round(c.ratio * source_patches))))
    d = dim if c.dims is None else min(c.dims, dim)
    return n * d, n * d * (2 if c.dtype == "float16" else 4)


def choose(evaluator: CandidateEvaluator, candidates: list[BankCandidate], gate: Gate = DEFAULT_GATE,
           measure_all: bool = False) -> CompressedBank:
    """Measure candidates cheapest first; keep the first that passes ``gate`` (its float32 twin is tried when a
    float16 candidate fails only by its storage). None passes: the trained bank, unchanged."""
    n, dim = evaluator.bank.shape
    order = sorted(candidates, key=lambda c: cost(c, n, dim, evaluator.source_patches))
    rows, chosen = [], None
    for c in order:
        row, result = evaluator.evaluate(c, gate)
        rows.append(row)
        log.info("bank candidate %s: %d × %d, %.2f MB, Spearman %.4f, AUROC drop %+.4f, map error %.4f → %s",
                 c.label, row["entries"], row["dims"], row["bank_mb"], row["spearman_vs_full"], row["auroc_drop"],
                 row["map_mean_abs_error"], "pass" if row["passes"] else "fail")
        if row["passes"] and chosen is None:
            chosen = result
            if not measure_all:
                break
    if chosen is None:
        _, chosen = evaluator.evaluate(BankCandidate(None, None, "float32"), gate)
        chosen.scoring = None
        reason = "no candidate passed the gate: the trained bank is kept"
    else:
        reason = "cheapest candidate (entries × dims, then bytes) that passed the gate"
    chosen.report = {"mode": "auto", "chosen": chosen.candidate.label, "reason": reason,
                     "gate": {"min_spearman": gate.min_spearman, "max_auroc_drop": gate.max_auroc_drop},
                     "reference": {"entries": int(n), "dims": int(dim), "dtype": "float32"},
                     "candidates": rows, "measured_on": {"gate_images": int(len(evaluator.labels)),
                                                         "anomalous": int(np.sum(evaluator.labels)),
                                                         "holdout_images": int(len(evaluator.holdout)),
                                                         "map_images": int(min(MAP_IMAGES, len(evaluator.labels)))}}
    return chosen


def compress_run_bank(run, cfg, meta: dict[str, Any], embedder, bank: np.ndarray, option: str | BankCandidate,
                      gate: Gate = DEFAULT_GATE, measure_all: bool = False) -> tuple[CompressedBank, Any]:
    """The export's step: measure and choose (``auto``) or build the one given candidate; returns the compressed
    bank and the embedder whose ONNX graph outputs the compressed embedding (the trained one when unprojected)."""
    from types import SimpleNamespace

    from tocoad_edge.calibration.gate_data import gate_set_for_export
    from tocoad_edge.data.run_images import holdout_images
    from tocoad_edge.runtime.scoring import score_kernel
    from tocoad_edge.train.embedder_factory import make_embedder

    from .parity import _torch_embeddings

    size = int(meta["image_size"])
    gate_set = gate_set_for_export(SimpleNamespace(meta=meta, cfg=cfg))
    holdout = holdout_images(meta, size)
    source = int((meta.get("memory_bank") or {}).get("source_patches") or len(bank))
    evaluator = CandidateEvaluator(bank, _torch_embeddings(embedder, gate_set.images), gate_set.labels,
                                   _torch_embeddings(embedder, holdout), source_patches=source,
                                   grid=tuple(meta["feature"]["grid"]), input_hw=(size, size),
                                   sigma=float(meta["gaussian_sigma"]), scoring_cfg=cfg.scoring, seed=int(cfg.seed),
                                   score_kernel=score_kernel(meta.get("image_score", "max"),
                                                             float(meta["gaussian_sigma"]),
                                                             int(meta["feature"]["stride"])))
    if option == "auto":
        trained_ratio = float((meta.get("memory_bank") or {}).get("ratio") or len(bank) / max(source, 1))
        result = choose(evaluator, default_candidates(trained_ratio, bank.shape[1]), gate, measure_all)
    else:
        row, result = evaluator.evaluate(option, gate)
        result.report = {"mode": "given", "chosen": option.label, "candidates": [row],
                         "gate": {"min_spearman": gate.min_spearman, "max_auroc_drop": gate.max_auroc_drop},
                         "reason": "given by --bank (the gate is reported, not enforced)"}
    projection = compose_projection(run.projection(), result.projection)
    if result.projection is not None:
        embedder = make_embedder(cfg, embedder.backbone, projection)
    result.projection = projection if result.projection is not None else None
    return result, embedder


def compose_projection(trained: np.ndarray | None, axes: np.ndarray | None) -> np.ndarray | None:
    """The projection the ONNX graph applies: the trained one followed by the PCA axes."""
    if axes is None:
        return trained
    return axes if trained is None else np.ascontiguousarray(trained @ axes, dtype=np.float32)


def with_scoring(scoring, values: dict[str, float] | None):
    """``ScoringSpec`` with re-derived thresholds (unchanged for None)."""
    return scoring if values is None else replace(scoring, **values)


def compressed_features(features, compressed: CompressedBank):
    """``FeatureSpec`` of the compressed embedding: its dimension, and ``pca`` where the export projected it."""
    if compressed.projection is None:
        return features
    return replace(features, dim=int(compressed.bank.shape[1]), projection="pca")


def record_choice(staging, search_info: dict[str, Any], compressed: CompressedBank) -> dict[str, Any]:
    """The measured table and the choice: into the manifest's ``search.bank`` and ``parity.json``'s
    ``bank_compression``."""
    import json

    from .parity import PARITY_JSON

    path = staging / PARITY_JSON
    if path.is_file():
        report = json.loads(path.read_text(encoding="utf-8"))
        report["bank_compression"] = compressed.report
        path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return {**search_info, "bank": compressed.report}
