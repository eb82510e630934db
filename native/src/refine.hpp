// The exact image score at approximate-search cost (tocoad_edge/runtime/search/refined.py).
//
// An approximate search (the bundle's HNSW index) returns, for every patch, the distance to a real bank row: an
// upper bound of its nearest-neighbour distance. The patches that could still carry the image score are re-checked
// by the exact search, highest bound first, until no remaining bound can beat the best exact value. The image
// score is then exact search's; the anomaly map stays the approximate one.
#pragma once

#include <cstddef>

#include "manifest.hpp"
#include "search.hpp"

namespace tocoad {

// Raw image score as scoring.image_score says ("max", or "smoothed-max" with the map's Gaussian at grid scale),
// computed on exact distances wherever they can matter. `embeddings`: tiles x grid_h x grid_w rows of `dim` floats
// (tile-major); `upper`: the approximate distances of those patches. `exact` must search the same bank.
float refined_image_score(const float *embeddings, std::size_t dim, const float *upper, std::size_t tiles, int grid_h,
                          int grid_w, int stride, const ScoringSpec &scoring, const NearestSearch &exact);

}  // namespace tocoad
