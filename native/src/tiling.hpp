// Tiling (manifest input.tiling): a frame → tiles of the model input size at native resolution (after the fixed
// scale), and the tiles' patch distances → one map of the frame. The same grid rule and stitching as
// tocoad_edge/runtime/tiling.py (its docstring states them); test_parity checks both agree on a tiled bundle.
#pragma once

#include <cstddef>
#include <vector>

#include <opencv2/core.hpp>

#include "manifest.hpp"

namespace tocoad {

// Least overlap of neighbouring tiles in pixels: ceil(overlap * tile) (1e-9 absorbs float noise, as in Python).
int overlap_pixels(int tile, double overlap);

// Start offsets along one axis: one tile at 0 when length <= tile, else n = ceil((L - o) / (T - o)) tiles
// starting at floor(i * (L - T) / (n - 1)).
std::vector<int> axis_starts(int length, int tile, double overlap);

struct TileLayout {
    cv::Size frame;       // frame size
    cv::Size scaled;      // after the fixed scale (rounded half up)
    cv::Size tile;        // the model input
    std::vector<int> ys;
    std::vector<int> xs;

    std::size_t count() const { return ys.size() * xs.size(); }
    cv::Size padded() const { return {std::max(scaled.width, tile.width), std::max(scaled.height, tile.height)}; }
    // top-left corner of tile i, row by row (the order of the tiles in the batch)
    cv::Point origin(std::size_t i) const { return {xs[i % xs.size()], ys[i / xs.size()]}; }
};

TileLayout tile_layout(cv::Size frame, cv::Size tile, const TilingSpec &spec);

// BGR frame (frame size) → the scaled, reflect-101-padded image the tiles are cut from (tile i: the ROI at
// origin(i) of size tile).
cv::Mat tiling_canvas(const cv::Mat &bgr, const TileLayout &layout);

// All tiles' distances [count * grid_h * grid_w] (tile-major) → raw map of the frame (CV_32F): per tile bilinear
// to the tile size, mean where tiles overlap, cut to the scaled frame, Gaussian blur, bilinear to the frame.
cv::Mat tiled_raw_map(const float *distances, const TileLayout &layout, int grid_h, int grid_w, double sigma);

}  // namespace tocoad
