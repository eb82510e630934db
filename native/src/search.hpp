// Nearest-neighbour search over the memory bank: L2 distance (not squared) of each query row to its
// nearest bank entry, like tocoad_edge/runtime/search/base.py.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "manifest.hpp"
#include "npy.hpp"

namespace tocoad {

class NearestSearch {
public:
    virtual ~NearestSearch() = default;
    virtual const char *name() const = 0;
    // queries: n x dim row-major; out: n distances. Not required to be thread-safe.
    virtual void query(const float *queries, std::size_t n, float *out) const = 0;
};

// Exact search over the coreset (no BLAS; blocked loops).
std::unique_ptr<NearestSearch> make_exact_search(Matrix bank);

// The bundle's hnswlib index (file written by Python hnswlib), ef from the manifest.
std::unique_ptr<NearestSearch> make_hnsw_search(const std::string &index_path, const IndexSpec &spec, int64_t entries,
                                                int64_t dim);

}  // namespace tocoad
