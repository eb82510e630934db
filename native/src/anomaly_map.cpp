#include "anomaly_map.hpp"

#include <algorithm>
#include <cmath>

#include <opencv2/imgproc.hpp>

namespace tocoad {

float raw_image_score(const float *distances, std::size_t n) {
    float best = distances[0];
    for (std::size_t i = 1; i < n; ++i) best = std::max(best, distances[i]);
    return best;
}

int gaussian_kernel_size(double sigma) {
    return 2 * static_cast<int>(std::nearbyint(4.0 * sigma)) + 1;  // nearbyint: ties to even, like Python round
}

cv::Mat normalised_anomaly_map(const float *distances, const Manifest &manifest, int frame_width, int frame_height) {
    const auto &f = manifest.features;
    const auto &in = manifest.input;
    const auto &sc = manifest.scoring;
    cv::Mat grid(f.grid_h, f.grid_w, CV_32F, const_cast<float *>(distances));
    cv::Mat at_input;
    cv::resize(grid, at_input, cv::Size(in.width, in.height), 0, 0, cv::INTER_LINEAR);
    cv::Mat blurred = at_input;
    if (sc.gaussian_sigma > 0) {
        const int k = gaussian_kernel_size(sc.gaussian_sigma);
        cv::GaussianBlur(at_input, blurred, cv::Size(k, k), sc.gaussian_sigma, sc.gaussian_sigma, cv::BORDER_REFLECT);
    }
    cv::Mat at_frame;
    if (blurred.cols == frame_width && blurred.rows == frame_height) at_frame = blurred;
    else cv::resize(blurred, at_frame, cv::Size(frame_width, frame_height), 0, 0, cv::INTER_LINEAR);
    return normalised_map(at_frame, sc);
}

cv::Mat normalised_map(const cv::Mat &at_frame, const ScoringSpec &sc) {
    cv::Mat out;
    // float32 arithmetic, like numpy on a float32 array with Python float scalars.
    const float offset = static_cast<float>(sc.normalization_offset);
    const float scale = static_cast<float>(sc.normalization_scale);
    out.create(at_frame.size(), CV_32F);
    for (int y = 0; y < at_frame.rows; ++y) {
        const float *src = at_frame.ptr<float>(y);
        float *dst = out.ptr<float>(y);
        for (int x = 0; x < at_frame.cols; ++x) dst[x] = (src[x] - offset) / scale;
    }
    return out;
}

double normalise(double raw, const ScoringSpec &scoring) {
    return (raw - scoring.normalization_offset) / scoring.normalization_scale;
}

}  // namespace tocoad
