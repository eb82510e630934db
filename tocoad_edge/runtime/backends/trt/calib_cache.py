"""TensorRT calibration cache (implicit INT8 of TensorRT ≤ 10, and DLA), written next to the Q/DQ model for tools
that replay one (trtexec ``--calib``). Our builder does not replay it: DLA engines are refused until a device has
checked that every tensor TensorRT asks a range for is in it (``build.build_engine_into_bundle``).

Text format, as TensorRT's calibrators write it::

    TRT-<version number>-<algorithm>
    <tensor name>: <scale as the hex of a big-endian float32>

The version number is TensorRT's ``NV_TENSORRT_VERSION``: ``major·1000 + minor·100 + patch`` before TensorRT 10
(8.6.1 → ``8601``) and ``major·10000 + minor·100 + patch`` from 10 on (10.3.0 → ``100300``). The algorithm names
the TensorRT calibrator class that may read the file: ``EntropyCalibration2`` (IInt8EntropyCalibrator2),
``MinMaxCalibration`` (IInt8MinMaxCalibrator), ``LegacyCalibration`` (IInt8LegacyCalibrator, percentile).
Tensor names are the ONNX tensor names, which TensorRT's ONNX parser keeps; only the tensors the Q/DQ model
quantizes are listed (inputs of INT8 layers, residual-add shortcuts, pool and resize inputs), so layers the
accuracy gate kept in float stay in float there too.
"""
from __future__ import annotations

import re
import struct
from pathlib import Path

from ....errors import BundleError

CACHE_NAME = "calibration.cache"
# JetPack 6.1/6.2 ships TensorRT 10.3; the header names the version the cache was made for.
DEFAULT_TRT_VERSION = (10, 3, 0)
ALGORITHMS = {"entropy": "EntropyCalibration2", "max": "MinMaxCalibration", "percentile": "LegacyCalibration"}
_LINE = re.compile(r"^(?P<name>.+): (?P<hex>[0-9a-f]{8})$")
_HEADER = re.compile(r"^TRT-(?P<num>\d+)-(?P<algo>[A-Za-z0-9]+)$")


def trt_version_number(version: tuple[int, ...]) -> int:
    major, minor, patch = (tuple(version) + (0, 0, 0))[:3]
    return major * (10000 if major >= 10 else 1000) + minor * 100 + patch


def scale_to_hex(scale: float) -> str:
    return struct.pack(">f", float(scale)).hex()


def hex_to_scale(text: str) -> float:
    return float(struct.unpack(">f", bytes.fromhex(text))[0])


def write_cache(path: str | Path, scales: dict[str, float], method: str,
                trt_version: tuple[int, ...] = DEFAULT_TRT_VERSION) -> Path:
    """Write ``scales`` (tensor name → INT8 scale = amax / 127) in TensorRT's calibration cache format."""
    header = f"TRT-{trt_version_number(trt_version)}-{ALGORITHMS[method]}"
    lines = [header] + [f"{name}: {scale_to_hex(s)}" for name, s in scales.items()]
    path = Path(path)
    path.write_text("\n".join(lines) + "\n", encoding="ascii")
    return path


def read_cache(path: str | Path) -> tuple[int, str, dict[str, float]]:
    """Parse a cache: (version number, algorithm, scales). Raises BundleError on a malformed file."""
    text = Path(path).read_text(encoding="ascii").splitlines()
    m = _HEADER.match(text[0]) if text else None
    if not m:
        raise BundleError(f"{path} is not a TensorRT calibration cache", expected="a first line TRT-<n>-<algorithm>",
                          got=repr(text[0] if text else ""))
    scales = {}
    for i, line in enumerate(text[1:], start=2):
        lm = _LINE.match(line)
        if not lm:
            raise BundleError(f"{path} line {i} is malformed", expected="<tensor>: <8 hex digits>", got=repr(line))
        scales[lm["name"]] = hex_to_scale(lm["hex"])
    return int(m["num"]), m["algo"], scales
