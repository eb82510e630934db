// Choosing a TensorRT engine of the bundle for this device from the manifest's fingerprints alone,
// before any engine is deserialized. Pure logic (no TensorRT/CUDA), so it is tested on every build.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "manifest.hpp"

namespace tocoad {

struct DeviceInfo {
    std::string gpu_name;            // cudaDeviceProp::name
    std::string compute_capability;  // "major.minor"
    std::string tensorrt_version;    // "major.minor.patch" of the TensorRT library loaded
};

// getInferLibVersion() -> "major.minor.patch" (8601 -> "8.6.1", 100300 -> "10.3.0").
std::string tensorrt_version_string(int lib_version);

// "8.6.1.6" and "8.6.1" are the same TensorRT: major.minor.patch compare.
bool same_tensorrt_version(const std::string &a, const std::string &b);

// The engine runs `batch` frames of H x W x C = `hwc`: a static input [batch, H, W, C], or a dynamic one
// [-1, H, W, C] whose batch profile {min, opt, max} has min <= batch <= max.
bool runs_input(const EngineFingerprint &engine, const std::vector<int64_t> &hwc, int64_t batch);

// An engine built from the ONNX file the manifest lists for `precision` (same precision preferred),
// for this TensorRT, GPU and compute capability, that runs input [1, H, W, 3] (runs_input). Throws
// Error(TOCOAD_ERR_ENGINE_INCOMPATIBLE) listing every engine of the bundle otherwise.
const EngineFingerprint &matching_engine(const Manifest &manifest, const std::string &precision,
                                         const DeviceInfo &device);

}  // namespace tocoad
