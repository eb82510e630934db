#include "tiling.hpp"

#include <algorithm>
#include <cmath>

#include <opencv2/imgproc.hpp>

#include "anomaly_map.hpp"

namespace tocoad {
namespace {

int scaled_length(int length, double scale) {
    if (scale == 1.0) return length;
    return std::max(1, static_cast<int>(std::floor(length * scale + 0.5)));  // half up, as in Python
}

}  // namespace

int overlap_pixels(int tile, double overlap) { return static_cast<int>(std::ceil(overlap * tile - 1e-9)); }

std::vector<int> axis_starts(int length, int tile, double overlap) {
    if (length <= tile) return {0};
    const int o = overlap_pixels(tile, overlap);
    const int n = (length - o + (tile - o) - 1) / (tile - o);  // ceil((L - o) / (T - o))
    std::vector<int> starts(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i)
        starts[static_cast<std::size_t>(i)] = static_cast<int>((static_cast<int64_t>(i) * (length - tile)) / (n - 1));
    return starts;
}

TileLayout tile_layout(cv::Size frame, cv::Size tile, const TilingSpec &spec) {
    TileLayout l;
    l.frame = frame;
    l.scaled = {scaled_length(frame.width, spec.scale), scaled_length(frame.height, spec.scale)};
    l.tile = tile;
    l.ys = axis_starts(l.scaled.height, tile.height, spec.overlap);
    l.xs = axis_starts(l.scaled.width, tile.width, spec.overlap);
    return l;
}

cv::Mat tiling_canvas(const cv::Mat &bgr, const TileLayout &layout) {
    cv::Mat img = bgr;
    if (img.size() != layout.scaled) cv::resize(bgr, img, layout.scaled, 0, 0, cv::INTER_LINEAR);
    const cv::Size p = layout.padded();
    if (p != layout.scaled) {
        cv::Mat padded;
        cv::copyMakeBorder(img, padded, 0, p.height - layout.scaled.height, 0, p.width - layout.scaled.width,
                           cv::BORDER_REFLECT_101);
        img = padded;
    }
    return img;
}

cv::Mat tiled_raw_map(const float *distances, const TileLayout &layout, int grid_h, int grid_w, double sigma) {
    const cv::Size p = layout.padded();
    cv::Mat total = cv::Mat::zeros(p, CV_32F);
    cv::Mat count = cv::Mat::zeros(p, CV_32F);
    const std::size_t per_tile = static_cast<std::size_t>(grid_h) * static_cast<std::size_t>(grid_w);
    cv::Mat tile_map;
    for (std::size_t i = 0; i < layout.count(); ++i) {
        cv::Mat grid(grid_h, grid_w, CV_32F, const_cast<float *>(distances + i * per_tile));
        cv::resize(grid, tile_map, layout.tile, 0, 0, cv::INTER_LINEAR);
        const cv::Rect roi(layout.origin(i), layout.tile);
        total(roi) += tile_map;
        count(roi) += 1.0;
    }
    const cv::Rect frame_roi(0, 0, layout.scaled.width, layout.scaled.height);
    cv::Mat m;
    cv::divide(total(frame_roi), count(frame_roi), m);  // every pixel lies in a tile: count >= 1
    if (sigma > 0) {
        const int k = gaussian_kernel_size(sigma);
        cv::Mat blurred;
        cv::GaussianBlur(m, blurred, cv::Size(k, k), sigma, sigma, cv::BORDER_REFLECT);
        m = blurred;
    }
    if (layout.scaled != layout.frame) {
        cv::Mat at_frame;
        cv::resize(m, at_frame, layout.frame, 0, 0, cv::INTER_LINEAR);
        m = at_frame;
    }
    return m;
}

}  // namespace tocoad
