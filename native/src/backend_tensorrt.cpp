// TensorRT backend (compiled only when CMake finds TensorRT and CUDA). Checks the engine fingerprint
// in the manifest against this device and library before deserializing, then runs enqueueV3.
#include <NvInfer.h>
#include <cuda_runtime_api.h>

#include <fstream>
#include <iterator>
#include <sstream>

#include "backend.hpp"
#include "bundle_files.hpp"
#include "error.hpp"

namespace tocoad {
namespace {

class Logger final : public nvinfer1::ILogger {
public:
    void log(Severity severity, const char *msg) noexcept override {
        if (severity <= Severity::kERROR) last = msg;
    }
    std::string last;
};

void cuda_check(cudaError_t status, const char *what) {
    if (status != cudaSuccess)
        throw Error(TOCOAD_ERR_BACKEND_UNAVAILABLE, std::string("CUDA call failed: ") + what, "cudaSuccess",
                    cudaGetErrorString(status), "check the GPU and the CUDA driver (nvidia-smi / tegrastats)");
}

std::string runtime_tensorrt_version() {
    int v = getInferLibVersion();  // e.g. 8601 (8.6.1) or 100300 (10.3.0)
    int major = v >= 100000 ? v / 10000 : v / 1000;
    int rest = v >= 100000 ? v % 10000 : v % 1000;
    int minor = rest / 100;
    int patch = rest % 100;
    return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
}

// "8.6.1.6" and "8.6.1" match "8.6.1": compare major.minor.patch.
bool same_tensorrt_version(const std::string &wanted, const std::string &have) {
    auto prefix = [](const std::string &s) {
        std::istringstream in(s);
        std::string part, out;
        for (int i = 0; i < 3 && std::getline(in, part, '.'); ++i) out += (i ? "." : "") + part;
        return out;
    };
    return prefix(wanted) == prefix(have);
}

struct DeviceInfo {
    std::string gpu_name;
    std::string compute_capability;
};

DeviceInfo current_device() {
    int device = 0;
    cuda_check(cudaGetDevice(&device), "cudaGetDevice");
    cudaDeviceProp prop{};
    cuda_check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
    return {prop.name, std::to_string(prop.major) + "." + std::to_string(prop.minor)};
}

std::string describe(const EngineFingerprint &e) {
    std::string shape;
    for (auto d : e.input_shape) shape += (shape.empty() ? "" : "x") + std::to_string(d);
    return e.file + " (TensorRT " + e.tensorrt_version + ", " + e.gpu_name + ", sm " + e.compute_capability + ", " +
           e.precision + ", " + shape + ")";
}

// The first engine of the manifest that was built for this precision, model, TensorRT and GPU.
const EngineFingerprint &matching_engine(const Manifest &m, const std::string &precision) {
    auto model = m.models.find(precision);
    if (model == m.models.end())
        throw Error(TOCOAD_ERR_ENGINE_INCOMPATIBLE, "the bundle has no " + precision + " model", precision, "none",
                    "open with a precision the bundle has");
    auto onnx = m.files.find(model->second.file);
    const std::string onnx_sha = onnx == m.files.end() ? "" : onnx->second.sha256;
    const DeviceInfo device = current_device();
    const std::string trt = runtime_tensorrt_version();
    const std::vector<int64_t> shape{1, m.input.height, m.input.width, 3};
    std::string seen;
    for (const auto &e : m.engines) {
        seen += (seen.empty() ? "" : "; ") + describe(e);
        if (e.precision == precision && e.onnx_sha256 == onnx_sha && same_tensorrt_version(e.tensorrt_version, trt) &&
            e.gpu_name == device.gpu_name && e.compute_capability == device.compute_capability && e.input_shape == shape)
            return e;
    }
    throw Error(TOCOAD_ERR_ENGINE_INCOMPATIBLE, "no TensorRT engine of the bundle fits this device",
                "an engine for " + precision + " of " + model->second.file + ", TensorRT " + trt + ", " + device.gpu_name +
                    ", sm " + device.compute_capability,
                seen.empty() ? "no engines in the manifest" : seen,
                "build the engine on this device (tocoad-export --engine) or use TOCOAD_BACKEND_CPU");
}

// CUDA stream and buffers, released even when the backend's constructor throws half-way.
struct CudaResources {
    CudaResources() = default;
    CudaResources(const CudaResources &) = delete;
    CudaResources &operator=(const CudaResources &) = delete;
    ~CudaResources() {
        if (stream) cudaStreamSynchronize(stream);
        if (input) cudaFree(input);
        if (output) cudaFree(output);
        if (stream) cudaStreamDestroy(stream);
    }
    cudaStream_t stream = nullptr;
    void *input = nullptr;
    void *output = nullptr;
};

template <typename T>
struct Destroy {
    void operator()(T *p) const { delete p; }
};

class TensorRtBackend final : public Backend {
public:
    TensorRtBackend(const std::string &bundle_dir, const std::string &precision, const Manifest &m)
        : height_(m.input.height), width_(m.input.width),
          patches_(static_cast<std::size_t>(m.features.grid_h) * static_cast<std::size_t>(m.features.grid_w)),
          dim_(static_cast<std::size_t>(m.features.dim)) {
        const EngineFingerprint &fp = matching_engine(m, precision);  // before deserializing anything
        if (m.files.count(fp.file) == 0)
            throw_bundle("the engine " + fp.file + " is not listed in the manifest's files",
                         "every bundle file listed with its sha256", fp.file, "re-export the bundle");
        const std::string path = safe_member_path(bundle_dir, fp.file);  // sha256 checked at open
        std::ifstream in(path, std::ios::binary);
        if (!in) throw Error(TOCOAD_ERR_RESOURCE, "cannot open " + path);
        std::vector<char> blob((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());

        runtime_.reset(nvinfer1::createInferRuntime(logger_));
        if (!runtime_) throw Error(TOCOAD_ERR_BACKEND_UNAVAILABLE, "cannot create the TensorRT runtime", "", logger_.last);
        if (fp.dla_core) runtime_->setDLACore(*fp.dla_core);
        engine_.reset(runtime_->deserializeCudaEngine(blob.data(), blob.size()));
        if (!engine_)
            throw Error(TOCOAD_ERR_ENGINE_INCOMPATIBLE, "TensorRT refused the engine " + fp.file, describe(fp), logger_.last,
                        "rebuild the engine on this device (tocoad-export --engine)");
        context_.reset(engine_->createExecutionContext());
        if (!context_) throw Error(TOCOAD_ERR_RESOURCE, "cannot create a TensorRT execution context", "", logger_.last);

        const ModelFile &model = m.models.at(precision);
        input_name_ = model.input_name;
        output_name_ = model.output_name;
        input_type_ = engine_->getTensorDataType(input_name_.c_str());
        output_type_ = engine_->getTensorDataType(output_name_.c_str());
        if (input_type_ != nvinfer1::DataType::kUINT8 && input_type_ != nvinfer1::DataType::kFLOAT)
            throw Error(TOCOAD_ERR_ENGINE_INCOMPATIBLE, "engine input '" + input_name_ + "' has an unsupported type",
                        "uint8 or float32", std::to_string(static_cast<int>(input_type_)), "rebuild the engine");
        if (output_type_ != nvinfer1::DataType::kFLOAT)
            throw Error(TOCOAD_ERR_ENGINE_INCOMPATIBLE, "engine output '" + output_name_ + "' has an unsupported type",
                        "float32", std::to_string(static_cast<int>(output_type_)), "rebuild the engine");
        nvinfer1::Dims dims;
        dims.nbDims = 4;
        dims.d[0] = 1;
        dims.d[1] = height_;
        dims.d[2] = width_;
        dims.d[3] = 3;
        if (!context_->setInputShape(input_name_.c_str(), dims))
            throw Error(TOCOAD_ERR_ENGINE_INCOMPATIBLE, "the engine does not accept the model input shape",
                        "[1, " + std::to_string(height_) + ", " + std::to_string(width_) + ", 3]", logger_.last,
                        "rebuild the engine");
        const std::size_t pixels = static_cast<std::size_t>(height_) * static_cast<std::size_t>(width_) * 3;
        input_bytes_ = pixels * (input_type_ == nvinfer1::DataType::kUINT8 ? 1 : sizeof(float));
        output_bytes_ = patches_ * dim_ * sizeof(float);
        cuda_check(cudaStreamCreate(&cuda_.stream), "cudaStreamCreate");
        cuda_check(cudaMalloc(&cuda_.input, input_bytes_), "cudaMalloc(input)");
        cuda_check(cudaMalloc(&cuda_.output, output_bytes_), "cudaMalloc(output)");
        if (!context_->setTensorAddress(input_name_.c_str(), cuda_.input) ||
            !context_->setTensorAddress(output_name_.c_str(), cuda_.output))
            throw Error(TOCOAD_ERR_ENGINE_INCOMPATIBLE, "the engine's tensor names differ from the manifest",
                        input_name_ + " / " + output_name_, logger_.last, "rebuild the engine");
    }

    const char *name() const override { return "tensorrt"; }

    void infer(const uint8_t *image, std::vector<float> &embeddings) override {
        const std::size_t pixels = static_cast<std::size_t>(height_) * static_cast<std::size_t>(width_) * 3;
        const void *host_input = image;
        if (input_type_ == nvinfer1::DataType::kFLOAT) {
            staging_.resize(pixels);
            for (std::size_t i = 0; i < pixels; ++i) staging_[i] = static_cast<float>(image[i]);
            host_input = staging_.data();
        }
        embeddings.resize(patches_ * dim_);
        cuda_check(cudaMemcpyAsync(cuda_.input, host_input, input_bytes_, cudaMemcpyHostToDevice, cuda_.stream), "copy in");
        if (!context_->enqueueV3(cuda_.stream))
            throw Error(TOCOAD_ERR_BACKEND_UNAVAILABLE, "TensorRT enqueueV3 failed", "", logger_.last,
                        "check GPU memory and the engine");
        cuda_check(cudaMemcpyAsync(embeddings.data(), cuda_.output, output_bytes_, cudaMemcpyDeviceToHost, cuda_.stream),
                   "copy out");
        cuda_check(cudaStreamSynchronize(cuda_.stream), "cudaStreamSynchronize");
    }

private:
    Logger logger_;
    std::unique_ptr<nvinfer1::IRuntime, Destroy<nvinfer1::IRuntime>> runtime_;
    std::unique_ptr<nvinfer1::ICudaEngine, Destroy<nvinfer1::ICudaEngine>> engine_;
    std::unique_ptr<nvinfer1::IExecutionContext, Destroy<nvinfer1::IExecutionContext>> context_;
    int height_;
    int width_;
    std::size_t patches_;
    std::size_t dim_;
    std::string input_name_;
    std::string output_name_;
    nvinfer1::DataType input_type_ = nvinfer1::DataType::kUINT8;
    nvinfer1::DataType output_type_ = nvinfer1::DataType::kFLOAT;
    std::size_t input_bytes_ = 0;
    std::size_t output_bytes_ = 0;
    CudaResources cuda_;  // declared after context_: destroyed (stream synchronised) before it
    std::vector<float> staging_;
};

}  // namespace

bool tensorrt_compiled_in() { return true; }

std::unique_ptr<Backend> make_tensorrt_backend(const std::string &bundle_dir, const std::string &precision,
                                               const Manifest &manifest) {
    return std::make_unique<TensorRtBackend>(bundle_dir, precision, manifest);
}

}  // namespace tocoad
