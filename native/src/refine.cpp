#include "refine.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "anomaly_map.hpp"

namespace tocoad {
namespace {

// hnswlib and the exact search round differently; a bound within this relative margin of the running best is still
// re-checked, so rounding can never skip the true maximum (refined.py: BOUND_RTOL).
constexpr float kBoundRtol = 1e-3f;
// The patch with the largest bound first (it settles most images), then blocks of four (refined.py's defaults).
constexpr std::size_t kFirstBlock = 1;
constexpr std::size_t kBlock = 4;

// Exact distances of the patches `rows` (indices into the embeddings), written into `values`.
void recheck(const float *embeddings, std::size_t dim, const std::vector<std::size_t> &rows, const NearestSearch &exact,
             std::vector<float> &values) {
    std::vector<float> queries(rows.size() * dim);
    for (std::size_t i = 0; i < rows.size(); ++i)
        std::copy_n(embeddings + rows[i] * dim, dim, queries.begin() + static_cast<std::ptrdiff_t>(i * dim));
    std::vector<float> out(rows.size());
    exact.query(queries.data(), rows.size(), out.data());
    for (std::size_t i = 0; i < rows.size(); ++i) values[rows[i]] = out[i];
}

float refined_max(const float *embeddings, std::size_t dim, const float *upper, std::size_t n, const NearestSearch &exact) {
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::stable_sort(order.begin(), order.end(), [upper](std::size_t a, std::size_t b) { return upper[a] > upper[b]; });
    std::vector<float> values(upper, upper + n);
    float best = -std::numeric_limits<float>::infinity();
    std::size_t size = kFirstBlock;
    for (std::size_t s = 0; s < n; s += size, size = kBlock) {
        if (upper[order[s]] * (1.0f + kBoundRtol) < best) break;
        const std::vector<std::size_t> rows(order.begin() + static_cast<std::ptrdiff_t>(s),
                                            order.begin() + static_cast<std::ptrdiff_t>(std::min(n, s + size)));
        recheck(embeddings, dim, rows, exact, values);
        for (std::size_t r : rows) best = std::max(best, values[r]);
    }
    return best;
}

// smoothed-max: smoothing with non-negative weights keeps upper bounds upper bounds, so the cell with the largest
// smoothed bound has every patch under its kernel re-checked, until no cell that still holds an approximate
// distance can beat the best cell whose window is all exact (refined.py: max_smoothed).
float refined_smoothed(const float *embeddings, std::size_t dim, const float *upper, std::size_t tiles, int grid_h,
                       int grid_w, const cv::Mat &kernel, const NearestSearch &exact) {
    const int r = kernel.rows / 2;
    const std::size_t per_tile = static_cast<std::size_t>(grid_h) * static_cast<std::size_t>(grid_w);
    std::vector<float> values(upper, upper + tiles * per_tile);
    std::vector<uint8_t> pending(tiles * per_tile, 1);     // 1 while a patch holds an approximate distance
    const cv::Mat box = cv::Mat::ones(2 * r + 1, 2 * r + 1, CV_8U);
    std::vector<cv::Mat> bound(tiles);
    const auto smooth_all = [&] {
        for (std::size_t t = 0; t < tiles; ++t)
            bound[t] = smooth_grid(cv::Mat(grid_h, grid_w, CV_32F, values.data() + t * per_tile), kernel);
    };
    const auto largest = [&](std::size_t &tile, cv::Point &at) {
        double top = -std::numeric_limits<double>::infinity();
        for (std::size_t t = 0; t < tiles; ++t) {
            double hi = 0.0;
            cv::Point p;
            cv::minMaxLoc(bound[t], nullptr, &hi, nullptr, &p);
            if (hi > top) top = hi, tile = t, at = p;   // first tile on ties, like numpy's argmax
        }
        return static_cast<float>(top);
    };
    smooth_all();
    float best = -std::numeric_limits<float>::infinity();
    std::size_t tile = 0;
    cv::Point cell;
    float top = largest(tile, cell);
    while (top * (1.0f + kBoundRtol) >= best) {
        std::vector<std::size_t> rows;
        for (int i = std::max(0, cell.y - r); i < std::min(grid_h, cell.y + r + 1); ++i)
            for (int j = std::max(0, cell.x - r); j < std::min(grid_w, cell.x + r + 1); ++j) {
                const std::size_t k = tile * per_tile + static_cast<std::size_t>(i) * grid_w + static_cast<std::size_t>(j);
                if (pending[k]) rows.push_back(k);
            }
        recheck(embeddings, dim, rows, exact, values);
        for (std::size_t k : rows) pending[k] = 0;
        smooth_all();
        // a cell is settled when every patch in its kernel window is exact: its smoothed value is then exact
        bool all_settled = true;
        for (std::size_t t = 0; t < tiles; ++t) {
            cv::Mat near;
            cv::dilate(cv::Mat(grid_h, grid_w, CV_8U, pending.data() + t * per_tile), near, box, cv::Point(-1, -1), 1,
                       cv::BORDER_REFLECT);
            for (int i = 0; i < grid_h; ++i)
                for (int j = 0; j < grid_w; ++j) {
                    if (near.at<uint8_t>(i, j)) {
                        all_settled = false;
                        continue;
                    }
                    float &b = bound[t].at<float>(i, j);
                    best = std::max(best, b);
                    b = -std::numeric_limits<float>::infinity();
                }
        }
        if (all_settled) break;
        top = largest(tile, cell);
    }
    return best;
}

}  // namespace

float refined_image_score(const float *embeddings, std::size_t dim, const float *upper, std::size_t tiles, int grid_h,
                          int grid_w, int stride, const ScoringSpec &scoring, const NearestSearch &exact) {
    const cv::Mat kernel = score_kernel(scoring, stride);
    const std::size_t n = tiles * static_cast<std::size_t>(grid_h) * static_cast<std::size_t>(grid_w);
    if (kernel.empty()) return refined_max(embeddings, dim, upper, n, exact);
    return refined_smoothed(embeddings, dim, upper, tiles, grid_h, grid_w, kernel, exact);
}

}  // namespace tocoad
