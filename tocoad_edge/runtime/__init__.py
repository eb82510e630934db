"""The deployable runtime: no torch, no training or export code.

    from tocoad_edge.runtime import Detector
    with Detector.open("bundle/") as det:
        pred = det.predict(frame)   # pred.score, pred.decision, pred.anomaly_map, pred.timings_ms
"""
from .detector import Detector
from .prediction import Prediction

__all__ = ["Detector", "Prediction"]
