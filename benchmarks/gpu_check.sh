#!/usr/bin/env bash
# GPU check (CUDA machine with the TensorRT wheels and pycuda): builds FP16 and INT8 engines, compares them with
# ONNX Runtime, times them; at most 8 minutes. Usage: benchmarks/gpu_check.sh [--bundle BUNDLE] [...]
# Exit 0 passed, 1 a parity check failed, 2 no CUDA/TensorRT here, 124 out of time.
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import tensorrt, pycuda.driver" 2>/dev/null || {
  echo "gpu_check: needs tensorrt and pycuda (pip install tensorrt pycuda on a CUDA machine)"; exit 2; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
exec timeout 480 python -u benchmarks/gpu_check.py "$@"
