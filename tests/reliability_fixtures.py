"""Fixtures and helpers for tests/*/test_reliability_*.py (imported by them).

The session's tiny real bundle (``tiny_bundle`` in conftest.py: 64 × 64 input, generated dataset) is never
modified; tests corrupt *copies* of it. ``build_tiny_bundle`` builds one through the CLIs (used by the soak).
``serving`` is a model loaded from it that must keep giving the same golden-image score before and after every
refused load.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

_BUILT: dict[str, Path] = {}
LEFTOVER_MARKERS = (".staging", ".tmp", ".old-", ".partial")


def build_tiny_bundle(root: Path) -> Path:
    """Sample dataset → tocoad-train → tocoad-export, once per process (fixtures of several modules share it)."""
    if "bundle" in _BUILT:
        return _BUILT["bundle"]
    from tocoad_edge.cli.train import main as train_main
    from tocoad_edge.export.cli import main as export_main
    from tocoad_edge.synth.sample_set import make_sample_dataset

    root.mkdir(parents=True, exist_ok=True)
    make_sample_dataset(root / "data")
    (root / "config.yaml").write_text("stages: baseline\ndata: {image_size: 64}\n", encoding="utf-8")
    assert train_main(["--data", str(root / "data"), "--out", str(root / "run"), "--config",
                       str(root / "config.yaml"), "--quiet"]) == 0
    assert export_main(["bundle", str(root / "run"), "--out", str(root / "bundle")]) == 0
    _BUILT["bundle"] = root / "bundle"
    _BUILT["run"] = root / "run"
    return root / "bundle"


@pytest.fixture(scope="session")
def rel_bundle(tiny_bundle) -> Path:
    """The session's tiny bundle (tests/conftest.py); tests here only ever damage copies of it."""
    return tiny_bundle


@pytest.fixture(scope="session")
def rel_run(tiny_run) -> Path:
    return tiny_run


@pytest.fixture
def bundle_copy(rel_bundle, tmp_path) -> Path:
    """A writable copy of the tiny bundle, to damage."""
    dst = tmp_path / "bundle"
    shutil.copytree(rel_bundle, dst, copy_function=shutil.copyfile)
    return dst


@pytest.fixture(scope="module")
def serving(rel_bundle):
    """The model in service while bad things are tried beside it."""
    from tocoad_edge.runtime.hot_swap import HotSwapDetector

    slot = HotSwapDetector.open(rel_bundle, search="exact", threads=1)
    yield slot
    slot.close()


def golden_fingerprint(predictor) -> tuple[float, str]:
    """Score and map hash of the golden image: equal before and after ⇔ the same model kept serving."""
    from tocoad_edge.runtime.golden import golden_image

    pred = predictor.predict(golden_image())
    return pred.score, hashlib.sha256(np.ascontiguousarray(pred.anomaly_map).tobytes()).hexdigest()


def tree(path: Path) -> set[str]:
    return {p.relative_to(path).as_posix() for p in Path(path).rglob("*")} if Path(path).exists() else set()


def assert_no_partial_files(*folders: Path, before: dict[Path, set[str]] | None = None) -> None:
    """No staging/tmp/old leftovers in ``folders``; with ``before``, nothing new at all."""
    for folder in folders:
        now = tree(folder)
        leftovers = [n for n in now if any(m in n for m in LEFTOVER_MARKERS)]
        assert not leftovers, f"partial files left in {folder}: {leftovers}"
        if before is not None and folder in before:
            assert now <= before[folder], f"new files in {folder}: {sorted(now - before[folder])}"


def rewrite_manifest(bundle: Path, mutate=None, rehash: tuple[str, ...] | list[str] = ()) -> dict:
    """Edit manifest.json in place (``mutate(data)``), re-hashing ``rehash`` so their sha256 checks pass."""
    from tocoad_edge.bundle.manifest import sha256_file

    path = bundle / "manifest.json"
    data = json.loads(path.read_text())
    if mutate is not None:
        mutate(data)
    for name in rehash:
        data["files"][name] = {"sha256": sha256_file(bundle / name), "bytes": (bundle / name).stat().st_size}
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return data


_OPEN_SCRIPT = textwrap.dedent("""
    import json, sys
    kwargs = json.loads(sys.argv[2])
    out = {}
    try:
        from tocoad_edge.runtime import Detector
        det = Detector.open(sys.argv[1], **kwargs)
        from tocoad_edge.runtime.golden import golden_image
        out["score"] = det.predict(golden_image()).score
        out["error"] = None
    except Exception as exc:
        out["error"] = type(exc).__name__
        out["mro"] = [c.__name__ for c in type(exc).__mro__]
        out["message"] = str(exc)
    out["modules"] = sorted(m for m in ("onnxruntime", "hnswlib", "tensorrt", "torch",
                                        "tocoad_edge.runtime.backends.trt.runner") if m in sys.modules)
    print("RESULT " + json.dumps(out))
""")


def open_in_subprocess(bundle: Path, cwd: Path | None = None, **kwargs) -> dict:
    """``Detector.open`` in a child process: a crash (segfault, abort) fails the test instead of pytest."""
    proc = subprocess.run([sys.executable, "-c", _OPEN_SCRIPT, str(bundle), json.dumps(kwargs)],
                          capture_output=True, text=True, timeout=120, cwd=cwd,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, (
        f"child process died (rc {proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def corrupt(path: Path, how: str) -> None:
    """``truncated`` (half), ``empty`` (0 bytes) or ``bitflip`` (one bit in the middle)."""
    data = bytearray(path.read_bytes())
    if how == "truncated":
        data = data[: len(data) // 2]
    elif how == "empty":
        data = bytearray()
    elif how == "bitflip":
        data[len(data) // 2] ^= 0x10
    else:
        raise ValueError(how)
    path.write_bytes(bytes(data))
