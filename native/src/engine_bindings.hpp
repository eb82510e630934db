// The engine's I/O tensors checked against the buffers the runtime allocates, before the first enqueue: an
// engine whose output is larger than the manifest says would otherwise be written past the output buffer.
// Pure (names, dims, dtype names), so it is compiled and unit-tested without TensorRT;
// tocoad_edge/runtime/backends/trt/bindings.py is the same check in Python.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tocoad {

struct TensorBinding {
    std::string name;
    std::vector<int64_t> dims;
    std::string dtype;  // "uint8", "float32", "float16", ...
};

// Every tensor of `allocated` must exist in `engine_io` with equal dims and dtype, and the engine must have no
// other I/O tensor. Throws Error(TOCOAD_ERR_ENGINE_INCOMPATIBLE) listing each difference, what the runtime
// allocates (expected) and what the engine has (got).
void check_bindings(const std::string &engine_file, const std::vector<TensorBinding> &allocated,
                    const std::vector<TensorBinding> &engine_io);

}  // namespace tocoad
