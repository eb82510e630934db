// TensorRT backend (compiled only when CMake finds TensorRT and CUDA). Checks the engine fingerprint
// in the manifest (or engines.json) against this device and library before deserializing, and every I/O tensor
// against the buffers it allocates before the first enqueueV3.
#include <NvInfer.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <vector>

#include "backend.hpp"
#include "bundle_files.hpp"
#include "engine_bindings.hpp"
#include "engine_fingerprint.hpp"
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

DeviceInfo current_device() {
    int device = 0;
    cuda_check(cudaGetDevice(&device), "cudaGetDevice");
    cudaDeviceProp prop{};
    cuda_check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
    return {prop.name, std::to_string(prop.major) + "." + std::to_string(prop.minor),
            tensorrt_version_string(getInferLibVersion())};
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

std::string dtype_name(nvinfer1::DataType t) {
    switch (t) {
        case nvinfer1::DataType::kFLOAT: return "float32";
        case nvinfer1::DataType::kHALF: return "float16";
        case nvinfer1::DataType::kINT8: return "int8";
        case nvinfer1::DataType::kINT32: return "int32";
        case nvinfer1::DataType::kBOOL: return "bool";
        case nvinfer1::DataType::kUINT8: return "uint8";
        default: return "TensorRT type " + std::to_string(static_cast<int>(t));
    }
}

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
        const EngineFingerprint &fp = matching_engine(m, precision, current_device());  // before deserializing
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
            throw Error(TOCOAD_ERR_ENGINE_INCOMPATIBLE, "TensorRT refused the engine " + fp.file,
                        "an engine of TensorRT " + fp.tensorrt_version + " for " + fp.gpu_name, logger_.last,
                        "rebuild the engine on this device (tocoad-export engine)");
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
        // Every I/O tensor of the engine, as the context resolves it at batch 1, against the buffers allocated
        // below from the manifest: an engine with a larger output would otherwise be written past them.
        std::vector<TensorBinding> engine_io;
        for (int32_t i = 0; i < engine_->getNbIOTensors(); ++i) {
            const char *name = engine_->getIOTensorName(i);
            const nvinfer1::Dims d = context_->getTensorShape(name);
            engine_io.push_back({name, std::vector<int64_t>(d.d, d.d + std::max<int32_t>(d.nbDims, 0)),
                                 dtype_name(engine_->getTensorDataType(name))});
        }
        const std::vector<TensorBinding> allocated = {
            {input_name_, {1, height_, width_, 3}, dtype_name(input_type_)},
            {output_name_, {1, static_cast<int64_t>(patches_), static_cast<int64_t>(dim_)}, "float32"}};
        check_bindings(fp.file, allocated, engine_io);  // before any buffer is bound and the first enqueue
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
