#include "engine_fingerprint.hpp"

#include <algorithm>
#include <sstream>

#include "error.hpp"

namespace tocoad {
namespace {

std::string major_minor_patch(const std::string &s) {
    std::istringstream in(s);
    std::string part, out;
    for (int i = 0; i < 3 && std::getline(in, part, '.'); ++i) out += (i ? "." : "") + part;
    return out;
}

std::string describe(const EngineFingerprint &e) {
    std::string shape;
    for (auto d : e.input_shape) shape += (shape.empty() ? "" : "x") + std::to_string(d);
    if (e.batch_profile.size() == 3)
        shape += " batch " + std::to_string(e.batch_profile[0]) + ".." + std::to_string(e.batch_profile[2]);
    return e.file + " (TensorRT " + e.tensorrt_version + ", " + e.gpu_name + ", sm " + e.compute_capability + ", " +
           e.precision + ", " + shape + ")";
}

}  // namespace

std::string tensorrt_version_string(int v) {
    const int major = v >= 100000 ? v / 10000 : v / 1000;  // TensorRT 10 changed the encoding
    const int rest = v >= 100000 ? v % 10000 : v % 1000;
    return std::to_string(major) + "." + std::to_string(rest / 100) + "." + std::to_string(rest % 100);
}

bool runs_input(const EngineFingerprint &e, const std::vector<int64_t> &hwc, int64_t batch) {
    if (e.input_shape.size() != 4 || !std::equal(hwc.begin(), hwc.end(), e.input_shape.begin() + 1)) return false;
    if (e.input_shape[0] == -1)
        return e.batch_profile.size() == 3 && e.batch_profile[0] <= batch && batch <= e.batch_profile[2];
    return e.input_shape[0] == batch;
}

bool same_tensorrt_version(const std::string &a, const std::string &b) {
    return !a.empty() && major_minor_patch(a) == major_minor_patch(b);
}

const EngineFingerprint &matching_engine(const Manifest &m, const std::string &precision, const DeviceInfo &device) {
    auto model = m.models.find(precision);
    if (model == m.models.end())
        throw Error(TOCOAD_ERR_ENGINE_INCOMPATIBLE, "the bundle has no " + precision + " model", precision, "none",
                    "open with a precision the bundle has");
    auto onnx = m.files.find(model->second.file);
    const std::string onnx_sha = onnx == m.files.end() ? "" : onnx->second.sha256;
    const std::vector<int64_t> hwc{m.input.height, m.input.width, 3};
    auto fits = [&](const EngineFingerprint &e) {
        return !onnx_sha.empty() && e.onnx_sha256 == onnx_sha &&
               same_tensorrt_version(e.tensorrt_version, device.tensorrt_version) && e.gpu_name == device.gpu_name &&
               e.compute_capability == device.compute_capability && runs_input(e, hwc, 1);
    };
    // An engine of the same precision first; else any engine built from that ONNX (an fp16 engine of
    // the fp32 model serves an fp32 request).
    for (const auto &e : m.engines)
        if (e.precision == precision && fits(e)) return e;
    for (const auto &e : m.engines)
        if (fits(e)) return e;
    std::string seen;
    for (const auto &e : m.engines) seen += (seen.empty() ? "" : "; ") + describe(e);
    throw Error(TOCOAD_ERR_ENGINE_INCOMPATIBLE, "no TensorRT engine of the bundle fits this device",
                "an engine for " + precision + " of " + model->second.file + ", TensorRT " + device.tensorrt_version +
                    ", " + device.gpu_name + ", sm " + device.compute_capability,
                seen.empty() ? "no engines in the manifest" : seen,
                "build the engine on this device (tocoad-export engine BUNDLE) or use TOCOAD_BACKEND_CPU");
}

}  // namespace tocoad
