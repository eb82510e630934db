"""Latency of the native CPU runtime (libtocoad_edge, OpenCV DNN) vs the Python runtime (ONNX Runtime)
on the same bundle and frame, single-frame predict, same thread count and search.

    python benchmarks/native_vs_python.py --lib build-native/native/libtocoad_edge.so \
        [--bundle DIR | --image-size 224] [--frame 640x480] [--iterations 30] [--threads 2] [--search hnsw]

Without --bundle, a bundle is made with the project's CLIs (tocoad-train + tocoad-export on the
synthetic sample dataset) in --work. Prints one JSON object: median / p90 milliseconds for both runtimes
and native_over_python (median ratio; < 1 means the native path is faster). Timings are for
reporting only; nothing here asserts them.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import statistics
import time
from pathlib import Path

import cv2
import numpy as np


class OpenOptions(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("backend", ctypes.c_int), ("precision", ctypes.c_int),
                ("search", ctypes.c_int), ("threads", ctypes.c_int32)]


SEARCH = {"auto": 0, "hnsw": 1, "exact": 2, "refined": 3}


class NativeDetector:
    def __init__(self, lib_path: str, bundle: Path, search: str, threads: int):
        lib = ctypes.CDLL(lib_path)
        lib.tocoad_last_error.restype = ctypes.c_char_p
        lib.tocoad_open.argtypes = [ctypes.c_char_p, ctypes.POINTER(OpenOptions), ctypes.POINTER(ctypes.c_void_p)]
        lib.tocoad_infer.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32,
                                     ctypes.c_int, ctypes.POINTER(ctypes.c_void_p)]
        lib.tocoad_result_scores.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_double),
                                             ctypes.POINTER(ctypes.c_double), ctypes.POINTER(ctypes.c_int32)]
        lib.tocoad_result_free.argtypes = [ctypes.c_void_p]
        lib.tocoad_close.argtypes = [ctypes.c_void_p]
        opts = OpenOptions()
        lib.tocoad_open_options_init(ctypes.byref(opts))
        opts.backend, opts.search, opts.threads = 1, SEARCH[search], threads
        self.lib, self.handle = lib, ctypes.c_void_p()
        if lib.tocoad_open(str(bundle).encode(), ctypes.byref(opts), ctypes.byref(self.handle)) != 0:
            raise RuntimeError(lib.tocoad_last_error().decode())

    def predict(self, frame: np.ndarray) -> float:
        result = ctypes.c_void_p()
        h, w = frame.shape[:2]
        status = self.lib.tocoad_infer(self.handle, frame.ctypes.data, w, h, frame.strides[0], 0, ctypes.byref(result))
        if status != 0:
            raise RuntimeError(self.lib.tocoad_last_error().decode())
        score = ctypes.c_double()
        self.lib.tocoad_result_scores(result, ctypes.byref(score), None, None)
        self.lib.tocoad_result_free(result)
        return score.value

    def close(self) -> None:
        self.lib.tocoad_close(self.handle)


def make_bundle(work: Path, image_size: int) -> Path:
    from tocoad_edge.cli.train import main as train_main
    from tocoad_edge.export.cli import main as export_main
    from tocoad_edge.synth.sample_set import make_sample_dataset

    bundle = work / f"bundle{image_size}"
    if (bundle / "manifest.json").is_file():
        return bundle
    work.mkdir(parents=True, exist_ok=True)
    make_sample_dataset(work / "data", n_train=10, n_test_good=1, n_test_defect=1, size=256, color=True)
    cfg = work / "config.yaml"
    cfg.write_text(f"stages: baseline\nthreads: 2\ndata: {{image_size: {image_size}, holdout_images: 3}}\n"
                   "memory: {coreset_ratio: 0.1}\n")
    run = work / f"run{image_size}"
    if train_main(["--data", str(work / "data"), "--out", str(run), "--config", str(cfg), "--quiet"]) != 0:
        raise SystemExit("tocoad-train failed")
    if export_main(["bundle", str(run), "--out", str(bundle)]) != 0:
        raise SystemExit("tocoad-export failed")
    return bundle


def time_ms(fns, frame: np.ndarray, iterations: int, block: int = 5) -> list[list[float]]:
    """Alternate the runtimes in blocks of ``block`` calls, so that load from other processes hits both alike
    (blocks rather than single calls: ONNX Runtime's threads spin for a while after each run). The first
    call of each block is a warm-up and is not counted."""
    out: list[list[float]] = [[] for _ in fns]
    while len(out[0]) < iterations:
        for i, fn in enumerate(fns):
            fn(frame)
            for _ in range(block):
                t0 = time.perf_counter()
                fn(frame)
                out[i].append((time.perf_counter() - t0) * 1e3)
    return out


def summary(ms: list[float]) -> dict[str, float]:
    s = sorted(ms)
    return {"median_ms": round(statistics.median(s), 3), "p90_ms": round(s[int(0.9 * (len(s) - 1))], 3)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lib", required=True, help="path of libtocoad_edge.so")
    p.add_argument("--bundle", help="bundle folder (default: make one in --work)")
    p.add_argument("--work", default="build-native/bench", help="folder for the generated bundle")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--frame", default="640x480", help="frame size WxH handed to both runtimes")
    p.add_argument("--iterations", type=int, default=30)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--search", default="hnsw", choices=["hnsw", "exact", "refined"])
    args = p.parse_args()

    from tocoad_edge.runtime import Detector

    bundle = Path(args.bundle) if args.bundle else make_bundle(Path(args.work), args.image_size)
    w, h = (int(v) for v in args.frame.lower().split("x"))
    rng = np.random.default_rng(0)
    frame = cv2.GaussianBlur(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), (0, 0), 3)

    py = Detector.open(bundle, backend="onnxrt", search=args.search, threads=args.threads)
    native = NativeDetector(args.lib, bundle, args.search, args.threads)
    py_score, native_score = py.predict(frame).score, native.predict(frame)
    py_ms, native_ms = time_ms([py.predict, native.predict], frame, args.iterations)
    py.close()
    native.close()
    manifest = json.loads((bundle / "manifest.json").read_text())
    report = {
        "bundle": str(bundle), "model_input": [manifest["input"]["width"], manifest["input"]["height"]],
        "frame": [w, h], "threads": args.threads, "search": args.search, "iterations": args.iterations,
        "python_onnxruntime": summary(py_ms), "native_opencv_dnn": summary(native_ms),
        "native_over_python": round(statistics.median(native_ms) / statistics.median(py_ms), 3),
        "score_rel_diff": abs(native_score - py_score) / max(abs(py_score), 1e-12),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
