// The only translation unit that includes hnswlib (its header defines non-inline functions).
#include <hnswlib/hnswlib.h>

#include <algorithm>
#include <cmath>

#include "error.hpp"
#include "search.hpp"

namespace tocoad {
namespace {

class HnswSearch final : public NearestSearch {
public:
    HnswSearch(const std::string &path, const IndexSpec &spec, int64_t entries, int64_t dim)
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
        index_->setEf(static_cast<std::size_t>(spec.ef));
        dim_ = static_cast<std::size_t>(dim);
    }

    const char *name() const override { return "hnsw"; }

    void query(const float *queries, std::size_t n, float *out) const override {
        for (std::size_t i = 0; i < n; ++i) {
            auto result = index_->searchKnn(queries + i * dim_, 1);
            if (result.empty()) throw Error(TOCOAD_ERR_INTERNAL, "hnswlib returned no neighbour");
            out[i] = std::sqrt(std::max(result.top().first, 0.0f));
        }
    }

private:
    hnswlib::L2Space space_;
    std::unique_ptr<hnswlib::HierarchicalNSW<float>> index_;
    std::size_t dim_ = 0;
};

}  // namespace

std::unique_ptr<NearestSearch> make_hnsw_search(const std::string &index_path, const IndexSpec &spec, int64_t entries,
                                                int64_t dim) {
    return std::make_unique<HnswSearch>(index_path, spec, entries, dim);
}

}  // namespace tocoad
