"""``tocoad-train --select``: hold out normal images, train every candidate on the rest, score each on G's
synthetic anomalies over the held-out images, pick by the rule (``rule.py``), then train the pick on all images.

Run folder: the pick's run as ``tocoad-train`` writes it, plus

    RUN/select/candidates.json            every candidate: overrides, synthetic metrics, train seconds, chosen
    RUN/select/report.md                  the same as a short table, the rule and the reason for the pick
    RUN/select/candidates/<name>/         each candidate's own run folder (trained without the held-out images)

By default the final run is **retrained** on all training images rather than reusing the candidate's run: the
selection judged a configuration, and the memory bank and the threshold should see every normal image the user
gave (the held-out fifth would otherwise be missing from the bank). It costs one more training of the pick;
``final: reuse`` copies the pick's candidate run instead (no second training, a bank without the held-out images).
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ...data import load_dataset, load_resized
from ...errors import DataError
from ...synth import AnomalyGenerator
from ...synth.labelled_set import SyntheticSet, build_synthetic_set
from ..config import TrainConfig
from ..run_folder import META_NAME, write_json
from ..trainer import train
from .config import BASELINE, MIN_HELDOUT, MIN_TRAIN, Candidate, SelectConfig, resolve_candidates
from .report import write_report
from .rule import SCORE_KEY, Scored, pick, rule_text
from .scoring import score_run

log = logging.getLogger("tocoad_edge.train.select")
SELECT_DIR = "select"
CANDIDATES_JSON = "candidates.json"


def split_for_selection(names: list[str], fraction: float, seed: int) -> list[str]:
    """The held-out normal images (sorted names): ``round(fraction · n)`` drawn with a fixed seed; refuses when
    fewer than ``MIN_HELDOUT`` would be held out or fewer than ``MIN_TRAIN`` would remain to train on."""
    n = len(names)
    k = int(round(fraction * n))
    if k < MIN_HELDOUT or n - k < MIN_TRAIN:
        need = max(MIN_TRAIN + MIN_HELDOUT, int(np.ceil(MIN_HELDOUT / fraction)))
        raise DataError("too few normal training images for --select",
                        expected=f"at least {MIN_HELDOUT} held out ({100 * fraction:.0f} % of train/good) and "
                                 f"{MIN_TRAIN} left to train each candidate: about {need} images",
                        got=f"{n} images: {k} held out, {n - k} to train on",
                        fix="add normal images, raise holdout_fraction in the candidates file, or train without "
                            "--select")
    rng = np.random.default_rng([int(seed), 5])
    return sorted(names[i] for i in rng.choice(n, k, replace=False))


def selection_set(base: TrainConfig, normals: np.ndarray, per_image: int) -> SyntheticSet:
    """G (the run's ``synth`` section) on the held-out normals, with its rotations off: each anomaly then differs
    from its normal image only inside its mask, so a candidate is not rewarded for flagging a rotated part."""
    synth = replace(base.synth, rotate90=False, rotation_degrees=0.0)
    gen = AnomalyGenerator.from_config(synth, list(normals), base.seed)
    return build_synthetic_set(gen, normals, per_image)


def run_selection(data_dir: str | Path, out_dir: str | Path, base: TrainConfig, select: SelectConfig, *,
                  show_progress: bool = True) -> Path:
    """Select, write ``RUN/select/`` and train the pick into ``RUN``. Returns the run folder."""
    out = Path(out_dir)
    candidates = resolve_candidates(base, select)
    paths = list(load_dataset(data_dir, extensions=base.data.extensions).train)
    if base.data.max_train_images is not None:
        paths = paths[:base.data.max_train_images]
    held = split_for_selection([p.name for p in paths], select.holdout_fraction, base.seed)
    held_set = set(held)
    ref_size = max(c.config.data.image_size for c in candidates)
    normals = load_resized([p for p in paths if p.name in held_set], ref_size)
    synthetic = selection_set(base, normals, select.synthetic_per_image)
    log.info("select: %d candidates (%s); %d held-out normal images + %d synthetic anomalies at %d px",
             len(candidates), ", ".join(c.name for c in candidates), len(normals), int(synthetic.labels.sum()),
             ref_size)
    results = [_train_and_score(c, data_dir, out / SELECT_DIR / "candidates" / c.name, held, synthetic, show_progress)
               for c in candidates]
    chosen = pick([Scored(r["name"], r["metrics"][SCORE_KEY], r["train_seconds"]) for r in results],
                  select.margin)
    if select.final == "retrain":
        final = (f"retrained with the chosen config on all {len(paths)} training images (the held-out images "
                 f"included), so the memory bank and threshold see every normal image")
    else:
        final = (f"reused: the chosen candidate's run, trained without the {len(held)} held-out images "
                 f"(final: reuse, no second training)")
    record = {"rule": rule_text(select.margin), "margin": select.margin, "score": SCORE_KEY,
              "chosen": chosen.name, "reason": chosen.reason, "final": final,
              "holdout": {"fraction": select.holdout_fraction, "seed": base.seed, "count": len(held), "images": held},
              "synthetic": {"per_image": select.synthetic_per_image, "generator": f"synth.G ({base.synth.method})",
                            "rotations": "off", "reference_size": ref_size, "normals": len(normals),
                            "anomalies": int(synthetic.labels.sum())},
              "candidates": [{**r, "chosen": r["name"] == chosen.name} for r in results]}
    (out / SELECT_DIR).mkdir(parents=True, exist_ok=True)
    write_json(out / SELECT_DIR / CANDIDATES_JSON, record)
    write_report(out / SELECT_DIR / "report.md", record)
    log.info("select: chose '%s': %s", chosen.name, chosen.reason)
    if select.final == "retrain":
        config = next(c.config for c in candidates if c.name == chosen.name)
        run = train(data_dir, out, config, show_progress=show_progress)
    else:
        run = _reuse(out / SELECT_DIR / "candidates" / chosen.name, out)
    _record_in_run_meta(run, record)
    return run


def _train_and_score(candidate: Candidate, data_dir: str | Path, run_dir: Path, held: list[str],
                     synthetic: SyntheticSet, show_progress: bool) -> dict:
    log.info("select: training candidate '%s' (overrides %s)", candidate.name, json.dumps(candidate.overrides))
    t0 = time.perf_counter()
    train(data_dir, run_dir, candidate.config, show_progress=show_progress, exclude=held)
    seconds = time.perf_counter() - t0
    metrics = score_run(run_dir, synthetic).to_dict()
    log.info("select: '%s' synthetic recall at FPR <= 5 %% %.3f, <= 1 %% %.3f, image AUROC %.4f, pixel AUROC "
             "%.4f (%.0f s training)", candidate.name, metrics["recall_at_fpr_5"], metrics["recall_at_fpr_1"],
             metrics["image_auroc"], metrics["pixel_auroc"], seconds)
    return {"name": candidate.name, "overrides": candidate.overrides, "stages": candidate.config.stages,
            "is_baseline": candidate.name == BASELINE, "metrics": metrics, "train_seconds": round(seconds, 2),
            "run": f"{SELECT_DIR}/candidates/{candidate.name}"}


def _reuse(candidate_run: Path, out: Path) -> Path:
    """Copy the candidate's run files (not its stage checkpoints) into the final run folder."""
    for f in candidate_run.iterdir():
        if f.is_file():
            shutil.copy2(f, out / f.name)
    return out


def _record_in_run_meta(run: Path, record: dict) -> None:
    meta = json.loads((run / META_NAME).read_text(encoding="utf-8"))
    meta["selection"] = {"selected": record["chosen"], "from": [c["name"] for c in record["candidates"]],
                         "reason": record["reason"], "rule": record["rule"], "final": record["final"],
                         "candidates": f"{SELECT_DIR}/{CANDIDATES_JSON}"}
    write_json(run / META_NAME, meta)
