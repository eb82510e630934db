"""What ``Detector.predict`` returns, and ``Predictor``: what the stream loop and the PLC gateway need of a
detector (``Detector``, ``HotSwapDetector`` and the simulated or test detectors all fit)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Prediction:
    score: float                    # normalised image score; > 1.0 means NG
    raw_score: float                # max nearest-neighbour L2 distance
    is_anomalous: bool
    anomaly_map: np.ndarray         # float32 [H, W] at frame resolution, normalised like score
    timings_ms: dict[str, float] = field(default_factory=dict)
    frame_id: int | None = None
    is_review: bool = False         # in the review band: not NG, but above the review threshold

    @property
    def decision(self) -> str:
        """"NG" above the image threshold, "REVIEW" in the review band below it (when the bundle has one), else
        "OK"."""
        return "NG" if self.is_anomalous else "REVIEW" if self.is_review else "OK"


@runtime_checkable
class Predictor(Protocol):
    """One frame in, one ``Prediction`` out. ``run_stream(pipelined=True)`` also uses ``predict_stream`` where a
    detector has it (``Detector`` and ``HotSwapDetector`` do); nothing else is asked of a detector."""

    def predict(self, frame: np.ndarray) -> Prediction: ...
