#include <algorithm>
#include <exception>
#include <thread>
#include <vector>

#include "search.hpp"

namespace tocoad {
namespace {

// Below this many queries per part a thread costs more than it saves.
constexpr std::size_t kMinQueriesPerPart = 64;

}  // namespace

void split_query(const NearestSearch &search, const float *queries, std::size_t n, std::size_t dim, float *out,
                 std::size_t parts) {
    parts = std::min(parts, std::max<std::size_t>(1, n / kMinQueriesPerPart));
    if (parts <= 1) {
        search.query_rows(queries, n, dim, 0, n, out);
        return;
    }
    std::vector<std::thread> workers;
    std::vector<std::exception_ptr> errors(parts);
    const auto range = [&](std::size_t k) {
        const std::size_t begin = n * k / parts, end = n * (k + 1) / parts;
        try {
            search.query_rows(queries, n, dim, begin, end, out);
        } catch (...) {
            errors[k] = std::current_exception();
        }
    };
    for (std::size_t k = 1; k < parts; ++k) workers.emplace_back(range, k);
    range(0);
    for (auto &w : workers) w.join();
    for (const auto &e : errors)
        if (e) std::rethrow_exception(e);
}

}  // namespace tocoad
