// Inference backends: a preprocessed uint8 BGR frame of the model input size in, patch embeddings out.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "manifest.hpp"

namespace tocoad {

class Backend {
public:
    virtual ~Backend() = default;
    virtual const char *name() const = 0;
    // image: input.height x input.width x 3 uint8 BGR, contiguous (NHWC with N = 1).
    // embeddings: resized to grid_h * grid_w * dim floats. Not required to be thread-safe.
    virtual void infer(const uint8_t *image, std::vector<float> &embeddings) = 0;
};

// OpenCV DNN on the CPU, reading the (sha256-checked) ONNX file of `model`.
std::unique_ptr<Backend> make_opencv_backend(const std::string &onnx_path, const ModelFile &model,
                                             const Manifest &manifest);

// True when the library was compiled with TensorRT.
bool tensorrt_compiled_in();

// A TensorRT engine of the bundle that fits this device; throws Error(TOCOAD_ERR_ENGINE_INCOMPATIBLE)
// or Error(TOCOAD_ERR_BACKEND_UNAVAILABLE) when none does.
std::unique_ptr<Backend> make_tensorrt_backend(const std::string &bundle_dir, const std::string &precision,
                                               const Manifest &manifest);

}  // namespace tocoad
