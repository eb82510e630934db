"""Every TensorRT name the runtime backend and the engine builder use exists in real TensorRT bindings.

What is checked against what (no GPU is needed for any of it):
  * ``compat.RUNTIME_NAMES`` (runtime backend) against the real ``tensorrt-lean`` bindings
    (``tensorrt_lean_bindings`` / ``tensorrt_lean``, e.g. tensorrt-lean-cu12 11.4), which import without a GPU;
  * ``compat.BUILDER_NAMES`` (engine builder; lean has no builder) against the ``.pyi`` of the full bindings
    shipped by ``tensorrt-stubs`` (10.13), read by indentation (the stub is not valid input for ``ast``);
  * the TensorRT 11 assumption of ``trt/compat.py`` (no ``BuilderFlag.FP16`` / ``INT8``: strongly typed only) against
    the lean 11 bindings' ``BuilderFlag``.
Each part skips, with the reason, when its package is not installed (``pip install --no-deps
tensorrt-lean-cu12-bindings tensorrt-lean-cu12-libs tensorrt-stubs``; see docs/int8_and_tensorrt.md).
"""
import importlib
import importlib.util
import re
from pathlib import Path

import pytest

from tocoad_edge.runtime.backends.trt.compat import BUILDER_NAMES, RUNTIME_NAMES, TrtApi, parse_version


def _lean():
    for name in ("tensorrt_lean", "tensorrt_lean_bindings"):
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(mod, "Runtime"):
            return mod
    pytest.skip("tensorrt-lean bindings not installed")


def _stub_members() -> dict[str, set[str]]:
    spec = importlib.util.find_spec("tensorrt_bindings")
    paths = [Path(p) / "tensorrt.pyi" for p in (spec.submodule_search_locations or [])] if spec else []
    paths = [p for p in paths if p.is_file()]
    if not paths:
        pytest.skip("tensorrt-stubs not installed")
    # The stub file is not valid Python for ``ast`` (generated signatures), so it is read by indentation.
    members: dict[str, set[str]] = {"module": set()}
    stack: list[tuple[int, str]] = []
    pattern = re.compile(r"^(?P<indent> *)(?:class (?P<cls>\w+)|def (?P<fn>\w+)|(?P<attr>\w+)\s*:)")
    for line in paths[0].read_text(encoding="utf-8").splitlines():
        m = pattern.match(line)
        if not m:
            continue
        indent = len(m["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        owner = stack[-1][1] if stack else "module"
        if m["cls"]:
            if owner == "module":
                members["module"].add(m["cls"])
            members.setdefault(m["cls"], set())
            stack.append((indent, m["cls"]))
        else:
            members.setdefault(owner, set()).add(m["fn"] or m["attr"])
    return members


def test_runtime_names_exist_in_the_lean_bindings():
    trt = _lean()
    missing = []
    for owner, names in RUNTIME_NAMES.items():
        obj = trt if owner == "module" else getattr(trt, owner, None)
        if obj is None:
            missing.append(owner)
            continue
        missing += [f"{owner}.{n}" for n in names if not hasattr(obj, n)]
    assert not missing, f"TensorRT names used by the runtime backend but missing in lean {trt.__version__}: {missing}"


def test_builder_names_exist_in_the_full_bindings_stubs():
    members = _stub_members()
    missing = [f"{owner}.{n}" for owner, names in BUILDER_NAMES.items() for n in names
               if n not in members.get(owner, set())]
    assert not missing, f"TensorRT names used by the engine builder but missing in the stubs: {missing}"


def test_tensorrt_11_has_no_precision_flags_as_compat_assumes():
    trt = _lean()
    api = TrtApi(parse_version(trt.__version__))
    flags = set(trt.BuilderFlag.__members__)
    if api.strongly_typed_only:
        assert "FP16" not in flags and "INT8" not in flags
    else:
        assert {"FP16", "INT8"} <= flags
    assert "GPU_FALLBACK" in flags


class _FlagConfig:
    """Collects the builder flags our compat code sets (an ``IBuilderConfig`` needs the full library and a GPU)."""

    def __init__(self):
        self.flags = []

    def set_flag(self, flag):
        self.flags.append(flag)


def _stub_module(members: dict[str, set[str]], version: str):
    """A ``tensorrt`` stand-in whose ``BuilderFlag`` has exactly the members of the full 10.x bindings' stub."""
    from types import SimpleNamespace

    flags = SimpleNamespace(**{name: name for name in members["BuilderFlag"] if name.isupper()})
    return SimpleNamespace(__version__=version, BuilderFlag=flags)


def test_mixed_precision_flags_per_version_exist_in_the_bindings():
    """INT8 on TensorRT ≤ 10 is INT8 + FP16 (float-kept layers in FP16); FP16 is FP16; TensorRT 11 sets no flag
    (strongly typed: the precision is the ONNX's types) — checked against the 10.x stub's and the 11.x lean
    bindings' real ``BuilderFlag`` members."""
    from tocoad_edge.runtime.backends.trt.compat import set_precision_flags

    stub = _stub_module(_stub_members(), "10.13.0.35")
    for version in ("8.6.1", "10.3.0", "10.13.0"):
        api = TrtApi(parse_version(version))
        got = {}
        for precision in ("fp16", "int8"):
            cfg = _FlagConfig()
            set_precision_flags(stub, api, cfg, precision)
            got[precision] = cfg.flags
        assert got == {"fp16": ["FP16"], "int8": ["INT8", "FP16"]}, version
    lean = _lean()
    api = TrtApi(parse_version(lean.__version__))
    assert api.strongly_typed_only, "the installed lean bindings are expected to be TensorRT 11"
    for precision in ("fp16", "int8"):
        cfg = _FlagConfig()
        set_precision_flags(lean, api, cfg, precision)     # the real 11.x BuilderFlag has no FP16 / INT8 to touch
        assert cfg.flags == []
