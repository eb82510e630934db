// The only translation unit that includes hnswlib (its header defines non-inline functions).
#include <hnswlib/hnswlib.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <queue>
#include <vector>

#include "error.hpp"
#include "search.hpp"

namespace tocoad {
namespace {

// The bundle's hnswlib file, checked against the dimension and the bank it claims to index.
class HnswIndex {
public:
    HnswIndex(const std::string &path, const IndexSpec &spec, int64_t entries, int64_t dim)
        : space_(static_cast<std::size_t>(dim)) {
        try {
            index_ = std::make_unique<hnswlib::HierarchicalNSW<float>>(&space_, path, false, 0);
        } catch (const std::exception &e) {
            throw_bundle("cannot read the hnswlib index " + path, "an index written by hnswlib (space l2)", e.what(),
                         "re-export the bundle");
        }
        const auto &ix = *index_;
        std::size_t expected_element = ix.size_links_level0_ + static_cast<std::size_t>(dim) * sizeof(float) +
                                       sizeof(hnswlib::labeltype);
        if (ix.size_data_per_element_ != expected_element || ix.offsetData_ != ix.size_links_level0_ ||
            ix.label_offset_ != ix.size_links_level0_ + static_cast<std::size_t>(dim) * sizeof(float))
            throw_bundle("hnswlib index " + path + " was built for another dimension", std::to_string(dim) + " floats per entry",
                         std::to_string((ix.size_data_per_element_ - ix.size_links_level0_ - sizeof(hnswlib::labeltype)) / 4),
                         "re-export the bundle");
        if (static_cast<int64_t>(ix.cur_element_count) != entries)
            throw_bundle("hnswlib index " + path + " does not match coreset.npy", std::to_string(entries) + " entries",
                         std::to_string(ix.cur_element_count) + " entries", "re-export the bundle");
        for (std::size_t i = 0; i < ix.cur_element_count; ++i)
            if (ix.getExternalLabel(static_cast<hnswlib::tableint>(i)) >= static_cast<std::size_t>(entries))
                throw_bundle("hnswlib index " + path + " has labels that are not coreset row numbers",
                             "labels 0.." + std::to_string(entries - 1), std::to_string(ix.getExternalLabel(i)),
                             "re-export the bundle");
        // hnswlib needs ef >= k to return k neighbours (the Python runtime raises ef the same way)
        index_->setEf(static_cast<std::size_t>(std::max(spec.ef, spec.candidates)));
    }

    std::priority_queue<std::pair<float, hnswlib::labeltype>> search(const float *query, std::size_t k) const {
        auto result = index_->searchKnn(query, k);
        if (result.size() != k) throw Error(TOCOAD_ERR_INTERNAL, "hnswlib returned too few neighbours");
        return result;
    }

private:
    hnswlib::L2Space space_;
    std::unique_ptr<hnswlib::HierarchicalNSW<float>> index_;
};

class HnswSearch final : public NearestSearch {
public:
    HnswSearch(const std::string &path, const IndexSpec &spec, int64_t entries, int64_t dim)
        : index_(path, spec, entries, dim), dim_(static_cast<std::size_t>(dim)) {}

    const char *name() const override { return "hnsw"; }

    void query(const float *queries, std::size_t n, float *out) const override {
        for (std::size_t i = 0; i < n; ++i)
            out[i] = std::sqrt(std::max(index_.search(queries + i * dim_, 1).top().first, 0.0f));
    }

private:
    HnswIndex index_;
    std::size_t dim_;
};

class ProjectedSearch final : public NearestSearch {
public:
    ProjectedSearch(const std::string &path, const IndexSpec &spec, Matrix projection, std::shared_ptr<const Matrix> bank,
                    std::size_t grid_h, std::size_t grid_w)
        : index_(path, spec, bank->rows, spec.dims), projection_(std::move(projection)), bank_(std::move(bank)),
          dim_(static_cast<std::size_t>(bank_->cols)), dims_(static_cast<std::size_t>(spec.dims)),
          candidates_(static_cast<std::size_t>(spec.candidates)), lend_(static_cast<std::size_t>(spec.lend)),
          grid_h_(grid_h), grid_w_(grid_w) {
        if (spec.candidates > bank_->rows)
            throw_bundle("the projected index asks for more candidates than the bank has",
                         "1.." + std::to_string(bank_->rows), std::to_string(spec.candidates), "re-export the bundle");
        if (lend_ > 0 && (grid_h_ == 0 || grid_w_ == 0))
            throw_bundle("a projected index that lends rows between neighbours needs the patch grid",
                         "features.grid of at least 1 x 1", std::to_string(grid_h_) + " x " + std::to_string(grid_w_),
                         "re-export the bundle");
    }

    const char *name() const override { return "hnsw"; }   // the bundle's index, as TOCOAD_SEARCH_HNSW opens it

    void query(const float *queries, std::size_t n, float *out) const override {
        query_rows(queries, n, dim_, 0, n, out);
    }

    void query_rows(const float *queries, std::size_t n, std::size_t dim, std::size_t begin, std::size_t end,
                    float *out) const override {
        if (dim != dim_)
            throw_input("search queries have the wrong width", std::to_string(dim_), std::to_string(dim));
        std::vector<float> projected(dims_);   // one buffer for the part's walks, not one allocation per patch
        if (lend_ == 0) {
            std::vector<Candidate> walked(candidates_);
            for (std::size_t i = begin; i < end; ++i) {
                walk(queries + i * dim_, projected.data(), walked.data());
                out[i] = std::sqrt(walked[0].squared);
            }
            return;
        }
        const std::size_t cell = grid_h_ * grid_w_;
        if (n % cell != 0)
            throw_input("a projected search that lends rows between neighbours takes whole patch grids",
                        "a multiple of " + std::to_string(grid_h_) + "x" + std::to_string(grid_w_) + " = " +
                            std::to_string(cell) + " rows (grid-major, one grid per image or tile)",
                        std::to_string(n) + " rows");
        // Every neighbour of a row in [begin, end) is within one grid row of it, so this part walks those rows
        // too: each walk depends only on its own query, so a row lends the same rows whichever part walks it.
        const std::size_t lo = begin >= grid_w_ ? begin - grid_w_ : 0, hi = std::min(n, end + grid_w_);
        std::vector<Candidate> walked((hi - lo) * candidates_);
        for (std::size_t i = lo; i < hi; ++i)
            walk(queries + i * dim_, projected.data(), walked.data() + (i - lo) * candidates_);
        for (std::size_t i = begin; i < end; ++i) {
            const float *q = queries + i * dim_;
            float best = walked[(i - lo) * candidates_].squared;
            const std::size_t local = i % cell, r = local / grid_w_, c = local % grid_w_, first = i - local;
            const std::size_t near[4] = {first + (r > 0 ? r - 1 : r) * grid_w_ + c,
                                         first + (r + 1 < grid_h_ ? r + 1 : r) * grid_w_ + c,
                                         first + r * grid_w_ + (c > 0 ? c - 1 : c),
                                         first + r * grid_w_ + (c + 1 < grid_w_ ? c + 1 : c)};
            for (std::size_t j : near)
                for (std::size_t t = 0; t < lend_; ++t) {
                    const std::size_t row = walked[(j - lo) * candidates_ + t].row;
                    best = std::min(best, squared_l2(q, bank_->data.data() + row * dim_, dim_));
                }
            out[i] = std::sqrt(best);
        }
    }

private:
    struct Candidate {
        float squared;      // full-dimension squared distance to the query
        std::size_t row;    // bank row
    };

    // The query's candidates from the index, by increasing full-dimension distance (ties by row number);
    // `projected`: dims_ floats of scratch for the projected query.
    void walk(const float *q, float *projected, Candidate *out) const {
        std::fill(projected, projected + dims_, 0.0f);
        const float *matrix = projection_.data.data();
        const float *bias = matrix + dim_ * dims_;
        // q·P, then + b (the Python runtime's order); rounding may differ from BLAS in the last bits, which can
        // only change a near-tie between candidates, and every candidate's distance is recomputed exactly
        for (std::size_t r = 0; r < dim_; ++r) {
            const float qr = q[r];
            const float *row = matrix + r * dims_;
            for (std::size_t c = 0; c < dims_; ++c) projected[c] += qr * row[c];
        }
        for (std::size_t c = 0; c < dims_; ++c) projected[c] += bias[c];
        auto result = index_.search(projected, candidates_);
        for (std::size_t k = 0; !result.empty(); result.pop(), ++k) {
            const std::size_t row = static_cast<std::size_t>(result.top().second);
            out[k] = {squared_l2(q, bank_->data.data() + row * dim_, dim_), row};
        }
        std::sort(out, out + candidates_, [](const Candidate &a, const Candidate &b) {
            return a.squared < b.squared || (a.squared == b.squared && a.row < b.row);
        });
    }

    HnswIndex index_;
    Matrix projection_;
    std::shared_ptr<const Matrix> bank_;
    std::size_t dim_, dims_, candidates_, lend_, grid_h_, grid_w_;
};

}  // namespace

std::unique_ptr<NearestSearch> make_hnsw_search(const std::string &index_path, const IndexSpec &spec, int64_t entries,
                                                int64_t dim) {
    return std::make_unique<HnswSearch>(index_path, spec, entries, dim);
}

std::unique_ptr<NearestSearch> make_projected_search(const std::string &index_path, const IndexSpec &spec,
                                                     Matrix projection, std::shared_ptr<const Matrix> bank,
                                                     std::size_t grid_h, std::size_t grid_w) {
    if (projection.source_dtype != "float32" || projection.rows != bank->cols + 1 || projection.cols != spec.dims)
        throw_bundle(spec.projection + " does not match the bank and the manifest",
                     "float32 [" + std::to_string(bank->cols + 1) + ", " + std::to_string(spec.dims) + "]",
                     projection.source_dtype + " [" + std::to_string(projection.rows) + ", " +
                         std::to_string(projection.cols) + "]",
                     "re-export the bundle");
    for (float v : projection.data)
        if (!std::isfinite(v))
            throw_bundle(spec.projection + " holds NaN or inf", "finite values", "non-finite values", "re-export the bundle");
    return std::make_unique<ProjectedSearch>(index_path, spec, std::move(projection), std::move(bank), grid_h, grid_w);
}

}  // namespace tocoad
