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

    @property
    def decision(self) -> str:
        return "NG" if self.is_anomalous else "OK"
