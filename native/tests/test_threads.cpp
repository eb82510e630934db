// Thread safety: several threads share one handle (and a second handle runs alongside); every result
// must equal the single-threaded result for the same frame, bit for bit.
#include <atomic>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bundle_files.hpp"
#include "check.hpp"
#include "error.hpp"
#include "manifest.hpp"
#include "npy.hpp"
#include "search.hpp"
#include "test_support.hpp"

namespace {

constexpr int kThreads = 4;
constexpr int kRounds = 3;

// The default bundle's projected index lends rows between grid neighbours: a frame's map search split over threads
// at any row (mid-grid included) answers what one call answers, bit for bit; and lending only ever lowers a
// patch's distance against the same walk without it.
void test_lending_split(const std::string &bundle) {
    const tocoad::Manifest m = tocoad::read_manifest(bundle);
    CHECK(m.memory_bank.index && m.memory_bank.index->kind == "projected_hnsw" && m.memory_bank.index->lend > 0);
    if (!m.memory_bank.index || m.memory_bank.index->lend == 0) return;
    // a greedy walk (1 row at ef 1) misses rows a neighbour found, so lending has something to change
    tocoad::IndexSpec lending = *m.memory_bank.index;
    lending.candidates = lending.ef = lending.lend = 1;
    tocoad::IndexSpec alone = lending;
    alone.lend = 0;
    const auto bank = std::make_shared<const tocoad::Matrix>(tocoad::read_npy(bundle + "/" + m.memory_bank.file));
    const auto open = [&](const tocoad::IndexSpec &spec) {
        return tocoad::make_projected_search(bundle + "/" + spec.file, spec, tocoad::read_npy(bundle + "/" + spec.projection),
                                             bank, static_cast<std::size_t>(m.features.grid_h),
                                             static_cast<std::size_t>(m.features.grid_w));
    };
    const auto lent = open(lending), own = open(alone);
    const std::size_t dim = static_cast<std::size_t>(bank->cols);
    const std::size_t n = 5 * static_cast<std::size_t>(m.features.grid_h * m.features.grid_w);   // five grids
    std::mt19937 rng(5);
    std::normal_distribution<float> normal(0.0f, 3.0f);
    std::vector<float> queries(n * dim);
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t k = 0; k < dim; ++k)
            queries[i * dim + k] = bank->data[(i / 4 * 7 % static_cast<std::size_t>(bank->rows)) * dim + k] + normal(rng);
    std::vector<float> once(n), without(n);
    lent->query(queries.data(), n, once.data());
    own->query(queries.data(), n, without.data());
    for (std::size_t parts : {2u, 3u, 4u}) {   // 2.5 grids per part for two parts: the cut is mid-grid
        std::vector<float> split(n, -1.0f);
        tocoad::split_query(*lent, queries.data(), n, dim, split.data(), parts);
        CHECK_MSG(split == once, "lending search split in " + std::to_string(parts) + " parts");
    }
    std::size_t lower = 0;
    for (std::size_t i = 0; i < n; ++i) {
        CHECK_MSG(once[i] <= without[i], "patch " + std::to_string(i) + ": lent rows raised its distance");
        lower += once[i] < without[i];
    }
    CHECK_MSG(lower > 0, "no patch got a nearer row from a neighbour: the split above compared nothing lent");
    std::printf("lending: %zu of %zu patches nearer than their own walk found\n", lower, n);
    std::vector<float> partial(n - 1);
    bool refused = false;
    try {
        lent->query(queries.data(), n - 1, partial.data());
    } catch (const tocoad::Error &e) {
        refused = std::string(e.what()).find("whole patch grids") != std::string::npos;
    }
    CHECK_MSG(refused, "a frame that is not whole grids is refused");
}

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

    test_lending_split(root + "/bundle");

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
