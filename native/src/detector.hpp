// The native Detector: a verified bundle, one backend, one search; scoring like the Python runtime.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backend.hpp"
#include "manifest.hpp"
#include "preprocess.hpp"
#include "search.hpp"
#include "tocoad_edge/tocoad_edge.h"

namespace tocoad {

struct Prediction {
    double score = 0.0;      // normalised (the image threshold maps to 1.0)
    double raw_score = 0.0;  // max patch L2 distance
    bool is_anomalous = false;
    bool is_review = false;  // in the review band: not NG, above scoring.review_threshold
    int width = 0;
    int height = 0;
    std::vector<float> anomaly_map;  // normalised, height x width
};

class Detector {
public:
    // Throws Error. Hashes every bundle file before any loader reads one.
    static std::unique_ptr<Detector> open(const std::string &bundle_dir, const tocoad_open_options &options);

    // Thread-safe: backend and search run under the handle's mutex; pre/post-processing in parallel.
    Prediction predict(const FrameView &frame);

    const Manifest &manifest() const { return manifest_; }
    const char *backend_name() const { return backend_->name(); }
    const char *search_name() const { return search_name_.c_str(); }

private:
    Detector() = default;
    // search_: the patch distances (the map); exact_: set for the refined search, whose image score it re-checks
    void open_search(const Manifest &m, const std::map<std::string, std::string> &verified, int32_t kind,
                     const std::string &precision, Matrix coreset);

    Manifest manifest_;
    std::unique_ptr<Backend> backend_;
    std::unique_ptr<NearestSearch> search_;
    std::unique_ptr<NearestSearch> exact_;
    std::string search_name_;
    std::size_t search_parts_ = 1;   // the map search's queries split over this many threads (options.threads)
    std::mutex mutex_;
};

}  // namespace tocoad
