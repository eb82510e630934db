// Exact nearest-neighbour distances of a few queries, pruned by a lower bound: the refined search's re-checks
// (tocoad_edge/runtime/search/bounded.py). With V the bank's leading principal directions (orthonormal rows) and c
// its mean, lift x to [(x - c)V^T, r(x)], r(x) the length of what V leaves out. Then
// |q - b|^2 >= |q' - b'|^2 + (r(q) - r(b))^2, a (p + 1)-dimensional distance. Per query: the row with the smallest
// bound gives a true distance; only rows whose bound can still beat the best true distance are compared in full.
// Every answer is a full squared_l2 to a bank row, so it equals the exact search's bit for bit.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include <opencv2/core.hpp>

#include "search.hpp"

namespace tocoad {
namespace {

// Leading directions in the bound (bounded.py: PREFIX_DIMS): fewer let more rows through, more widen every bound.
constexpr int kPrefixDims = 96;
// Rows for the covariance: enough for the leading directions of any bank, bounded open time for big ones.
constexpr std::size_t kCovarianceRows = 8192;
// Rounding in the float32 lifts: a row stays a candidate while its bound is within this margin, relative to the
// squared lengths involved, of the best true distance.
constexpr float kBoundRtol = 1e-4f;
// Queries per pass over the lifted bank (as in search_exact.cpp: each lifted row is read once per block).
constexpr std::size_t kQueryBlock = 8;

class BoundedExactSearch final : public NearestSearch {
public:
    explicit BoundedExactSearch(std::shared_ptr<const Matrix> bank) : bank_(std::move(bank)) {
        dim_ = static_cast<std::size_t>(bank_->cols);
        rows_ = static_cast<std::size_t>(bank_->rows);
        prefix_ = static_cast<std::size_t>(std::max(1, std::min<int>(kPrefixDims, static_cast<int>(dim_) - 1)));
        lifted_dim_ = prefix_ + 1;
        principal_directions();
        lifted_.resize(rows_ * lifted_dim_);
        largest_sq_ = 0.0f;
        for (std::size_t r = 0; r < rows_; ++r) {
            float *l = lifted_.data() + r * lifted_dim_;
            lift(bank_->data.data() + r * dim_, l);
            largest_sq_ = std::max(largest_sq_, dot(l, l, lifted_dim_));
        }
    }

    const char *name() const override { return "bounded-exact"; }

    void query(const float *queries, std::size_t n, float *out) const override {
        // sized for this call's block: a re-check of one patch needs one row of bounds, not kQueryBlock
        const std::size_t block = std::min(kQueryBlock, n);
        std::vector<float> lifted(block * lifted_dim_), bounds(block * rows_);
        for (std::size_t s = 0; s < n; s += kQueryBlock) {
            const std::size_t m = std::min(kQueryBlock, n - s);
            for (std::size_t i = 0; i < m; ++i) lift(queries + (s + i) * dim_, lifted.data() + i * lifted_dim_);
            for (std::size_t r = 0; r < rows_; ++r) {
                const float *l = lifted_.data() + r * lifted_dim_;
                for (std::size_t i = 0; i < m; ++i)
                    bounds[i * rows_ + r] = squared_l2(lifted.data() + i * lifted_dim_, l, lifted_dim_);
            }
            for (std::size_t i = 0; i < m; ++i)
                out[s + i] = nearest(queries + (s + i) * dim_, lifted.data() + i * lifted_dim_, bounds.data() + i * rows_);
        }
    }

private:
    // The exact distance of one query: its best-bound row first, then every row whose bound may still beat it.
    float nearest(const float *q, const float *q_lifted, const float *bound) const {
        const float *b = bank_->data.data();
        const std::size_t first = static_cast<std::size_t>(std::min_element(bound, bound + rows_) - bound);
        float best = squared_l2(q, b + first * dim_, dim_);
        const float margin = kBoundRtol * (dot(q_lifted, q_lifted, lifted_dim_) + largest_sq_);
        for (std::size_t r = 0; r < rows_; ++r) {
            if (r == first || bound[r] > best + margin) continue;
            best = std::min(best, squared_l2(q, b + r * dim_, dim_));
        }
        return std::sqrt(best);
    }

    // [(x - c)V^T, r(x)] into out (prefix_ + 1 floats).
    void lift(const float *x, float *out) const {
        thread_local std::vector<float> centred;
        centred.resize(dim_);
        for (std::size_t k = 0; k < dim_; ++k) centred[k] = x[k] - center_[k];
        float kept = 0.0f;
        for (std::size_t j = 0; j < prefix_; ++j) {
            out[j] = dot(centred.data(), directions_.data() + j * dim_, dim_);
            kept += out[j] * out[j];
        }
        out[prefix_] = std::sqrt(std::max(dot(centred.data(), centred.data(), dim_) - kept, 0.0f));
    }

    // The bank's mean (float64) and the leading eigenvectors of the covariance of at most kCovarianceRows evenly
    // spaced rows (accumulated in float32 row by row, so the loops vectorise; any orthonormal directions keep the
    // bound valid, their quality only decides how many rows it lets through).
    void principal_directions() {
        std::vector<double> sum(dim_, 0.0);
        for (std::size_t r = 0; r < rows_; ++r)
            for (std::size_t k = 0; k < dim_; ++k) sum[k] += bank_->data[r * dim_ + k];
        center_.resize(dim_);
        for (std::size_t k = 0; k < dim_; ++k) center_[k] = static_cast<float>(sum[k] / static_cast<double>(rows_));
        const std::size_t step = std::max<std::size_t>(1, (rows_ + kCovarianceRows - 1) / kCovarianceRows);
        std::vector<float> scatter(dim_ * dim_, 0.0f), centred(dim_);
        for (std::size_t r = 0; r < rows_; r += step) {
            for (std::size_t k = 0; k < dim_; ++k) centred[k] = bank_->data[r * dim_ + k] - center_[k];
            for (std::size_t i = 0; i < dim_; ++i) {            // upper triangle, one contiguous axpy per row i
                const float xi = centred[i];
                float *row = scatter.data() + i * dim_;
                for (std::size_t j = i; j < dim_; ++j) row[j] += xi * centred[j];
            }
        }
        cv::Mat covariance(static_cast<int>(dim_), static_cast<int>(dim_), CV_64F);
        for (std::size_t i = 0; i < dim_; ++i)
            for (std::size_t j = i; j < dim_; ++j)
                covariance.at<double>(static_cast<int>(i), static_cast<int>(j)) =
                    covariance.at<double>(static_cast<int>(j), static_cast<int>(i)) = scatter[i * dim_ + j];
        cv::Mat values, vectors;
        cv::eigen(covariance, values, vectors);   // rows of `vectors`, eigenvalues descending
        directions_.resize(prefix_ * dim_);
        for (std::size_t j = 0; j < prefix_; ++j)
            for (std::size_t k = 0; k < dim_; ++k)
                directions_[j * dim_ + k] = static_cast<float>(vectors.at<double>(static_cast<int>(j), static_cast<int>(k)));
    }

    // Dot product with eight partial sums, so the compiler vectorises it (like squared_l2).
    static float dot(const float *a, const float *b, std::size_t n) {
        float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        std::size_t k = 0;
        for (; k + 8 <= n; k += 8)
            for (int j = 0; j < 8; ++j) acc[j] += a[k + j] * b[k + j];
        float total = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        for (; k < n; ++k) total += a[k] * b[k];
        return total;
    }

    std::shared_ptr<const Matrix> bank_;
    std::size_t dim_ = 0, rows_ = 0, prefix_ = 0, lifted_dim_ = 0;
    std::vector<float> center_, directions_, lifted_;
    float largest_sq_ = 0.0f;
};

}  // namespace

std::unique_ptr<NearestSearch> make_bounded_exact_search(std::shared_ptr<const Matrix> bank) {
    if (bank->cols < 2 || bank->rows < 1) return make_exact_search(std::move(bank));
    return std::make_unique<BoundedExactSearch>(std::move(bank));
}

}  // namespace tocoad
