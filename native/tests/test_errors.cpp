// Bad input gets a clear error (status + message with expected/got/fix) and loses nothing: damaged,
// tampered or incomplete bundles, wrong options, wrong buffers, NULLs; the handle keeps working.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <utility>

#include <nlohmann/json.hpp>

#include "backend.hpp"
#include "check.hpp"
#include "sha256.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string scratch_root;
std::string fixture_bundle;
int copies = 0;

bool contains(const std::string &s, const std::string &part) { return s.find(part) != std::string::npos; }

std::string copy_bundle() {
    const fs::path dst = fs::path(scratch_root) / ("bundle" + std::to_string(copies++));
    fs::remove_all(dst);
    fs::create_directories(dst.parent_path());
    fs::copy(fixture_bundle, dst, fs::copy_options::recursive);
    return dst.string();
}

json read_json(const std::string &path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return json::parse(s.str());
}

void write_file(const std::string &path, const std::string &bytes) {
    std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Re-register a file in the manifest with its new sha256 and size (a consistent but bad bundle).
void rehash(const std::string &bundle, const std::string &name) {
    json m = read_json(bundle + "/manifest.json");
    m["files"][name]["sha256"] = tocoad::sha256_file_hex(bundle + "/" + name);
    m["files"][name]["bytes"] = fs::file_size(bundle + "/" + name);
    write_file(bundle + "/manifest.json", m.dump(2));
}

struct Opened {
    tocoad_status status;
    std::string error;
    bool out_untouched;
};

Opened open_with(const std::string &bundle, const tocoad_open_options *options = nullptr) {
    tocoad_detector *detector = reinterpret_cast<tocoad_detector *>(0x1);  // must stay untouched on failure
    tocoad_status status = tocoad_open(bundle.c_str(), options, &detector);
    Opened o{status, tocoad_last_error(), detector == reinterpret_cast<tocoad_detector *>(0x1)};
    if (status == TOCOAD_OK) tocoad_close(detector);
    return o;
}

void expect_bundle_error(const std::string &label, const Opened &o, const std::string &part) {
    CHECK_MSG(o.status == TOCOAD_ERR_BUNDLE, label + ": status " + std::to_string(o.status));
    CHECK_MSG(contains(o.error, part), label + ": message '" + o.error + "' lacks '" + part + "'");
    CHECK_MSG(o.out_untouched, label + ": out written on failure");
}

void test_bundles() {
    tocoad_detector *d = nullptr;
    CHECK(tocoad_open(nullptr, nullptr, &d) == TOCOAD_ERR_INVALID_ARGUMENT && contains(tocoad_last_error(), "bundle_dir is NULL"));
    CHECK(tocoad_open(fixture_bundle.c_str(), nullptr, nullptr) == TOCOAD_ERR_INVALID_ARGUMENT);

    expect_bundle_error("missing folder", open_with(scratch_root + "/does-not-exist"), "bundle folder not found");
    fs::create_directories(scratch_root + "/empty");
    expect_bundle_error("no manifest", open_with(scratch_root + "/empty"), "no manifest.json");

    std::string b = copy_bundle();
    write_file(b + "/manifest.json", "{\"schema_version\": 1, ");
    expect_bundle_error("broken manifest", open_with(b), "not valid JSON");

    b = copy_bundle();
    {
        std::fstream f(b + "/coreset.npy", std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(200);
        f.put('\x7f');
    }
    Opened tampered = open_with(b);
    expect_bundle_error("tampered coreset", tampered, "coreset.npy fails its sha256 check");
    CHECK(contains(tampered.error, "expected: ") && contains(tampered.error, "got: ") && contains(tampered.error, "fix: "));

    b = copy_bundle();
    fs::resize_file(b + "/index.hnsw", fs::file_size(b + "/index.hnsw") - 10);
    expect_bundle_error("truncated index", open_with(b), "index.hnsw has the wrong size");

    b = copy_bundle();  // the default bundle's projected index: its projection file is hashed like every file
    {
        std::fstream f(b + "/search_projection.npy", std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(300);
        f.put('\x7f');
    }
    expect_bundle_error("tampered projection", open_with(b), "search_projection.npy fails its sha256 check");

    b = copy_bundle();  // a consistent bundle whose projection has lost its bias row
    {
        const std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (384, 32), }";
        std::string npy = std::string("\x93NUMPY\x01\x00", 8);
        std::string padded = header + std::string(128 - 10 - header.size() - 1, ' ') + "\n";
        npy += static_cast<char>(padded.size() & 0xff);
        npy += static_cast<char>(padded.size() >> 8);
        npy += padded + std::string(384 * 32 * 4, '\0');
        write_file(b + "/search_projection.npy", npy);
        rehash(b, "search_projection.npy");
    }
    expect_bundle_error("projection without bias row", open_with(b), "search_projection.npy does not match");

    b = copy_bundle();
    fs::remove(b + "/backbone.onnx");
    expect_bundle_error("missing model", open_with(b), "bundle file missing");

    b = copy_bundle();  // a pickled object array in place of the coreset, with a matching sha256
    {
        const std::string header = "{'descr': '|O', 'fortran_order': False, 'shape': (1, 1), }";
        std::string h = header;
        while ((10 + h.size() + 1) % 64 != 0) h += ' ';
        h += '\n';
        std::string bytes = std::string("\x93NUMPY\x01\x00", 8) + static_cast<char>(h.size()) + '\0' + h + "\x80\x04N.";
        write_file(b + "/coreset.npy", bytes);
        rehash(b, "coreset.npy");
    }
    expect_bundle_error("pickled coreset", open_with(b), "pickle");

    b = copy_bundle();  // a manifest naming a file outside the bundle
    {
        json m = read_json(b + "/manifest.json");
        m["files"]["../escape.npy"] = m["files"]["coreset.npy"];
        write_file(b + "/manifest.json", m.dump(2));
    }
    expect_bundle_error("path traversal", open_with(b), "outside the bundle");

    b = copy_bundle();  // a tiling the Python runtime would refuse too (overlap above 0.75)
    {
        json m = read_json(b + "/manifest.json");
        m["input"]["tiling"] = {{"overlap", 0.9}, {"scale", 1.0}, {"combine", "mean"}};
        write_file(b + "/manifest.json", m.dump(2));
    }
    Opened tiled = open_with(b);
    expect_bundle_error("tiling overlap", tiled, "key 'input.tiling.overlap' is out of range");
    CHECK(contains(tiled.error, "expected: a number in [0, 0.75]"));

    b = copy_bundle();  // a bundle without an HNSW index
    {
        json m = read_json(b + "/manifest.json");
        m["memory_bank"].erase("index");
        m["files"].erase("index.hnsw");
        write_file(b + "/manifest.json", m.dump(2));
    }
    tocoad_open_options o;
    tocoad_open_options_init(&o);
    o.backend = TOCOAD_BACKEND_CPU;
    o.search = TOCOAD_SEARCH_HNSW;
    expect_bundle_error("hnsw without index", open_with(b, &o), "no hnswlib index");
    o.search = TOCOAD_SEARCH_REFINED;
    expect_bundle_error("refined without index", open_with(b, &o), "no hnswlib index");
    o.search = TOCOAD_SEARCH_AUTO;
    tocoad_detector *exact = nullptr;
    CHECK(tocoad_open(b.c_str(), &o, &exact) == TOCOAD_OK);
    CHECK(exact && std::string(tocoad_search_name(exact)) == "exact");
    tocoad_close(exact);

    tocoad_open_options_init(&o);
    o.precision = TOCOAD_PRECISION_INT8;
    expect_bundle_error("no int8 model", open_with(fixture_bundle, &o), "no int8 model");

    b = copy_bundle();  // a bundle with an INT8 model: the CPU backend refuses it before OpenCV tries to import it
    {
        json m = read_json(b + "/manifest.json");
        m["models"]["int8"] = m["models"]["fp32"];
        m["models"]["int8"]["precision"] = "int8";
        write_file(b + "/manifest.json", m.dump(2));
    }
    for (tocoad_backend backend : {TOCOAD_BACKEND_CPU, TOCOAD_BACKEND_AUTO}) {
        tocoad_open_options_init(&o);
        o.backend = backend;
        o.precision = TOCOAD_PRECISION_INT8;
        Opened int8 = open_with(b, &o);
        CHECK_MSG(int8.status == TOCOAD_ERR_BACKEND_UNAVAILABLE, int8.error);
        CHECK_MSG(contains(int8.error, "does not run INT8 models") && contains(int8.error, "TOCOAD_PRECISION_FP32") &&
                      contains(int8.error, "tocoad-export engine"), int8.error);
        CHECK(int8.out_untouched);
    }
    tocoad_open_options_init(&o);
    o.backend = TOCOAD_BACKEND_CPU;
    tocoad_detector *fp32 = nullptr;      // the same bundle's FP32 model still opens
    CHECK(tocoad_open(b.c_str(), &o, &fp32) == TOCOAD_OK && fp32 != nullptr);
    tocoad_close(fp32);

    tocoad_open_options_init(&o);
    o.backend = TOCOAD_BACKEND_TENSORRT;
    Opened trt = open_with(fixture_bundle, &o);
    CHECK_MSG(trt.status == TOCOAD_ERR_BACKEND_UNAVAILABLE || trt.status == TOCOAD_ERR_ENGINE_INCOMPATIBLE, trt.error);
    CHECK(!trt.error.empty() && trt.out_untouched);

    // engines.json (engines built on the device): merged only for a TensorRT backend, checked against the
    // manifest, and the engine hashed with every other file before anything loads
    auto with_record = [&](const std::string &onnx_sha) {
        const std::string bundle = copy_bundle();
        const std::string engine = "backbone.0123456789abcdef.engine";
        write_file(bundle + "/" + engine, std::string(4096, 'E'));
        json m = read_json(bundle + "/manifest.json");
        json fp = {{"file", engine}, {"tensorrt_version", "10.3.0"}, {"gpu_name", "Orin"},
                   {"compute_capability", "8.7"}, {"precision", "fp16"},
                   {"input_shape", {1, m["input"]["height"], m["input"]["width"], 3}},
                   {"onnx_sha256", onnx_sha.empty() ? m["files"]["backbone.onnx"]["sha256"].get<std::string>() : onnx_sha},
                   {"dla_core", nullptr}, {"batch_profile", nullptr}};
        json record = {{"schema_version", 1}, {"model_id", m["model_id"]},
                       {"engines", {{{"fingerprint", fp}, {"sha256", tocoad::sha256_file_hex(bundle + "/" + engine)},
                                     {"bytes", 4096}}}}};
        write_file(bundle + "/engines.json", record.dump(2));
        return std::make_pair(bundle, bundle + "/" + engine);
    };
    tocoad_open_options_init(&o);
    o.backend = TOCOAD_BACKEND_TENSORRT;
    auto [good, good_engine] = with_record("");
    trt = open_with(good, &o);  // record accepted; then the fingerprint or the missing TensorRT stops it
    CHECK_MSG(trt.status == TOCOAD_ERR_BACKEND_UNAVAILABLE || trt.status == TOCOAD_ERR_ENGINE_INCOMPATIBLE, trt.error);
    write_file(good_engine, std::string(4096, 'X'));  // same size, other bytes
    expect_bundle_error("engine tampered", open_with(good, &o), "sha256");
    const std::string foreign = with_record(std::string(64, 'b')).first;
    expect_bundle_error("engine of another model", open_with(foreign, &o), "ONNX model this bundle does not have");
    if (!tocoad::tensorrt_compiled_in()) {  // auto without TensorRT: the ONNX model serves, the record is not read
        o.backend = TOCOAD_BACKEND_AUTO;
        CHECK_MSG(open_with(foreign, &o).status == TOCOAD_OK, "auto must serve with the ONNX model");
    }

    tocoad_open_options_init(&o);
    o.struct_size = 3;
    CHECK(open_with(fixture_bundle, &o).status == TOCOAD_ERR_INVALID_ARGUMENT);
    tocoad_open_options_init(&o);
    o.backend = 7;
    Opened bad_enum = open_with(fixture_bundle, &o);
    CHECK(bad_enum.status == TOCOAD_ERR_INVALID_ARGUMENT && contains(bad_enum.error, "unknown backend"));
    tocoad_open_options_init(&o);
    o.search = 4;
    Opened bad_search = open_with(fixture_bundle, &o);
    CHECK(bad_search.status == TOCOAD_ERR_INVALID_ARGUMENT && contains(bad_search.error, "unknown search") &&
          contains(bad_search.error, "_REFINED") && contains(bad_search.error, "got: 4"));
    tocoad_open_options_init(&o);
    o.threads = -2;
    CHECK(open_with(fixture_bundle, &o).status == TOCOAD_ERR_INVALID_ARGUMENT);
}

void test_frames(const support::Frame &frame) {
    tocoad_detector *d = support::open_or_null(fixture_bundle);
    CHECK(d != nullptr);
    if (!d) return;
    const support::Scored good = support::infer(d, frame);
    CHECK(good.status == TOCOAD_OK);

    tocoad_result *r = reinterpret_cast<tocoad_result *>(0x1);
    CHECK(tocoad_infer(d, nullptr, frame.width, frame.height, frame.stride(), frame.format, &r) == TOCOAD_ERR_INVALID_ARGUMENT);
    CHECK(contains(tocoad_last_error(), "pixels is NULL") && r == reinterpret_cast<tocoad_result *>(0x1));
    CHECK(tocoad_infer(d, frame.pixels.data(), frame.width, frame.height, frame.width, TOCOAD_PIXEL_BGR8, &r) == TOCOAD_ERR_INPUT);
    const std::string stride_error = tocoad_last_error();
    CHECK_MSG(contains(stride_error, "stride") && contains(stride_error, "expected: >= " + std::to_string(frame.width * 3)), stride_error);
    CHECK(tocoad_infer(d, frame.pixels.data(), frame.width, frame.height, frame.stride(), 9, &r) == TOCOAD_ERR_INPUT);
    CHECK(contains(tocoad_last_error(), "unknown pixel format"));
    CHECK(tocoad_infer(d, frame.pixels.data(), 4, 4, 12, TOCOAD_PIXEL_BGR8, &r) == TOCOAD_ERR_INPUT);
    CHECK(contains(tocoad_last_error(), "frame size out of range"));
    CHECK(tocoad_infer(d, frame.pixels.data(), -5, frame.height, frame.stride(), TOCOAD_PIXEL_BGR8, &r) == TOCOAD_ERR_INPUT);
    CHECK(tocoad_infer(nullptr, frame.pixels.data(), frame.width, frame.height, frame.stride(), frame.format, &r) == TOCOAD_ERR_INVALID_ARGUMENT);
    CHECK(tocoad_infer(d, frame.pixels.data(), frame.width, frame.height, frame.stride(), frame.format, nullptr) == TOCOAD_ERR_INVALID_ARGUMENT);
    CHECK(r == reinterpret_cast<tocoad_result *>(0x1));

    // Nothing was lost: the handle still scores, identically.
    const support::Scored again = support::infer(d, frame);
    CHECK(again.status == TOCOAD_OK && again.score == good.score && again.map == good.map);

    tocoad_result *result = nullptr;
    CHECK(tocoad_infer(d, frame.pixels.data(), frame.width, frame.height, frame.stride(), frame.format, &result) == TOCOAD_OK);
    std::vector<float> small(10), full(good.map.size());
    CHECK(tocoad_result_copy_map(result, small.data(), small.size()) == TOCOAD_ERR_INVALID_ARGUMENT);
    CHECK(contains(tocoad_last_error(), "too small"));
    CHECK(tocoad_result_copy_map(result, full.data(), full.size()) == TOCOAD_OK && full == good.map);
    CHECK(tocoad_result_scores(nullptr, nullptr, nullptr, nullptr) == TOCOAD_ERR_INVALID_ARGUMENT);
    CHECK(tocoad_result_scores(result, nullptr, nullptr, nullptr) == TOCOAD_OK);
    CHECK(tocoad_result_map(result, nullptr, nullptr, nullptr) == TOCOAD_ERR_INVALID_ARGUMENT);
    CHECK(tocoad_result_decision(nullptr) == nullptr);
    int32_t w = 0, h = 0;
    CHECK(tocoad_input_size(d, &w, &h) == TOCOAD_OK && w == 64 && h == 64);
    CHECK(tocoad_input_size(nullptr, &w, &h) == TOCOAD_ERR_INVALID_ARGUMENT);
    CHECK(tocoad_backend_name(nullptr) == nullptr && tocoad_search_name(nullptr) == nullptr);
    tocoad_result_free(result);
    tocoad_result_free(nullptr);
    tocoad_close(d);
    tocoad_close(nullptr);
}

void test_last_error_is_per_thread() {
    tocoad_detector *d = nullptr;
    CHECK(tocoad_open("/does/not/exist", nullptr, &d) == TOCOAD_ERR_BUNDLE);
    const std::string mine = tocoad_last_error();
    std::string theirs_before, theirs_after;
    std::thread t([&] {
        theirs_before = tocoad_last_error();
        tocoad_open(nullptr, nullptr, nullptr);
        theirs_after = tocoad_last_error();
    });
    t.join();
    CHECK(theirs_before.empty());
    CHECK(contains(theirs_after, "is NULL"));
    CHECK(std::string(tocoad_last_error()) == mine && contains(mine, "bundle folder not found"));
    CHECK(std::string(tocoad_version()).size() >= 5);
}

}  // namespace

int main(int argc, char **argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s <parity fixture folder> <scratch folder>\n", argv[0]);
        return 2;
    }
    fixture_bundle = std::string(argv[1]) + "/bundle";
    scratch_root = argv[2];
    fs::remove_all(scratch_root);
    fs::create_directories(scratch_root);
    test_bundles();
    test_frames(support::rgb_to_bgr(support::read_pnm(std::string(argv[1]) + "/frames/good_96x96.ppm")));
    test_last_error_is_per_thread();
    fs::remove_all(scratch_root);
    return check::finish("test_errors");
}
