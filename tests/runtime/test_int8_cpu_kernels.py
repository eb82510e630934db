"""INT8 on ONNX Runtime's CPU provider: the fused u8 × s8 kernels saturate on x86 without VNNI, so the runtime runs a
bundle's Q/DQ model as written there (the scores the export's INT8 gate measured)."""
import numpy as np
import pytest

from tocoad_edge.errors import ConfigError
from tocoad_edge.runtime.backends.cpu_int8 import cpu_flags, int8_sums_saturate
from tocoad_edge.runtime.backends.onnxrt import OnnxRuntimeBackend

CHANNELS = 8


def saturating_qdq_conv(path):
    """x (float, 1 → u8 255) ⊛ w (1 → s8 127), a 1 × 1 convolution over 8 channels: each pair of products sums to
    64,770, past the int16 range a fused AVX2 kernel keeps its pair sums in. The true output is 8.0."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    arrays = {"xs": np.array(1 / 255, np.float32), "xz": np.array(0, np.uint8),
              "wq": np.full((4, CHANNELS, 1, 1), 127, np.int8), "ws": np.full(4, 1 / 127, np.float32),
              "wz": np.zeros(4, np.int8), "ys": np.array(8 / 255, np.float32), "yz": np.array(0, np.uint8)}
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=0),
             helper.make_node("Conv", ["xd", "wd"], ["c"]),
             helper.make_node("QuantizeLinear", ["c", "ys", "yz"], ["cq"]),
             helper.make_node("DequantizeLinear", ["cq", "ys", "yz"], ["y"])]
    graph = helper.make_graph(nodes, "saturating", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                  [1, CHANNELS, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 4, 4])],
                              [numpy_helper.from_array(a, n) for n, a in arrays.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def run(path, **options):
    be = OnnxRuntimeBackend(path, threads=1, **options).load()
    try:
        return be.infer(np.ones((1, CHANNELS, 4, 4), np.float32))["y"], be.qdq_as_written
    finally:
        be.close()


def test_as_written_is_exact_and_fused_saturates_where_the_cpu_check_says(tmp_path, caplog):
    model = saturating_qdq_conv(tmp_path / "sat.onnx")
    with caplog.at_level("INFO", logger="tocoad_edge.runtime.backends.onnxrt"):
        written, flag = run(model, qdq="as-written")
    assert flag is True and np.allclose(written, 8.0)
    assert "sat.onnx: Q/DQ pairs run as written (qdq='as-written')" in caplog.text
    fused, flag = run(model, qdq="fused")
    assert flag is False
    if int8_sums_saturate():
        assert fused.max() < 6.0        # ONNX Runtime's u8s8 kernel on this CPU: about half of the true sum
    else:
        assert np.allclose(fused, 8.0)


def test_auto_leaves_a_model_that_is_not_the_bundles_int8_model_to_onnx_runtime(tmp_path):
    model = saturating_qdq_conv(tmp_path / "sat.onnx")
    _, flag = run(model)                # no manifest: nothing says this file is an INT8 bundle model
    assert flag is False


def test_an_unknown_qdq_mode_is_refused_with_the_choices(tmp_path):
    model = saturating_qdq_conv(tmp_path / "sat.onnx")
    with pytest.raises(ConfigError) as err:
        run(model, qdq="fast")
    assert "as-written" in str(err.value) and "'fast'" in str(err.value)


def test_saturation_is_an_x86_without_vnni_matter():
    assert int8_sums_saturate("x86_64", {"fpu", "avx2", "fma"}) is True
    assert int8_sums_saturate("x86_64", {"avx2", "avx512f", "avx512bw"}) is True     # Skylake-SP: no VNNI
    assert int8_sums_saturate("x86_64", {"avx2", "avx512f", "avx512_vnni"}) is False
    assert int8_sums_saturate("AMD64", {"avx2", "avx_vnni"}) is False                 # Alder Lake's 256-bit VNNI
    assert int8_sums_saturate("aarch64", set()) is False                              # 32-bit dot products


def test_cpu_flags_reads_the_first_cpus_flags(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu avx2 fma\n\n"
                    "processor\t: 1\nflags\t\t: fpu avx2 fma avx512_vnni\n")
    assert cpu_flags(info) == {"fpu", "avx2", "fma"}
    assert cpu_flags(tmp_path / "missing") is None
    (tmp_path / "noflags").write_text("processor\t: 0\n")
    assert cpu_flags(tmp_path / "noflags") is None
