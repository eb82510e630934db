// The C ABI: every entry point catches everything, stores a thread-local message, returns a status.
#include <cstring>
#include <new>
#include <string>

#include "detector.hpp"
#include "error.hpp"
#include "tocoad_edge/tocoad_edge.h"

#ifndef TOCOAD_EDGE_VERSION
#define TOCOAD_EDGE_VERSION "0.0.0"
#endif

struct tocoad_detector {
    std::unique_ptr<tocoad::Detector> impl;
};

struct tocoad_result {
    tocoad::Prediction prediction;
};

namespace {

thread_local std::string last_error;

tocoad_status fail(tocoad_status status, const std::string &message) {
    try {
        last_error = message;
    } catch (...) {  // out of memory while storing the message: keep the status
    }
    return status;
}

template <typename Body>
tocoad_status guarded(Body &&body) noexcept {
    try {
        body();
        return TOCOAD_OK;
    } catch (const tocoad::Error &e) {
        return fail(e.status(), e.what());
    } catch (const std::bad_alloc &) {
        return fail(TOCOAD_ERR_RESOURCE, "out of memory; fix: free memory or use a smaller model input");
    } catch (const std::exception &e) {
        return fail(TOCOAD_ERR_INTERNAL, std::string("internal error: ") + e.what() + "; fix: report this bug");
    } catch (...) {
        return fail(TOCOAD_ERR_INTERNAL, "internal error of unknown type; fix: report this bug");
    }
}

void require_not_null(const void *p, const char *name) {
    if (p == nullptr)
        throw tocoad::Error(TOCOAD_ERR_INVALID_ARGUMENT, std::string(name) + " is NULL", "a valid pointer", "NULL");
}

}  // namespace

extern "C" {

const char *tocoad_version(void) { return TOCOAD_EDGE_VERSION; }

const char *tocoad_last_error(void) { return last_error.c_str(); }

void tocoad_open_options_init(tocoad_open_options *options) {
    if (options == nullptr) return;
    std::memset(options, 0, sizeof *options);
    options->struct_size = sizeof *options;
    options->backend = TOCOAD_BACKEND_AUTO;
    options->precision = TOCOAD_PRECISION_FP32;
    options->search = TOCOAD_SEARCH_AUTO;
    options->threads = 0;
}

tocoad_status tocoad_open(const char *bundle_dir, const tocoad_open_options *options, tocoad_detector **out) {
    return guarded([&] {
        require_not_null(bundle_dir, "bundle_dir");
        require_not_null(out, "out");
        tocoad_open_options defaults;
        tocoad_open_options_init(&defaults);
        auto detector = std::make_unique<tocoad_detector>();
        detector->impl = tocoad::Detector::open(bundle_dir, options != nullptr ? *options : defaults);
        *out = detector.release();
    });
}

void tocoad_close(tocoad_detector *detector) { delete detector; }

tocoad_status tocoad_input_size(const tocoad_detector *detector, int32_t *width, int32_t *height) {
    return guarded([&] {
        require_not_null(detector, "detector");
        const auto &in = detector->impl->manifest().input;
        if (width != nullptr) *width = in.width;
        if (height != nullptr) *height = in.height;
    });
}

const char *tocoad_backend_name(const tocoad_detector *detector) {
    return detector == nullptr ? nullptr : detector->impl->backend_name();
}

const char *tocoad_search_name(const tocoad_detector *detector) {
    return detector == nullptr ? nullptr : detector->impl->search_name();
}

tocoad_status tocoad_infer(tocoad_detector *detector, const uint8_t *pixels, int32_t width, int32_t height,
                           int32_t stride, int32_t format, tocoad_result **out) {
    return guarded([&] {
        require_not_null(detector, "detector");
        require_not_null(out, "out");
        tocoad::FrameView frame{pixels, width, height, stride, format};
        auto result = std::make_unique<tocoad_result>();
        result->prediction = detector->impl->predict(frame);
        *out = result.release();
    });
}

tocoad_status tocoad_result_scores(const tocoad_result *result, double *score, double *raw_score,
                                   int32_t *is_anomalous) {
    return guarded([&] {
        require_not_null(result, "result");
        const auto &p = result->prediction;
        if (score != nullptr) *score = p.score;
        if (raw_score != nullptr) *raw_score = p.raw_score;
        if (is_anomalous != nullptr) *is_anomalous = p.is_anomalous ? 1 : 0;
    });
}

const char *tocoad_result_decision(const tocoad_result *result) {
    if (result == nullptr) return nullptr;
    const auto &p = result->prediction;
    return p.is_anomalous ? "NG" : p.is_review ? "REVIEW" : "OK";
}

tocoad_status tocoad_result_map(const tocoad_result *result, const float **data, int32_t *width, int32_t *height) {
    return guarded([&] {
        require_not_null(result, "result");
        require_not_null(data, "data");
        const auto &p = result->prediction;
        *data = p.anomaly_map.data();
        if (width != nullptr) *width = p.width;
        if (height != nullptr) *height = p.height;
    });
}

tocoad_status tocoad_result_copy_map(const tocoad_result *result, float *dst, size_t capacity) {
    return guarded([&] {
        require_not_null(result, "result");
        require_not_null(dst, "dst");
        const auto &map = result->prediction.anomaly_map;
        if (capacity < map.size())
            throw tocoad::Error(TOCOAD_ERR_INVALID_ARGUMENT, "the destination buffer is too small for the anomaly map",
                                ">= " + std::to_string(map.size()) + " floats (width x height)",
                                std::to_string(capacity) + " floats", "allocate width * height floats");
        std::memcpy(dst, map.data(), map.size() * sizeof(float));
    });
}

void tocoad_result_free(tocoad_result *result) { delete result; }

}  // extern "C"
