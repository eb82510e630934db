#include <fstream>
#include <iterator>

#include <opencv2/core.hpp>
#include <opencv2/dnn.hpp>

#include "backend.hpp"
#include "error.hpp"
#include "onnx_opencv_compat.hpp"

namespace tocoad {
namespace {

class OpenCvBackend final : public Backend {
public:
    OpenCvBackend(const std::string &onnx_path, const ModelFile &model, const Manifest &manifest)
        : height_(manifest.input.height),
          width_(manifest.input.width),
          patches_(static_cast<std::size_t>(manifest.features.grid_h) * static_cast<std::size_t>(manifest.features.grid_w)),
          dim_(static_cast<std::size_t>(manifest.features.dim)),
          input_name_(model.input_name) {
        std::ifstream in(onnx_path, std::ios::binary);
        if (!in) throw Error(TOCOAD_ERR_RESOURCE, "cannot open " + onnx_path);
        const std::string original((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        const std::string bytes = opencv_compatible_onnx(original);
        try {
            net_ = cv::dnn::readNetFromONNX(bytes.data(), bytes.size());
            net_.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
            net_.setPreferableTarget(cv::dnn::DNN_TARGET_CPU);
        } catch (const cv::Exception &e) {
            throw Error(TOCOAD_ERR_BACKEND_UNAVAILABLE, "OpenCV DNN " CV_VERSION " cannot import " + onnx_path,
                        "an ONNX graph of operators OpenCV DNN supports", e.what(),
                        "use the Python runtime (ONNX Runtime) or export with a graph OpenCV can import (docs/native.md)");
        }
        // Run once so that a graph OpenCV imports but cannot execute fails at open, not on the first frame.
        std::vector<uint8_t> zeros(static_cast<std::size_t>(height_) * static_cast<std::size_t>(width_) * 3, 0);
        std::vector<float> scratch;
        infer(zeros.data(), scratch);
    }

    const char *name() const override { return "cpu-opencv"; }

    void infer(const uint8_t *image, std::vector<float> &embeddings) override {
        const int shape[4] = {1, height_, width_, 3};
        cv::Mat blob(4, shape, CV_8U, const_cast<uint8_t *>(image));
        cv::Mat out;
        try {
            net_.setInput(blob, input_name_);
            out = net_.forward();
        } catch (const cv::Exception &e) {
            throw Error(TOCOAD_ERR_BACKEND_UNAVAILABLE, "OpenCV DNN failed to run the model", "", e.what(),
                        "report this with the bundle's manifest.json");
        }
        if (out.type() != CV_32F || out.total() != patches_ * dim_ || !out.isContinuous())
            throw_bundle("the ONNX model's output does not match the manifest",
                         "float32 [1, " + std::to_string(patches_) + ", " + std::to_string(dim_) + "]",
                         std::to_string(out.total()) + " values of OpenCV type " + std::to_string(out.type()),
                         "re-export the bundle");
        const float *p = out.ptr<float>();
        embeddings.assign(p, p + out.total());
    }

private:
    int height_;
    int width_;
    std::size_t patches_;
    std::size_t dim_;
    std::string input_name_;
    cv::dnn::Net net_;
};

}  // namespace

std::unique_ptr<Backend> make_opencv_backend(const std::string &onnx_path, const ModelFile &model,
                                             const Manifest &manifest) {
    return std::make_unique<OpenCvBackend>(onnx_path, model, manifest);
}

}  // namespace tocoad
