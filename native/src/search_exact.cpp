#include <limits>
#include <cmath>

#include "search.hpp"

namespace tocoad {
namespace {

class ExactSearch final : public NearestSearch {
public:
    explicit ExactSearch(std::shared_ptr<const Matrix> bank) : bank_(std::move(bank)) {}

    const char *name() const override { return "exact"; }

    void query(const float *queries, std::size_t n, float *out) const override {
        const std::size_t dim = static_cast<std::size_t>(bank_->cols);
        const std::size_t rows = static_cast<std::size_t>(bank_->rows);
        for (std::size_t i = 0; i < n; ++i) {
            const float *q = queries + i * dim;
            float best = std::numeric_limits<float>::infinity();
            for (std::size_t r = 0; r < rows; ++r) {
                const float sum = squared_l2(q, bank_->data.data() + r * dim, dim);
                if (sum < best) best = sum;
            }
            out[i] = std::sqrt(best);
        }
    }

private:
    std::shared_ptr<const Matrix> bank_;
};

}  // namespace

std::unique_ptr<NearestSearch> make_exact_search(std::shared_ptr<const Matrix> bank) {
    return std::make_unique<ExactSearch>(std::move(bank));
}

}  // namespace tocoad
