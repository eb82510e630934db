"""runtime, stream, plc, bundle and eval import — and a bundle opens and scores — with torch, onnx, the export,
calibration and training code made unimportable (``sys.modules[name] = None``), as on a Jetson without torch."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from reliability_fixtures import rel_bundle  # noqa: F401

DEPLOYED = ("tocoad_edge.runtime", "tocoad_edge.stream", "tocoad_edge.plc", "tocoad_edge.bundle", "tocoad_edge.eval",
            "tocoad_edge.fleet")
BLOCKED = ("torch", "torchvision", "onnx", "onnx_graphsurgeon", "safetensors", "tocoad_edge.export",
           "tocoad_edge.calibration", "tocoad_edge.train", "tocoad_edge.models")
# Modules that exist to use a blocked package, imported only when chosen (the torch backend).
BY_DESIGN = ("tocoad_edge.runtime.backends.torch_backend",)

SCRIPT = textwrap.dedent("""
    import importlib, importlib.util, json, pkgutil, sys
    deployed, blocked, by_design, bundle = json.loads(sys.argv[1])
    for name in blocked:
        sys.modules[name] = None
    out = {"imported": [], "absent": [], "failed": {}}
    for pkg in deployed:
        if importlib.util.find_spec(pkg) is None:
            out["absent"].append(pkg)
            continue
        mod = importlib.import_module(pkg)
        names = [pkg] + [m.name for m in pkgutil.walk_packages(mod.__path__, prefix=pkg + ".")]
        for name in names:
            if name in by_design:
                continue
            try:
                importlib.import_module(name)
                out["imported"].append(name)
            except Exception as exc:
                out["failed"][name] = f"{type(exc).__name__}: {exc}"
    from tocoad_edge.runtime import Detector
    from tocoad_edge.runtime.golden import golden_image
    from tocoad_edge.runtime.hot_swap import HotSwapDetector
    with HotSwapDetector.open(bundle, search="hnsw") as slot:
        out["score"] = slot.predict(golden_image()).score
    try:
        Detector.open(bundle, backend="torch")
        out["torch_backend"] = "opened"
    except Exception as exc:
        out["torch_backend"] = type(exc).__name__
    out["still_blocked"] = [n for n in blocked if sys.modules.get(n, "gone") is not None]
    print("RESULT " + json.dumps(out))
""")


def test_deployed_packages_need_no_torch_export_or_training(rel_bundle):
    args = json.dumps([DEPLOYED, BLOCKED, BY_DESIGN, str(rel_bundle)])
    proc = subprocess.run([sys.executable, "-c", SCRIPT, args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.split("RESULT ", 1)[1])
    assert out["failed"] == {}
    assert out["still_blocked"] == []                     # nothing removed the blocks to sneak an import through
    # what a device imports: the runtime with every TensorRT module (the on-device engine builder included), the
    # bundle, streams and the PLC gateway
    for must in ("tocoad_edge.runtime", "tocoad_edge.runtime.detector", "tocoad_edge.runtime.hot_swap",
                 "tocoad_edge.runtime.golden", "tocoad_edge.runtime.backends.onnxrt", "tocoad_edge.runtime.search.hnsw",
                 "tocoad_edge.runtime.backends.trt.runner", "tocoad_edge.runtime.backends.trt.build",
                 "tocoad_edge.runtime.backends.trt.compat", "tocoad_edge.runtime.backends.trt.fingerprint",
                 "tocoad_edge.runtime.backends.trt.calib_cache", "tocoad_edge.runtime.backends.trt.fp16_onnx",
                 "tocoad_edge.bundle.archive", "tocoad_edge.bundle.signature", "tocoad_edge.bundle.onnx_refs",
                 "tocoad_edge.stream", "tocoad_edge.plc"):
        assert must in out["imported"]
    assert out["absent"] == []
    assert isinstance(out["score"], float)
    # the torch backend, chosen explicitly without torch, is a typed refusal, not an ImportError
    assert out["torch_backend"] == "BackendUnavailableError"
