// Scoring shared by every backend, identical to the Python runtime (docs/architecture.md "Scoring").
#pragma once

#include <cstddef>

#include <opencv2/core.hpp>

#include "manifest.hpp"

namespace tocoad {

// max_i distances[i]: the raw image score of "max".
float raw_image_score(const float *distances, std::size_t n);

// The raw image score of `tiles` grids [grid_h, grid_w] of patch distances, as the manifest's scoring.image_score
// says: "max", or "smoothed-max" (each grid smoothed by the map's Gaussian at grid scale, sigma / stride, out to
// two sigmas and at least one patch each side, BORDER_REFLECT; then the maximum). As runtime/scoring.py.
float image_score(const float *distances, std::size_t tiles, int grid_h, int grid_w, int stride,
                  const ScoringSpec &scoring);

// The smoothed-max score's 1-D kernel (CV_32F column, summing to 1; runtime/scoring.py: score_kernel); an empty Mat
// for "max" or a zero sigma.
cv::Mat score_kernel(const ScoringSpec &scoring, int stride);

// One CV_32F grid smoothed by `kernel` along both axes with BORDER_REFLECT (runtime/scoring.py: smooth_grid).
cv::Mat smooth_grid(const cv::Mat &grid, const cv::Mat &kernel);

// Gaussian kernel size used for sigma: 2 * round(4 * sigma) + 1 with Python's round (half to even).
int gaussian_kernel_size(double sigma);

// grid [h, w] -> bilinear to model input size -> Gaussian blur (BORDER_REFLECT) -> bilinear to frame
// size -> (raw - offset) / scale. Returns CV_32F frame_height x frame_width.
cv::Mat normalised_anomaly_map(const float *distances, const Manifest &manifest, int frame_width, int frame_height);

// (raw - offset) / scale of a CV_32F raw map, in float32 arithmetic.
cv::Mat normalised_map(const cv::Mat &raw, const ScoringSpec &scoring);

double normalise(double raw, const ScoringSpec &scoring);

}  // namespace tocoad
