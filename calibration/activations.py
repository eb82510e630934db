"""Activation statistics with ONNX Runtime: run a copy of the FP32 model whose graph outputs include the
intermediate tensors to calibrate, and accumulate per-tensor histograms of ``|x|`` in numpy.

Two passes over the calibration images: the first finds each tensor's absolute maximum, the second fills a
fixed ``[0, absmax]`` histogram (``DEFAULT_BINS`` bins, as TensorRT's calibrators). Nothing but the histograms is
kept in memory, so the image count is bounded by time, not memory. Exact zeros (ReLU6 outputs, padding) are left
out of the histograms ("skip zeros", as NVIDIA's pytorch-quantization offers): zero is exact in any symmetric
scale, and a tensor that is 70 % zeros would otherwise drive the entropy method to clip far too low.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from .ranges import DEFAULT_BINS

# Pass 2 histograms a regular subsample (every k-th value) of large tensors: 256 images × 65536 values is plenty
# for a 2048-bin histogram, and it keeps calibration of a 224 px model to seconds. Pass 1's maximum is exact.
SAMPLE_PER_IMAGE = 65536


@dataclass
class TensorHistogram:
    name: str
    absmax: float
    hist: np.ndarray          # int64 [bins]
    edges: np.ndarray         # float64 [bins + 1], 0 … absmax
    negative: bool            # any value < 0 was seen (unsigned tensors, e.g. after ReLU6, are not)

    def to_dict(self) -> dict:
        return {"absmax": self.absmax, "negative": self.negative}


def _session_with_outputs(model_path: Path, tensors: list[str], threads: int | None):
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(model_path))
    existing = {o.name for o in model.graph.output}
    for name in tensors:
        if name not in existing:
            model.graph.output.append(onnx.ValueInfoProto(name=name))
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL   # keep tensors as named
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(model.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"])
    return sess, sess.get_inputs()[0].name


def _run(sess, input_name: str, tensors: list[str], images: np.ndarray) -> Iterable[list[np.ndarray]]:
    for i in range(len(images)):
        yield sess.run(tensors, {input_name: images[i:i + 1]})


def collect_histograms(model_path: str | Path, tensors: list[str], images: np.ndarray, *, bins: int = DEFAULT_BINS,
                       sample_per_image: int = SAMPLE_PER_IMAGE, threads: int | None = None,
                       progress: Callable[[str], None] | None = None) -> dict[str, TensorHistogram]:
    """Histograms of ``|x|`` for each named intermediate tensor over ``images`` (uint8 NHWC)."""
    sess, input_name = _session_with_outputs(Path(model_path), tensors, threads)
    absmax = np.zeros(len(tensors))
    negative = np.zeros(len(tensors), dtype=bool)
    for values in _run(sess, input_name, tensors, images):
        for j, v in enumerate(values):
            lo, hi = float(v.min()), float(v.max())
            absmax[j] = max(absmax[j], hi, -lo)
            negative[j] |= lo < 0
    if progress:
        progress("activation maxima collected")
    hists = [np.zeros(bins, dtype=np.int64) for _ in tensors]
    edges = [np.linspace(0.0, max(a, 1e-12), bins + 1) for a in absmax]
    for values in _run(sess, input_name, tensors, images):
        for j, v in enumerate(values):
            flat = v.ravel()
            if flat.size > sample_per_image:
                flat = flat[::-(-flat.size // sample_per_image)]
            a = np.abs(flat)
            a *= bins / max(absmax[j], 1e-12)
            idx = a.astype(np.int32)
            np.minimum(idx, bins - 1, out=idx)
            hists[j] += np.bincount(idx, minlength=bins)
            hists[j][0] -= int(np.count_nonzero(flat == 0))     # exact zeros (ReLU, padding) are skipped
    return {t: TensorHistogram(t, float(absmax[j]), hists[j], edges[j], bool(negative[j]))
            for j, t in enumerate(tensors)}
