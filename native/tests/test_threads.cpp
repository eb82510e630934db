// Thread safety: several threads share one handle (and a second handle runs alongside); every result
// must equal the single-threaded result for the same frame, bit for bit.
#include <atomic>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "check.hpp"
#include "test_support.hpp"

namespace {

constexpr int kThreads = 4;
constexpr int kRounds = 3;

}  // namespace

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s <parity fixture folder>\n", argv[0]);
        return 2;
    }
    const std::string root = argv[1];
    std::vector<support::Frame> frames;
    for (const char *name : {"good_96x96.ppm", "scratch_96x96.ppm", "stain_gray_96x96.pgm", "spot_tinted_150x100.ppm"})
        frames.push_back(support::read_pnm(root + "/frames/" + name));

    tocoad_detector *shared = support::open_or_null(root + "/bundle", TOCOAD_SEARCH_HNSW);
    tocoad_detector *second = support::open_or_null(root + "/bundle", TOCOAD_SEARCH_EXACT);
    CHECK(shared != nullptr && second != nullptr);
    if (!shared || !second) return check::finish("test_threads");

    std::vector<support::Scored> expected_shared, expected_second;
    for (const auto &f : frames) {
        expected_shared.push_back(support::infer(shared, f));
        expected_second.push_back(support::infer(second, f));
        CHECK(expected_shared.back().status == TOCOAD_OK && expected_second.back().status == TOCOAD_OK);
    }

    std::atomic<int> mismatches{0}, failures{0}, done{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            tocoad_detector *d = t == kThreads - 1 ? second : shared;
            const auto &expected = t == kThreads - 1 ? expected_second : expected_shared;
            for (int round = 0; round < kRounds; ++round) {
                for (std::size_t i = 0; i < frames.size(); ++i) {
                    const std::size_t k = (i + static_cast<std::size_t>(t)) % frames.size();  // different frames at once
                    const support::Scored got = support::infer(d, frames[k]);
                    if (got.status != TOCOAD_OK) {
                        ++failures;
                        continue;
                    }
                    if (got.raw_score != expected[k].raw_score || got.score != expected[k].score ||
                        got.map != expected[k].map || got.decision != expected[k].decision)
                        ++mismatches;
                    ++done;
                }
            }
        });
    }
    for (auto &t : threads) t.join();
    CHECK_MSG(failures == 0, std::to_string(failures.load()) + " failed inferences");
    CHECK_MSG(mismatches == 0, std::to_string(mismatches.load()) + " results differ from the single-threaded ones");
    CHECK(done == kThreads * kRounds * static_cast<int>(frames.size()));
    tocoad_close(shared);
    tocoad_close(second);
    return check::finish("test_threads");
}
