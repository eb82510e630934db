"""The ``jetson`` extra must not install PyPI's ``tensorrt`` on a Jetson (aarch64): those wheels are SBSA builds;
JetPack's TensorRT bindings (apt python3-libnvinfer) are the ones to use. Read from setup.py itself."""
from __future__ import annotations

import ast
from pathlib import Path

from packaging.requirements import Requirement

SETUP = Path(__file__).resolve().parents[2] / "setup.py"


def _extras() -> dict[str, list[str]]:
    for node in ast.walk(ast.parse(SETUP.read_text())):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "extras" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("no 'extras = {...}' in setup.py")


def _installed(extra: str, machine: str) -> set[str]:
    env = {"platform_machine": machine, "python_version": "3.10", "sys_platform": "linux"}
    reqs = [Requirement(r) for r in _extras()[extra]]
    return {r.name for r in reqs if r.marker is None or r.marker.evaluate(env)}


def test_jetson_extra_leaves_tensorrt_to_jetpack_on_aarch64():
    on_jetson, on_x86 = _installed("jetson", "aarch64"), _installed("jetson", "x86_64")
    assert "tensorrt" not in on_jetson and "tensorrt" in on_x86
    assert on_x86 - on_jetson == {"tensorrt"}                 # everything else is the same on both
    assert {"pycuda", "polygraphy"} <= on_jetson
