"""Item 5: a pickle planted where the coreset, projection or weights belong is never unpickled (a sentinel file
proves its code did not run), and no unsafe loader appears anywhere in the code."""
from __future__ import annotations

import ast
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from reliability_fixtures import (assert_no_partial_files, bundle_copy, golden_fingerprint, open_in_subprocess,  # noqa
                                  rel_bundle, rel_run, rewrite_manifest, serving, tree)

REPO = Path(__file__).resolve().parents[2]


class _Payload:
    """Unpickling this creates the sentinel file: that is how we know whether a loader unpickled."""

    def __init__(self, sentinel: Path):
        self.sentinel = sentinel

    def __reduce__(self):
        return (Path.touch, (self.sentinel,))


def pickle_npy(sentinel: Path) -> bytes:
    """A .npy file of dtype=object whose body is a pickle: what np.save(..., allow_pickle=True) writes."""
    body = pickle.dumps(_Payload(sentinel), protocol=2)
    header = {"descr": "|O", "fortran_order": False, "shape": (1,)}
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue() + body


def test_payload_really_runs_when_unpickled(tmp_path):
    """Control: the planted bytes do create the sentinel when something does unpickle them."""
    sentinel = tmp_path / "control-ran"
    (tmp_path / "x.npy").write_bytes(pickle_npy(sentinel))
    np.load(tmp_path / "x.npy", allow_pickle=True)  # unsafe-load-ok: control for the sentinel
    assert sentinel.exists()


@pytest.mark.parametrize("target", ["coreset.npy", "index.hnsw", "backbone.onnx"])
def test_pickle_in_bundle_never_unpickled(target, bundle_copy, serving, tmp_path):
    before = golden_fingerprint(serving)
    sentinel = tmp_path / "pwned"
    (bundle_copy / target).write_bytes(pickle_npy(sentinel))
    rewrite_manifest(bundle_copy, rehash=[target])     # the sha256 passes: the loader itself must refuse
    listing = {bundle_copy: tree(bundle_copy)}
    result = open_in_subprocess(bundle_copy, search="hnsw" if target == "index.hnsw" else "exact")
    assert result["error"] in ("BundleError",), result
    assert not sentinel.exists(), "the planted pickle was executed"
    assert_no_partial_files(bundle_copy, before=listing)
    assert golden_fingerprint(serving) == before


@pytest.mark.parametrize("target", ["memory_bank.npy", "projection.npy"])
def test_pickle_in_run_folder_never_unpickled(target, rel_run, tmp_path):
    from tocoad_edge.errors import BundleError
    from tocoad_edge.train.run_folder import RunFolder

    run = tmp_path / "run"
    run.mkdir()
    sentinel = tmp_path / "pwned"
    (run / target).write_bytes(pickle_npy(sentinel))
    folder = RunFolder(run)
    with pytest.raises(BundleError, match="no pickles"):
        folder.memory_bank() if target == "memory_bank.npy" else folder.projection()
    assert not sentinel.exists()


def test_pickle_as_weights_never_unpickled(rel_run, tmp_path):
    """backbone.safetensors replaced by a torch pickle: safetensors refuses it; a .pt given as backbone.weights is
    read with torch.load(weights_only=True), which refuses the payload's globals."""
    pytest.importorskip("torch")      # the script below runs torch in a subprocess
    script = textwrap.dedent("""
        import shutil, sys, torch
        from pathlib import Path
        from tocoad_edge.train.config import load_train_config
        from tocoad_edge.errors import TocoadError
        run, tmp = Path(sys.argv[1]), Path(sys.argv[2])
        sentinel = tmp / "pwned"
        class Payload:
            def __reduce__(self):
                return (Path.touch, (sentinel,))
        copy = tmp / "run"
        shutil.copytree(run, copy)
        torch.save({"w": Payload()}, copy / "backbone.safetensors")
        from tocoad_edge.train.embedder_factory import load_run_embedder
        cfg = load_train_config(copy / "config.yaml")
        out = []
        try:
            load_run_embedder(copy, cfg, None)
            out.append("loaded")
        except TocoadError as exc:
            out.append(type(exc).__name__)
        torch.save({"w": Payload()}, tmp / "weights.pt")
        from tocoad_edge.models.base import load_state_dict
        try:
            load_state_dict(tmp / "weights.pt")
            out.append("loaded")
        except TocoadError as exc:
            out.append(type(exc).__name__)
        print("RESULT", *out, "sentinel" if sentinel.exists() else "no-sentinel")
    """)
    proc = subprocess.run([sys.executable, "-c", script, str(rel_run), str(tmp_path)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "RESULT BundleError ResourceError no-sentinel" in proc.stdout, proc.stdout + proc.stderr[-2000:]
    assert not (tmp_path / "pwned").exists()


# -- the code never uses an unsafe loader ---------------------------------------------------------------------
def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _is_true(kw: ast.keyword) -> bool:
    return isinstance(kw.value, ast.Constant) and kw.value.value is True


def unsafe_calls(source: str, filename: str) -> list[str]:
    """Calls of unsafe loaders, found in the syntax tree (strings and comments do not count)."""
    found = []
    lines = source.splitlines()
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        last = name.rsplit(".", 1)[-1]
        kwargs = {kw.arg: kw for kw in node.keywords if kw.arg}
        why = None
        if name in ("eval", "exec", "builtins.eval", "builtins.exec"):
            why = f"{name}()"
        elif name in ("yaml.load", "yaml.load_all", "yaml.unsafe_load", "yaml.full_load", "yaml.unsafe_load_all"):
            why = f"{name}() (use yaml.safe_load)"
        elif name in ("pickle.load", "pickle.loads", "cPickle.load", "dill.load", "dill.loads", "marshal.loads",
                      "shelve.open", "joblib.load", "pickle.Unpickler"):
            why = f"{name}()"
        elif last == "load" and name.startswith("torch") and not (
                "weights_only" in kwargs and _is_true(kwargs["weights_only"])):
            why = f"{name}() without weights_only=True"
        elif "allow_pickle" in kwargs and not (isinstance(kwargs["allow_pickle"].value, ast.Constant)
                                               and kwargs["allow_pickle"].value.value is False):
            why = f"{name}(allow_pickle=...) not literally False"
        if why and "unsafe-load-ok" not in lines[node.lineno - 1]:
            found.append(f"{filename}:{node.lineno}: {why}")
    return found


def test_no_unsafe_loader_anywhere_in_the_repo():
    files = [p for p in REPO.rglob("*.py") if not any(part.startswith(".") or part in ("build", "dist")
                                                       for part in p.relative_to(REPO).parts)]
    assert len(files) > 30
    problems = [hit for p in files for hit in unsafe_calls(p.read_text(encoding="utf-8"), str(p.relative_to(REPO)))]
    assert problems == []


def test_the_scanner_catches_what_it_should():
    bad = textwrap.dedent("""
        import yaml, pickle, torch, numpy as np
        yaml.load(s)
        yaml.load(s, Loader=yaml.FullLoader)
        pickle.loads(b)
        torch.load(p)
        torch.load(p, weights_only=False)
        np.load(p, allow_pickle=True)
        np.load(p, allow_pickle=flag)
        eval("1")
    """)
    assert len(unsafe_calls(bad, "bad.py")) == 8
    good = textwrap.dedent("""
        import yaml, torch, numpy as np
        yaml.safe_load(s)
        torch.load(p, map_location="cpu", weights_only=True)
        np.load(p, allow_pickle=False)
        text = "yaml.load( pickle.load eval( allow_pickle=True"
    """)
    assert unsafe_calls(good, "good.py") == []
