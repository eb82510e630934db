"""The candidates file of ``tocoad-train --select``: YAML into a frozen dataclass, each candidate a named set of
config overrides merged over the run's config and checked as strictly as a config file.

    holdout_fraction: 0.2      # share of train/good held out (never trained on) to score the candidates
    synthetic_per_image: 3     # G's anomalies per held-out normal image
    margin: 0.02               # a candidate must beat the baseline's synthetic recall at FPR <= 5% by this much
    final: retrain             # retrain the pick on all images, or reuse its candidate run (no second training)
    candidates:
      full: {}                 # today's default (full ToCoAD)
      lite1:
        backbone: {name: efficientnet_lite1, layers: [blocks.6, blocks.14]}

``baseline`` (frozen ImageNet backbone, ``stages: baseline``) is always a candidate, listed or not.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ...errors import ConfigError
from ...typed_config import from_dict, load_yaml, require, to_dict
from ..config import TrainConfig

BASELINE = "baseline"
MIN_HELDOUT = 5     # normal images the synthetic scores are computed on (fewer: recall at FPR <= 5% is 0 or 1)
MIN_TRAIN = 10      # normal images left to train each candidate on
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def default_candidates() -> dict[str, dict[str, Any]]:
    return {BASELINE: {"stages": "baseline"}, "full": {"stages": "full"}}


@dataclass(frozen=True)
class SelectConfig:
    holdout_fraction: float = 0.2
    synthetic_per_image: int = 3
    margin: float = 0.02
    final: Literal["retrain", "reuse"] = "retrain"
    candidates: dict[str, dict[str, Any]] = field(default_factory=default_candidates)

    def __post_init__(self) -> None:
        require(0.0 < self.holdout_fraction < 1.0, "holdout_fraction", "a number in (0, 1)", self.holdout_fraction)
        require(1 <= self.synthetic_per_image <= 32, "synthetic_per_image", "an integer in [1, 32]",
                self.synthetic_per_image)
        require(0.0 <= self.margin < 1.0, "margin", "a number in [0, 1)", self.margin)
        for name in self.candidates:
            require(bool(_NAME.match(name)), "candidates", "names of letters, digits, '_', '.', '-' (a folder name)",
                    name)


@dataclass(frozen=True)
class Candidate:
    name: str
    overrides: dict[str, Any]
    config: TrainConfig


def load_select_config(path: str | Path | None) -> SelectConfig:
    """Defaults (baseline + full), or the candidates file at ``path``, strictly (unknown keys: did-you-mean)."""
    if path is None:
        return SelectConfig()
    data = load_yaml(path)
    if isinstance(data, dict) and data.get("candidates") is None and "candidates" in data:
        raise ConfigError(f"the candidates file {path} lists no candidates", fix="add candidates: {name: overrides}")
    return from_dict(SelectConfig, data)


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def resolve_candidates(base: TrainConfig, select: SelectConfig) -> list[Candidate]:
    """The baseline first (added when not listed), then the listed candidates, each a full checked config."""
    listed = dict(select.candidates)
    baseline = dict(listed.pop(BASELINE, {}))
    if baseline.get("stages", BASELINE) != BASELINE:
        raise ConfigError("candidate 'baseline' must keep the frozen ImageNet backbone",
                          expected="stages: baseline (or no stages key)", got=f"stages: {baseline['stages']!r}",
                          fix="give the fine-tuned variant another name; 'baseline' is the reference it must beat")
    baseline["stages"] = BASELINE
    base_dict = to_dict(base)
    out = []
    for name, overrides in [(BASELINE, baseline), *listed.items()]:
        try:
            cfg = from_dict(TrainConfig, _merge(base_dict, overrides))
        except ConfigError as exc:
            raise ConfigError(f"candidate '{name}': {exc.message}", expected=exc.expected, got=exc.got,
                              fix=exc.fix) from None
        if cfg.data.tiling.enabled:
            # the synthetic anomalies are drawn on held-out normals resized to one input size, where a tiled
            # model cuts no tiles: its score there would say nothing about its tiles at full resolution
            raise ConfigError(f"candidate '{name}' is tiled, which --select cannot score yet",
                              expected="data.tiling.enabled: false in the base config and every candidate",
                              got="data.tiling.enabled: true",
                              fix="compare tiled and untiled models with tocoad-eval on labelled images, or train "
                                  "the tiled model without --select")
        out.append(Candidate(name, overrides, cfg))
    return out
