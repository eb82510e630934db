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
    // queries: n x dim row-major; out: n distances. Safe to call from several threads at once (a frame's map
    // search splits its queries over threads, detector.cpp: split_query): no state changes after construction.
    virtual void query(const float *queries, std::size_t n, float *out) const = 0;
    // Rows [begin, end) of a frame of n queries (`queries`: the whole frame, n x dim; `out`: the frame's n answers,
    // of which these rows are written). By default the rows are answered alone; a search whose answers look at
    // other rows of the frame (the projected search's lending between grid neighbours) answers them the same
    // however the frame is cut.
    virtual void query_rows(const float *queries, std::size_t n, std::size_t dim, std::size_t begin, std::size_t end,
                            float *out) const {
        (void)n;
        query(queries + begin * dim, end - begin, out + begin);
    }
};

// Squared L2 distance of two dim-vectors: eight partial sums, so the compiler vectorises it.
inline float squared_l2(const float *q, const float *b, std::size_t dim) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    std::size_t k = 0;
    for (; k + 8 <= dim; k += 8)
        for (int j = 0; j < 8; ++j) {
            float d = q[k + j] - b[k + j];
            acc[j] += d * d;
        }
    float sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; k < dim; ++k) {
        float d = q[k] - b[k];
        sum += d * d;
    }
    return sum;
}

// search.query over n queries in `parts` contiguous ranges, the first on the calling thread and the others on their own
// threads (fewer parts where a part would have under 64 queries). Each answer does not depend on the other queries,
// so `out` is the same bit for bit as one call's; an exception in any part is rethrown after all have finished.
void split_query(const NearestSearch &search, const float *queries, std::size_t n, std::size_t dim, float *out,
                 std::size_t parts);

// Exact search over the coreset (no BLAS; blocked loops). The bank is shared with the refined search's map search.
std::unique_ptr<NearestSearch> make_exact_search(std::shared_ptr<const Matrix> bank);

// The same answers as make_exact_search (bit for bit), pruned by a principal-direction lower bound: what the refined
// search's re-checks use (search_bounded.cpp; tocoad_edge/runtime/search/bounded.py).
std::unique_ptr<NearestSearch> make_bounded_exact_search(std::shared_ptr<const Matrix> bank);

// The bundle's hnswlib index (file written by Python hnswlib), at spec.ef (the caller picks it: detector.cpp).
std::unique_ptr<NearestSearch> make_hnsw_search(const std::string &index_path, const IndexSpec &spec, int64_t entries,
                                                int64_t dim);

// kind projected_hnsw: queries projected by `projection` ([dim + 1, spec.dims]: matrix rows, then the bias), the
// index's spec.candidates neighbours re-ranked by their full-dimension distance in `bank`, and with spec.lend > 0
// the best spec.lend rows of each of the four grid neighbours too (a frame is whole grids of grid_h x grid_w
// patches, grid-major; tocoad_edge/runtime/search/projected.py). Every answer is a real distance to a bank row.
std::unique_ptr<NearestSearch> make_projected_search(const std::string &index_path, const IndexSpec &spec,
                                                     Matrix projection, std::shared_ptr<const Matrix> bank,
                                                     std::size_t grid_h, std::size_t grid_w);

}  // namespace tocoad
