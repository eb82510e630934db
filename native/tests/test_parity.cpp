// Parity with the Python runtime: the fixture's frames scored through the C ABI must match
// tocoad_edge.runtime.Detector (ONNX Runtime) on the same bundle:
//   image score relative difference <= 1e-4, anomaly map max |diff| <= 1e-3 x the reference map's range,
//   same decision. Checked for the three searches (hnsw, exact, refined: the index's map, the exact image score) of
//   the default bundle (projected index, float16 bank), for hnsw and refined of the same run exported with a
//   full-dimension index (hnsw_full, refined_full), for the tiled bundle, and for RGB8 / BGR8 / BGRA8 / GRAY8 and
//   padded-stride buffers. TOCOAD_SEARCH_AUTO must open the refined search on a bundle with an index.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "check.hpp"
#include "npy.hpp"
#include "test_support.hpp"

namespace {

constexpr double kScoreRelTol = 1e-4;
constexpr double kMapRangeTol = 1e-3;

struct Worst {
    double score_rel = 0.0;
    double map_over_range = 0.0;
};

void compare(const std::string &label, const support::Scored &got, const nlohmann::json &ref,
             const tocoad::Matrix &ref_map, Worst &worst) {
    CHECK_MSG(got.status == TOCOAD_OK, label + ": " + got.error);
    if (got.status != TOCOAD_OK) return;
    const double ref_raw = ref["raw_score"].get<double>();
    const double ref_score = ref["score"].get<double>();
    const double raw_rel = std::abs(got.raw_score - ref_raw) / std::max(std::abs(ref_raw), 1e-12);
    const double score_rel = std::abs(got.score - ref_score) / std::max(std::abs(ref_score), 1e-12);
    worst.score_rel = std::max({worst.score_rel, raw_rel, score_rel});
    CHECK_MSG(raw_rel <= kScoreRelTol, label + " raw " + std::to_string(got.raw_score) + " vs " + std::to_string(ref_raw));
    CHECK_MSG(score_rel <= kScoreRelTol, label + " score " + std::to_string(got.score) + " vs " + std::to_string(ref_score));
    CHECK_MSG(got.decision == ref["decision"].get<std::string>(), label + " decision " + got.decision);
    CHECK_MSG(got.width == ref_map.cols && got.height == ref_map.rows,
              label + " map size " + std::to_string(got.width) + "x" + std::to_string(got.height));
    if (got.map.size() != ref_map.data.size()) return;
    const auto [lo, hi] = std::minmax_element(ref_map.data.begin(), ref_map.data.end());
    const double range = std::max(static_cast<double>(*hi - *lo), 1e-12);
    double max_diff = 0.0;
    for (std::size_t i = 0; i < got.map.size(); ++i)
        max_diff = std::max(max_diff, static_cast<double>(std::abs(got.map[i] - ref_map.data[i])));
    worst.map_over_range = std::max(worst.map_over_range, max_diff / range);
    CHECK_MSG(max_diff <= kMapRangeTol * range,
              label + " map max diff " + std::to_string(max_diff) + " over range " + std::to_string(range));
}

}  // namespace

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s <parity fixture folder>\n", argv[0]);
        return 2;
    }
    const std::string root = argv[1];
    std::ifstream in(root + "/reference.json");
    CHECK_MSG(static_cast<bool>(in), "reference.json missing in " + root + " (run make_parity_fixture.py)");
    if (!in) return check::finish("test_parity");
    std::stringstream text;
    text << in.rdbuf();
    const auto reference = nlohmann::json::parse(text.str());
    // the plain bundles (projected index, and the full index of schema 1 bundles), then the tiled one
    // (input.tiling: tiles, one search over all patches, stitched map); "bundles" names the bundle of each search
    for (const auto *set : {&reference, &reference["tiled"]}) {
        for (const auto &item : (*set)["bundles"].items()) {
            const std::string key = item.key();
            const std::string bundle_name = item.value().get<std::string>();
            const std::string bundle = root + "/" + bundle_name;
            const std::string search = key.substr(0, key.find('_'));   // hnsw_full: hnsw over bundle_full
            // refined is opened both ways: by name (refined_full) and as what auto opens on a bundle with an index
            const tocoad_search kind = search == "exact"     ? TOCOAD_SEARCH_EXACT
                                       : key == "refined"    ? TOCOAD_SEARCH_AUTO
                                       : search == "refined" ? TOCOAD_SEARCH_REFINED
                                                             : TOCOAD_SEARCH_HNSW;
            tocoad_detector *detector = support::open_or_null(bundle, kind);
            CHECK_MSG(detector != nullptr, "open " + bundle_name + " with search " + key);
            if (!detector) continue;
            CHECK_MSG(std::string(tocoad_search_name(detector)) == search,
                      bundle_name + " " + key + " opened as " + tocoad_search_name(detector));
            CHECK(std::string(tocoad_backend_name(detector)) == "cpu-opencv");
            Worst worst;
            for (const auto &entry : (*set)["frames"]) {
                const std::string name = bundle_name + "/" + entry["name"].get<std::string>() + "/" + key;
                const auto &ref = entry[key];
                const tocoad::Matrix ref_map = tocoad::read_npy(root + "/" + ref["map"].get<std::string>());
                const support::Frame frame = support::read_pnm(root + "/" + entry["file"].get<std::string>());
                compare(name, support::infer(detector, frame), ref, ref_map, worst);
                if (frame.format == TOCOAD_PIXEL_RGB8) {
                    const support::Frame bgr = support::rgb_to_bgr(frame);
                    compare(name + "/bgr", support::infer(detector, bgr), ref, ref_map, worst);
                    compare(name + "/bgra", support::infer(detector, support::rgb_to_bgra(frame)), ref, ref_map, worst);
                    const int32_t stride = bgr.stride() + 13;  // odd padding: rows not 4-byte aligned
                    const auto padded = support::with_stride(bgr, stride);
                    compare(name + "/bgr-stride", support::infer(detector, padded.data(), bgr.width, bgr.height, stride, bgr.format),
                            ref, ref_map, worst);
                } else {
                    const int32_t stride = frame.stride() + 7;
                    const auto padded = support::with_stride(frame, stride);
                    compare(name + "/gray-stride",
                            support::infer(detector, padded.data(), frame.width, frame.height, stride, frame.format), ref,
                            ref_map, worst);
                }
            }
            std::printf("parity %s %s: worst image-score relative diff %.3g, worst map diff / range %.3g\n",
                        bundle_name.c_str(), key.c_str(), worst.score_rel, worst.map_over_range);
            tocoad_close(detector);
        }
    }
    return check::finish("test_parity");
}
