"""TensorRT calibration cache format."""
import re
import struct

import pytest

from tocoad_edge.runtime.backends.trt.calib_cache import (hex_to_scale, read_cache, scale_to_hex, trt_version_number,
                                               write_cache)
from tocoad_edge.errors import BundleError


def test_version_numbers_follow_nv_tensorrt_version():
    assert trt_version_number((8, 6, 1)) == 8601
    assert trt_version_number((10, 3, 0)) == 100300
    assert trt_version_number((11, 4, 0, 106)) == 110400


def test_scale_hex_is_big_endian_float32():
    assert scale_to_hex(1.0) == "3f800000"
    assert scale_to_hex(0.5) == struct.pack(">f", 0.5).hex() == "3f000000"
    assert hex_to_scale("3d418306") == pytest.approx(struct.unpack(">f", bytes.fromhex("3d418306"))[0])


def test_write_and_read_round_trip(tmp_path):
    scales = {"/_conv_stem/Pad_output_0": 0.00577, "/_blocks.0/act/Clip_output_0": 6.0 / 127}
    path = write_cache(tmp_path / "calibration.cache", scales, "entropy", trt_version=(8, 6, 1))
    lines = path.read_text().splitlines()
    assert lines[0] == "TRT-8601-EntropyCalibration2"
    assert all(re.fullmatch(r".+: [0-9a-f]{8}", line) for line in lines[1:])
    num, algo, got = read_cache(path)
    assert (num, algo) == (8601, "EntropyCalibration2")
    assert got.keys() == scales.keys()
    for k in scales:
        assert got[k] == pytest.approx(scales[k], rel=1e-6)
    assert read_cache(write_cache(tmp_path / "m.cache", scales, "max"))[1] == "MinMaxCalibration"


def test_malformed_cache_is_refused(tmp_path):
    p = tmp_path / "bad.cache"
    p.write_text("hello\n")
    with pytest.raises(BundleError):
        read_cache(p)
    p.write_text("TRT-8601-EntropyCalibration2\nx: nothex!\n")
    with pytest.raises(BundleError, match="line 2"):
        read_cache(p)


def test_dla_engines_are_refused_with_the_reason(tmp_path):
    """The DLA path (implicit INT8 replaying this cache) is off until a device can test it: a clear error, before
    anything is read or built."""
    from tocoad_edge.errors import ExportError
    from tocoad_edge.runtime.backends.trt.build import build_engine_into_bundle

    with pytest.raises(ExportError, match="DLA") as info:
        build_engine_into_bundle(tmp_path, "int8", dla_core=0)
    assert "omit --dla-core" in str(info.value)
