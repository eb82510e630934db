"""The run folder ``tocoad-train`` writes and ``tocoad-export`` reads. Data only:

    RUN/config.yaml            resolved config (every key, defaults filled in)
    RUN/backbone.safetensors   backbone weights used for the memory bank (fine-tuned or frozen)
    RUN/memory_bank.npy        coreset float32 [M, D] (allow_pickle=False)
    RUN/projection.npy         optional [D_raw, D] projection inside the graph
    RUN/run.json               metadata: feature layout, thresholds, timings, dataset, versions
    RUN/train.log              the log
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BundleError

CONFIG_NAME = "config.yaml"
WEIGHTS_NAME = "backbone.safetensors"
BANK_NAME = "memory_bank.npy"
PROJECTION_NAME = "projection.npy"
META_NAME = "run.json"
LOG_NAME = "train.log"


def save_npy(path: Path, array: np.ndarray) -> None:
    """Write atomically (temp file + rename) so a crash never leaves a partial file."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.save(f, np.ascontiguousarray(array), allow_pickle=False)
    tmp.replace(path)


def load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise BundleError(f"cannot load {path}", expected="a numeric .npy array (no pickles)", got=str(exc)) from None


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)


@dataclass(frozen=True)
class RunFolder:
    path: Path

    def file(self, name: str) -> Path:
        return self.path / name

    def meta(self) -> dict[str, Any]:
        p = self.file(META_NAME)
        if not p.is_file():
            raise BundleError(f"{self.path} is not a finished training run (no {META_NAME})",
                              expected="the --out folder of a completed tocoad-train",
                              fix="run tocoad-train first, or point to its output folder")
        return json.loads(p.read_text(encoding="utf-8"))

    def memory_bank(self) -> np.ndarray:
        return load_npy(self.file(BANK_NAME))

    def projection(self) -> np.ndarray | None:
        p = self.file(PROJECTION_NAME)
        return load_npy(p) if p.is_file() else None
