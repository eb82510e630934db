// Built when CMake did not find TensorRT: the TensorRT backend reports itself unavailable.
#include "backend.hpp"
#include "error.hpp"

namespace tocoad {

bool tensorrt_compiled_in() { return false; }

std::unique_ptr<Backend> make_tensorrt_backend(const std::string &, const std::string &, const Manifest &) {
    throw Error(TOCOAD_ERR_BACKEND_UNAVAILABLE, "this build of libtocoad_edge has no TensorRT backend",
                "a library configured where CMake finds TensorRT (NvInfer.h, libnvinfer) and CUDA", "a CPU-only build",
                "use TOCOAD_BACKEND_CPU, or rebuild on the Jetson with TensorRT installed (docs/native.md)");
}

}  // namespace tocoad
