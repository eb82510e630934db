"""The deployable runtime: no torch, no training or export code.

    from tocoad_edge.runtime import Detector
    with Detector.open("bundle/") as det:
        pred = det.predict(frame)   # pred.score, pred.decision, pred.anomaly_map, pred.timings_ms
    # the same from one value (the detector: section of the stream and PLC configs):
    det = Detector.from_options(DetectorOptions(bundle="bundle/", search="exact"))
"""
from .detector import Detector
from .options import DetectorOptions
from .prediction import Prediction, Predictor

__all__ = ["Detector", "DetectorOptions", "Prediction", "Predictor"]
