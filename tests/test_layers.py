"""The import layers, read from the source (every ``import`` statement, relative ones resolved, also those inside
functions): training → export → calibration → runtime, never back.

The package folders ``export/`` and ``calibration/`` sit at the top of the repository and install as
``tocoad_edge.export`` and ``tocoad_edge.calibration``; this test reads them from there.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = {"tocoad_edge": ROOT / "tocoad_edge", "tocoad_edge.export": ROOT / "export",
                "tocoad_edge.calibration": ROOT / "calibration"}
TRAINING = ("tocoad_edge.train", "tocoad_edge.models", "tocoad_edge.synth", "torch", "safetensors")
DEVICE_FORBIDDEN = ("tocoad_edge.export", "tocoad_edge.calibration", *TRAINING)
# package → what no module in it may import (a prefix match on the dotted name)
RULES = {
    "tocoad_edge.calibration": ("tocoad_edge.export", "tocoad_edge.cli"),
    "tocoad_edge.runtime": DEVICE_FORBIDDEN + ("tocoad_edge.stream", "tocoad_edge.plc", "tocoad_edge.eval"),
    "tocoad_edge.bundle": DEVICE_FORBIDDEN + ("tocoad_edge.runtime", "tocoad_edge.stream", "tocoad_edge.plc"),
    "tocoad_edge.stream": DEVICE_FORBIDDEN + ("tocoad_edge.plc", "tocoad_edge.fleet"),
    "tocoad_edge.plc": DEVICE_FORBIDDEN + ("tocoad_edge.fleet",),
    "tocoad_edge.fleet": DEVICE_FORBIDDEN,
    "tocoad_edge.eval": DEVICE_FORBIDDEN,
    "tocoad_edge.data": DEVICE_FORBIDDEN + ("tocoad_edge.runtime",),
    "tocoad_edge.models": ("tocoad_edge.train", "tocoad_edge.export", "tocoad_edge.calibration"),
}
# the one module that exists to run a model with torch, imported only when backend="torch" is chosen; and the
# stream app, the composition root behind tocoad-stream, which wires the fleet's MQTT sink in when configured
BY_DESIGN = {("tocoad_edge.stream.app", "tocoad_edge.fleet"),("tocoad_edge.runtime.backends.torch_backend", "torch"),
             ("tocoad_edge.runtime.backends.torch_backend", "tocoad_edge.models"),
             ("tocoad_edge.runtime.backends.torch_backend", "safetensors")}


def _modules():
    for pkg, folder in PACKAGE_DIRS.items():
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([pkg, *parts])
            if pkg == "tocoad_edge" and parts and parts[0] in ("export", "calibration"):
                continue
            yield name, path, path.name == "__init__.py"


def _imports(name: str, path: Path, is_package: bool) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = name.split(".") if is_package else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = here[:len(here) - node.level + 1] if node.level else []
            mod = ".".join([*base, node.module] if node.module else base)
            found.add(mod)
            found.update(f"{mod}.{a.name}" for a in node.names)
    return found


def _violations(package: str) -> list[str]:
    banned = RULES[package]
    out = []
    for name, path, is_pkg in _modules():
        if name != package and not name.startswith(package + "."):
            continue
        for imported in sorted(_imports(name, path, is_pkg)):
            for b in banned:
                if (imported == b or imported.startswith(b + ".")) and (name, b) not in BY_DESIGN:
                    out.append(f"{path.relative_to(ROOT)} imports {imported}")
    return out


def test_the_source_tree_is_read():
    names = {n for n, _, _ in _modules()}
    assert {"tocoad_edge.export.bundle_writer", "tocoad_edge.calibration.pipeline",
            "tocoad_edge.runtime.backends.trt.build", "tocoad_edge.runtime.detector"} <= names


def test_relative_imports_are_resolved():
    path = ROOT / "tocoad_edge" / "runtime" / "backends" / "trt" / "runner.py"
    found = _imports("tocoad_edge.runtime.backends.trt.runner", path, False)
    assert "tocoad_edge.runtime.backends.base" in found and "tocoad_edge.errors" in found


@pytest.mark.parametrize("package", sorted(RULES))
def test_no_import_runs_back_up_the_layers(package):
    assert _violations(package) == []
