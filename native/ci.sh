#!/usr/bin/env bash
# Native runtime CI: configure, build, ctest; again under AddressSanitizer + UndefinedBehaviorSanitizer;
# then install and build a find_package(tocoad_edge) consumer against the installed tree.
#
#   native/ci.sh              (from the repository root; uses $PYTHON or python3 on PATH, which must
#                              import tocoad_edge with its train/export extras: torch, onnx, onnxruntime,
#                              onnx-graphsurgeon, hnswlib, opencv-python)
#
# System packages (Debian 12): cmake g++ pkg-config libopencv-dev nlohmann-json3-dev libssl-dev libhnswlib-dev
# Environment: JOBS (default 2), TOCOAD_NATIVE_BUILD (default build-native), SKIP_SANITIZE=1 to skip that pass.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
JOBS=${JOBS:-2}
BUILD=${TOCOAD_NATIVE_BUILD:-$ROOT/build-native}
PYTHON=${PYTHON:-$(command -v python3)}
PARITY_DIR=$BUILD/parity

missing=()
for pkg in cmake g++ pkg-config libopencv-dev nlohmann-json3-dev libssl-dev libhnswlib-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "native/ci.sh: missing system packages: ${missing[*]}" >&2
  echo "fix: apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 2
fi

configure_build_test() {  # <build dir> <extra cmake args...>
  local dir=$1
  shift
  cmake -S "$ROOT" -B "$dir" -DPython3_EXECUTABLE="$PYTHON" -DTOCOAD_PARITY_DIR="$PARITY_DIR" "$@"
  nice cmake --build "$dir" -j "$JOBS"
  (cd "$dir" && ctest --output-on-failure --timeout 900)
}

echo "== native: release build + ctest"
configure_build_test "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$BUILD/install"

if [[ "${SKIP_SANITIZE:-0}" != 1 ]]; then
  echo "== native: AddressSanitizer + UndefinedBehaviorSanitizer build + ctest"
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  configure_build_test "$BUILD-sanitize" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTOCOAD_SANITIZE=ON -DTOCOAD_BUILD_EXAMPLES=OFF
fi

echo "== native: install + find_package(tocoad_edge) consumer"
rm -rf "$BUILD/install" "$BUILD/consumer"
cmake --install "$BUILD" --prefix "$BUILD/install"
cmake -S "$ROOT/native/tests/consumer" -B "$BUILD/consumer" -DCMAKE_PREFIX_PATH="$BUILD/install" -DCMAKE_BUILD_TYPE=Release
nice cmake --build "$BUILD/consumer" -j "$JOBS"
LD_LIBRARY_PATH="$BUILD/install/lib" "$BUILD/consumer/consumer_shared" "$PARITY_DIR/bundle"
"$BUILD/consumer/consumer_static" "$PARITY_DIR/bundle"
echo "native/ci.sh: all native checks passed"
