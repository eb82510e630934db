#include "anomaly_map.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include <opencv2/imgproc.hpp>

namespace tocoad {

float raw_image_score(const float *distances, std::size_t n) {
    float best = distances[0];
    for (std::size_t i = 1; i < n; ++i) best = std::max(best, distances[i]);
    return best;
}

cv::Mat score_kernel(const ScoringSpec &scoring, int stride) {
    if (scoring.image_score != "smoothed-max" || scoring.gaussian_sigma <= 0.0) return cv::Mat();
    const double s = scoring.gaussian_sigma / stride;
    const int r = std::max(1, static_cast<int>(std::ceil(2.0 * s)));
    std::vector<double> weights(2 * r + 1);
    double total = 0.0;
    for (int i = -r; i <= r; ++i) total += weights[i + r] = std::exp(-0.5 * (i / s) * (i / s));
    cv::Mat kernel(2 * r + 1, 1, CV_32F);
    for (int i = 0; i <= 2 * r; ++i) kernel.at<float>(i) = static_cast<float>(weights[i] / total);
    return kernel;
}

cv::Mat smooth_grid(const cv::Mat &grid, const cv::Mat &kernel) {
    cv::Mat smoothed;
    cv::sepFilter2D(grid, smoothed, CV_32F, kernel, kernel, cv::Point(-1, -1), 0.0, cv::BORDER_REFLECT);
    return smoothed;
}

float image_score(const float *distances, std::size_t tiles, int grid_h, int grid_w, int stride,
                  const ScoringSpec &scoring) {
    const std::size_t per_tile = static_cast<std::size_t>(grid_h) * static_cast<std::size_t>(grid_w);
    const cv::Mat kernel = score_kernel(scoring, stride);
    if (kernel.empty()) return raw_image_score(distances, tiles * per_tile);
    float best = -std::numeric_limits<float>::infinity();
    for (std::size_t t = 0; t < tiles; ++t) {
        const cv::Mat grid(grid_h, grid_w, CV_32F, const_cast<float *>(distances + t * per_tile));
        double hi = 0.0;
        cv::minMaxLoc(smooth_grid(grid, kernel), nullptr, &hi);
        best = std::max(best, static_cast<float>(hi));
    }
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
