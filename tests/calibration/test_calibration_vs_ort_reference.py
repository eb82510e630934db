"""Our Q/DQ model against ONNX Runtime's own static quantizer (used here as a reference only, never by the
product): same scheme (QDQ, per-channel symmetric INT8 weights, symmetric INT8 activations, MinMax ranges) on the
same calibration images must give nearly the same outputs."""
import numpy as np
import pytest

from int8_helpers import random_images, run_model, tiny_conv_model
from tocoad_edge.calibration.activations import collect_histograms
from tocoad_edge.calibration.qdq import build_qdq_model, find_quantizable_layers
from tocoad_edge.calibration.ranges import compute_amax, scale_from_amax

onnx = pytest.importorskip("onnx")
ortq = pytest.importorskip("onnxruntime.quantization")


class _Reader(ortq.CalibrationDataReader):
    def __init__(self, images):
        self.items = iter([{"image": images[i:i + 1]} for i in range(len(images))])

    def get_next(self):
        return next(self.items, None)


def test_matches_onnxruntime_quantize_static(tmp_path):
    model = tiny_conv_model()
    fp32 = tmp_path / "fp32.onnx"
    onnx.save(model, str(fp32))
    calib, test = random_images(16, seed=5), random_images(4, seed=6)
    layers = find_quantizable_layers(model)
    hists = collect_histograms(fp32, [ly.activation for ly in layers], calib)
    ours = build_qdq_model(model, {t: scale_from_amax(compute_amax("max", h.hist, h.edges)) for t, h in hists.items()})
    ref_path = tmp_path / "ort.onnx"
    ortq.quantize_static(str(fp32), str(ref_path), _Reader(calib), quant_format=ortq.QuantFormat.QDQ,
                         per_channel=True, activation_type=ortq.QuantType.QInt8, weight_type=ortq.QuantType.QInt8,
                         op_types_to_quantize=["Conv", "MatMul"], calibrate_method=ortq.CalibrationMethod.MinMax,
                         extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
    f, a, b = run_model(model, test), run_model(ours, test), run_model(onnx.load(str(ref_path)), test)
    err_ours = np.linalg.norm(a - f) / np.linalg.norm(f)
    err_ref = np.linalg.norm(b - f) / np.linalg.norm(f)
    assert err_ours < 0.1 and err_ref < 0.1
    assert np.linalg.norm(a - b) / np.linalg.norm(f) < 0.1
    assert err_ours <= 1.5 * err_ref + 1e-3     # ours is not worse than the reference
