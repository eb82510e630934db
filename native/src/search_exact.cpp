#include <algorithm>
#include <cmath>
#include <limits>

#include "search.hpp"

namespace tocoad {
namespace {

// Queries per pass over the bank: their rows (8 x 1.5 KB at 384 dims) stay in the L1 cache beside the bank row.
constexpr std::size_t kQueryBlock = 8;

class ExactSearch final : public NearestSearch {
public:
    explicit ExactSearch(std::shared_ptr<const Matrix> bank) : bank_(std::move(bank)) {}

    const char *name() const override { return "exact"; }

    void query(const float *queries, std::size_t n, float *out) const override {
        const std::size_t dim = static_cast<std::size_t>(bank_->cols);
        const std::size_t rows = static_cast<std::size_t>(bank_->rows);
        const float *bank = bank_->data.data();
        // a block of queries per pass over the bank: each row is read from memory once per block, not once per
        // query (the bank is tens of MB; a frame has hundreds of queries, the refined re-checks a few at a time)
        for (std::size_t s = 0; s < n; s += kQueryBlock) {
            const std::size_t m = std::min(kQueryBlock, n - s);
            float best[kQueryBlock];
            std::fill_n(best, m, std::numeric_limits<float>::infinity());
            for (std::size_t r = 0; r < rows; ++r) {
                const float *b = bank + r * dim;
                for (std::size_t i = 0; i < m; ++i) {
                    const float sum = squared_l2(queries + (s + i) * dim, b, dim);
                    if (sum < best[i]) best[i] = sum;
                }
            }
            for (std::size_t i = 0; i < m; ++i) out[s + i] = std::sqrt(best[i]);
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
