"""What ``Detector.predict`` returns."""
from __future__ import annotations

from dataclasses import dataclass, field

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
