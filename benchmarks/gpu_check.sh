#!/usr/bin/env bash
# GPU check on a Jetson (JetPack 6: TensorRT 10.3) or any NVIDIA GPU with TensorRT: builds FP16 and INT8 engines
# with Polygraphy, compares each with ONNX Runtime FP32 on real images (Polygraphy Comparator), runs the bundle
# through Detector on TensorRT, prints one JSON (see docs/int8_and_tensorrt.md, "GPU check"). At most 8 minutes.
#   benchmarks/gpu_check.sh --bundle BUNDLE --images DIR [--max-images 32] [--work DIR]
# Exit 0 passed, 1 a parity check failed, 2 no CUDA/TensorRT/pycuda/Polygraphy here, 124 out of time.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
"$PY" -c "import tensorrt, pycuda.driver, polygraphy" 2>/dev/null || {
  echo "gpu_check: needs tensorrt, pycuda and polygraphy (JetPack: python3-libnvinfer; pip install pycuda polygraphy)"
  exit 2; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || cat /etc/nv_tegra_release 2>/dev/null || true
exec timeout 480 "$PY" -u benchmarks/gpu_check.py "$@"
