"""TensorRT version handling: parsed versions and the branch chosen for 8.6 / 10 / 11.

The ``_Rec*`` objects below record which TensorRT calls our compat functions make; they test the branch
selection only (the calls' existence in the real bindings is test_trt_api_names.py's job).
"""
from types import SimpleNamespace

import pytest

from tocoad_edge.runtime.backends.trt.compat import TrtApi, parse_version, set_precision_flags


def test_parse_version_compares_numerically():
    assert parse_version("10.3.0.26") == (10, 3, 0, 26)
    assert parse_version("8.6.1.post1") == (8, 6, 1)
    assert parse_version("10.10.0") > parse_version("10.9.0")       # a string compare would get this wrong
    assert parse_version("11.0") > parse_version("10.13.3.9")
    with pytest.raises(ValueError):
        parse_version("abc")


def test_api_flags_per_major_version():
    v86, v10, v11 = TrtApi((8, 6, 1)), TrtApi((10, 3, 0)), TrtApi((11, 4, 0))
    assert v86.needs_explicit_batch_flag and not v10.needs_explicit_batch_flag
    assert not v10.strongly_typed_only and v11.strongly_typed_only
    assert v86.has_implicit_int8 and v10.has_implicit_int8 and not v11.has_implicit_int8
    assert all(a.has_execute_async_v3 and a.supported for a in (v86, v10, v11))
    assert not TrtApi((8, 5, 3)).supported


_TRT = SimpleNamespace(BuilderFlag=SimpleNamespace(FP16="FP16", INT8="INT8"))


class _RecConfig:
    def __init__(self):
        self.flags = []

    def set_flag(self, f):
        self.flags.append(f)


def test_precision_flags_per_version():
    for version, precision, expected in [((8, 6, 1), "fp16", ["FP16"]), ((10, 3, 0), "int8", ["INT8", "FP16"]),
                                         ((8, 6, 1), "int8", ["INT8", "FP16"]),
                                         ((11, 4, 0), "int8", []), ((11, 4, 0), "fp16", [])]:
        cfg = _RecConfig()
        set_precision_flags(_TRT, TrtApi(version), cfg, precision)
        assert cfg.flags == expected, (version, precision)
