"""FP16 ONNX for strongly typed TensorRT 11: same interface, float16 inside, close to FP32 on ONNX Runtime."""
import numpy as np
import pytest

from int8_helpers import random_images, run_model, tiny_conv_model

onnx = pytest.importorskip("onnx")


def test_fp16_conversion_keeps_the_interface_and_the_values():
    from tocoad_edge.runtime.backends.trt.fp16_onnx import convert_to_fp16

    model = tiny_conv_model()
    half = convert_to_fp16(model)
    onnx.checker.check_model(half, full_check=True)
    assert half.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert half.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert {i.data_type for i in half.graph.initializer if i.name.startswith("w")} == {onnx.TensorProto.FLOAT16}
    cast = next(n for n in half.graph.node if n.name == "cast")
    assert cast.attribute[0].i == onnx.TensorProto.FLOAT16
    images = random_images(2)
    ref, got = run_model(model, images), run_model(half, images)
    assert got.dtype == np.float32
    assert np.abs(got - ref).max() <= 1e-2 * np.abs(ref).max()
