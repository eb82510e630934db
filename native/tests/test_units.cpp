// Unit tests of the library's parts, on small inputs built here: sha256, .npy, manifest, bundle paths,
// kernel size, protobuf rewriting of ONNX for OpenCV.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "anomaly_map.hpp"
#include "bundle_files.hpp"
#include "check.hpp"
#include "engine_bindings.hpp"
#include "engine_fingerprint.hpp"
#include "engine_record.hpp"
#include "error.hpp"
#include "manifest.hpp"
#include "npy.hpp"
#include "onnx_opencv_compat.hpp"
#include "protobuf_wire.hpp"
#include "refine.hpp"
#include "search.hpp"
#include "sha256.hpp"
#include "tiling.hpp"

namespace {

template <typename F>
std::string error_of(F &&f, tocoad_status *status = nullptr) {
    try {
        f();
    } catch (const tocoad::Error &e) {
        if (status) *status = e.status();
        return e.what();
    }
    return "";
}

bool contains(const std::string &s, const std::string &part) { return s.find(part) != std::string::npos; }

std::vector<uint8_t> npy(const std::string &dict, const std::vector<uint8_t> &data) {
    std::string header = dict;
    while ((10 + header.size() + 1) % 64 != 0) header += ' ';
    header += '\n';
    std::vector<uint8_t> out = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, static_cast<uint8_t>(header.size() & 0xff),
                                static_cast<uint8_t>(header.size() >> 8)};
    out.insert(out.end(), header.begin(), header.end());
    out.insert(out.end(), data.begin(), data.end());
    return out;
}

std::vector<uint8_t> floats(const std::vector<float> &v) {
    std::vector<uint8_t> out(v.size() * 4);
    std::memcpy(out.data(), v.data(), out.size());
    return out;
}

void test_sha256() {
    CHECK(tocoad::sha256_hex("abc", 3) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(tocoad::sha256_hex("", 0) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    tocoad_status status = TOCOAD_OK;
    CHECK(contains(error_of([] { tocoad::sha256_file_hex("/nonexistent/file"); }, &status), "cannot open"));
    CHECK(status == TOCOAD_ERR_RESOURCE);
}

void test_npy() {
    auto m = tocoad::parse_npy(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", floats({1, 2, 3, 4, 5, 6})), "a.npy");
    CHECK(m.rows == 2 && m.cols == 3 && m.data.size() == 6 && m.data[5] == 6.0f && m.source_dtype == "float32");

    // float16: 1.0, -2.0, 0.5, 65504 (max), smallest subnormal 2^-24
    std::vector<uint8_t> half = {0x00, 0x3c, 0x00, 0xc0, 0x00, 0x38, 0xff, 0x7b, 0x01, 0x00, 0x00, 0x00};
    auto h = tocoad::parse_npy(npy("{'descr': '<f2', 'fortran_order': False, 'shape': (3, 2), }", half), "h.npy");
    CHECK(h.source_dtype == "float16" && h.rows == 3 && h.cols == 2);
    CHECK(h.data[0] == 1.0f && h.data[1] == -2.0f && h.data[2] == 0.5f && h.data[3] == 65504.0f);
    CHECK(h.data[4] == 5.9604644775390625e-08f && h.data[5] == 0.0f);

    tocoad_status status = TOCOAD_OK;
    auto e = error_of([] { tocoad::parse_npy(npy("{'descr': '|O', 'fortran_order': False, 'shape': (1, 1), }", {0, 0, 0, 0, 0, 0, 0, 0}), "o.npy"); }, &status);
    CHECK(contains(e, "pickle") && contains(e, "o.npy") && status == TOCOAD_ERR_BUNDLE);
    CHECK(contains(error_of([] { tocoad::parse_npy(npy("{'descr': '<f4', 'fortran_order': True, 'shape': (1, 2), }", floats({1, 2})), "f.npy"); }), "Fortran"));
    CHECK(contains(error_of([] { tocoad::parse_npy(npy("{'descr': '>f4', 'fortran_order': False, 'shape': (1, 2), }", floats({1, 2})), "b.npy"); }), "unsupported dtype"));
    CHECK(contains(error_of([] { tocoad::parse_npy(npy("{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1), }", {0, 0, 0, 0, 0, 0, 0, 0}), "d.npy"); }), "unsupported dtype"));
    CHECK(contains(error_of([] { tocoad::parse_npy(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 2), }", floats({1, 2, 3, 4})), "3d.npy"); }), "not a 2-D"));
    CHECK(contains(error_of([] { tocoad::parse_npy(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", floats({1, 2, 3})), "t.npy"); }), "truncated"));
    CHECK(contains(error_of([] { tocoad::parse_npy(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1), }", floats({1, 2})), "x.npy"); }), "trailing"));
    CHECK(contains(error_of([] { tocoad::parse_npy(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999, 99999999999), }", floats({1})), "big.npy"); }), "big.npy"));
    CHECK(contains(error_of([] { tocoad::parse_npy({'P', 'K', 3, 4, 0, 0, 0, 0, 0, 0, 0}, "zip.npy"); }), "not a .npy"));
}

std::string manifest_json(const std::string &input_extra = "", const std::string &schema = "1") {
    return R"({"schema_version": )" + schema + R"(, "model_id": "m", "created_by": "test",
      "input": {"height": 64, "width": 48)" + input_extra + R"(},
      "features": {"backbone": "b", "layers": ["l"], "aggregation": 3, "stride": 8, "grid": [8, 6], "dim": 4},
      "models": {"fp32": {"file": "backbone.onnx"}},
      "memory_bank": {"file": "coreset.npy", "entries": 10, "dim": 4,
                      "index": {"file": "index.hnsw", "ef": 32}},
      "scoring": {"gaussian_sigma": 2.0, "image_threshold": 3.0, "normalization_scale": 3.0},
      "files": {"coreset.npy": {"sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "bytes": 0}},
      "versions": {"torch": "x"}, "calibration": {}, "search": {}, "training": {}})";
}

void test_manifest() {
    auto m = tocoad::parse_manifest(manifest_json(), "manifest.json");
    CHECK(m.input.height == 64 && m.input.width == 48 && m.input.color == "BGR");
    CHECK(m.features.grid_h == 8 && m.features.grid_w == 6 && m.features.dim == 4);
    CHECK(m.memory_bank.index && m.memory_bank.index->ef == 32 && m.memory_bank.index->M == 16);
    CHECK(m.scoring.normalization_scale == 3.0 && m.scoring.normalization_offset == 0.0);
    CHECK(m.models.at("fp32").input_name == "image" && m.files.size() == 1);

    auto e = error_of([] { tocoad::parse_manifest(manifest_json(R"(, "colour": "BGR")"), "manifest.json"); });
    CHECK(contains(e, "unknown key 'input.colour'") && contains(e, "expected: one of"));
    CHECK(contains(error_of([] { tocoad::parse_manifest(manifest_json(R"(, "color": "RGB")"), "m.json"); }), "input.color"));
    CHECK(contains(error_of([] { tocoad::parse_manifest(manifest_json(R"(, "channels": "3")"), "m.json"); }), "must be an integer"));
    CHECK(contains(error_of([] { tocoad::parse_manifest(manifest_json("", "3"), "m.json"); }), "unsupported schema version"));
    CHECK(tocoad::parse_manifest(manifest_json("", "2"), "m.json").schema_version == 2);  // 1 and 2 read
    CHECK(m.search.ef_per_precision.empty() && m.search.ef_tuning.empty());   // "search": {} (older bundles)
    std::string tuned = manifest_json();
    tuned.replace(tuned.find(R"("search": {})"), 12,
                  R"("search": {"ef_per_precision": {"fp32": 48, "int8": "16"},
                     "ef_tuning": {"fp32": [{"ef": 16, "recall_at_1": 0.93, "mean_distance_rel_error": 0.004},
                                            "junk", {"ef": -2}, {"ef": 32}], "int8": 7}})");
    auto tm = tocoad::parse_manifest(tuned, "m.json");   // read leniently, like runtime/detector.py: bad entries skipped
    CHECK(tm.search.ef_per_precision.size() == 1 && tm.search.ef_per_precision.at("fp32") == 48);
    CHECK(tm.search.ef_tuning.size() == 1 && tm.search.ef_tuning.at("fp32").size() == 2);
    const auto &row = tm.search.ef_tuning.at("fp32")[0];
    CHECK(row.ef == 16 && row.recall_at_1 == 0.93 && row.mean_distance_rel_error == 0.004);
    CHECK(tm.search.ef_tuning.at("fp32")[1].ef == 32 && tm.search.ef_tuning.at("fp32")[1].mean_distance_rel_error == 1.0);
    std::string projected = manifest_json("", "2");
    projected.replace(projected.find(R"("ef": 32})"), 9,
                      R"("ef": 32, "kind": "projected_hnsw", "projection": "p.npy", "dims": 3, "candidates": 4})");
    auto pm = tocoad::parse_manifest(projected, "m.json");
    CHECK(pm.memory_bank.index->kind == "projected_hnsw" && pm.memory_bank.index->projection == "p.npy" &&
          pm.memory_bank.index->dims == 3 && pm.memory_bank.index->candidates == 4);
    CHECK(pm.memory_bank.index->lend == 0);   // absent: no lending, as in bundles from before it
    const std::string last_key = R"("candidates": 4})";
    std::string lending = projected;
    lending.replace(lending.find(last_key), last_key.size(), R"("candidates": 4, "lend": 2})");
    CHECK(tocoad::parse_manifest(lending, "m.json").memory_bank.index->lend == 2);
    std::string lends_too_much = projected;
    lends_too_much.replace(lends_too_much.find(last_key), last_key.size(), R"("candidates": 4, "lend": 5})");
    const std::string too_much = error_of([&] { tocoad::parse_manifest(lends_too_much, "m.json"); });
    CHECK(contains(too_much, "memory_bank.index.lend") && contains(too_much, "0 .. candidates (4)"));
    std::string no_dims = projected;
    no_dims.replace(no_dims.find(R"("dims": 3, )"), 11, "");
    CHECK(contains(error_of([&] { tocoad::parse_manifest(no_dims, "m.json"); }), "memory_bank.index.dims"));
    CHECK(contains(error_of([] { tocoad::parse_manifest("{not json", "m.json"); }), "not valid JSON"));
    CHECK(contains(error_of([] { tocoad::parse_manifest("[1, 2]", "m.json"); }), "not a JSON object"));
    std::string no_files = manifest_json();
    no_files.replace(no_files.find("\"files\""), 7, "\"filez\"");
    CHECK(contains(error_of([&] { tocoad::parse_manifest(no_files, "m.json"); }), "unknown key 'filez'"));
    std::string bad_sha = manifest_json();
    bad_sha.replace(bad_sha.find("e3b0c442"), 8, "E3B0C442");
    CHECK(contains(error_of([&] { tocoad::parse_manifest(bad_sha, "m.json"); }), "files.coreset.npy.sha256"));
    std::string bad_dim = manifest_json();
    bad_dim.replace(bad_dim.find("\"dim\": 4,"), 9, "\"dim\": 5,");
    CHECK(contains(error_of([&] { tocoad::parse_manifest(bad_dim, "m.json"); }), "memory_bank.dim differs"));
    std::string nan_sigma = manifest_json();
    nan_sigma.replace(nan_sigma.find("2.0"), 3, "-1.0");
    CHECK(contains(error_of([&] { tocoad::parse_manifest(nan_sigma, "m.json"); }), "gaussian_sigma"));
}

void test_member_paths() {
    CHECK(contains(error_of([] { tocoad::safe_member_path("/tmp", "../etc/passwd"); }), "outside the bundle"));
    CHECK(contains(error_of([] { tocoad::safe_member_path("/tmp", "/etc/passwd"); }), "outside the bundle"));
    CHECK(contains(error_of([] { tocoad::safe_member_path("/tmp", " "); }), "outside the bundle"));
    CHECK(tocoad::safe_member_path("/tmp", "coreset.npy") == "/tmp/coreset.npy");
}

void test_kernel_size() {
    CHECK(tocoad::gaussian_kernel_size(4.0) == 33);
    CHECK(tocoad::gaussian_kernel_size(2.0) == 17);
    CHECK(tocoad::gaussian_kernel_size(0.625) == 5);  // round(2.5) == 2 in Python
    CHECK(tocoad::gaussian_kernel_size(0.875) == 9);  // round(3.5) == 4
}

// The grid rule of tocoad_edge/runtime/tiling.py (tests/runtime/test_tiling.py checks the same cases).
void test_tile_grid() {
    CHECK(tocoad::overlap_pixels(224, 0.25) == 56 && tocoad::overlap_pixels(224, 0.3) == 68);
    CHECK(tocoad::overlap_pixels(10, 0.3) == 3);
    CHECK((tocoad::axis_starts(100, 64, 0.25) == std::vector<int>{0, 36}));
    CHECK((tocoad::axis_starts(41, 64, 0.25) == std::vector<int>{0}));
    tocoad::TilingSpec spec;
    spec.scale = 0.5;
    const auto l = tocoad::tile_layout(cv::Size(601, 1000), cv::Size(224, 224), spec);
    CHECK(l.scaled == cv::Size(301, 500));
    CHECK((l.ys == std::vector<int>{0, 138, 276}) && (l.xs == std::vector<int>{0, 77}) && l.count() == 6);
    CHECK(l.origin(2) == cv::Point(0, 138));
}

std::string tensor_int64(const std::string &name, const std::vector<int64_t> &values) {
    namespace w = tocoad::wire;
    std::string t;
    w::put_uint(t, 1, values.size());  // dims
    w::put_uint(t, 2, 7);              // INT64
    w::put_bytes(t, 8, name);
    std::string raw(values.size() * 8, '\0');
    std::memcpy(raw.data(), values.data(), raw.size());
    w::put_bytes(t, 9, raw);
    return t;
}

std::string tensor_float_scalar(const std::string &name, float v) {
    namespace w = tocoad::wire;
    std::string t;
    w::put_uint(t, 2, 1);  // FLOAT, no dims: a scalar
    w::put_bytes(t, 8, name);
    w::put_bytes(t, 9, std::string(reinterpret_cast<const char *>(&v), 4));
    return t;
}

std::string node(const std::vector<std::string> &in, const std::vector<std::string> &out, const std::string &op) {
    namespace w = tocoad::wire;
    std::string n;
    for (const auto &s : in) w::put_bytes(n, 1, s);
    for (const auto &s : out) w::put_bytes(n, 2, s);
    w::put_bytes(n, 3, op + "_node");
    w::put_bytes(n, 4, op);
    return n;
}

void test_onnx_rewrite() {
    namespace w = tocoad::wire;
    std::string graph;
    w::put_bytes(graph, 1, node({"image", "rgb_index"}, {"rgb"}, "Gather"));
    w::put_bytes(graph, 1, node({"rgb", "lo", "hi"}, {"clipped"}, "Clip"));
    w::put_bytes(graph, 1, node({"clipped", "pads", ""}, {"padded"}, "Pad"));
    w::put_bytes(graph, 5, tensor_int64("rgb_index", {2, 1, 0}));
    w::put_bytes(graph, 5, tensor_float_scalar("lo", 0.0f));
    w::put_bytes(graph, 5, tensor_float_scalar("hi", 6.0f));
    std::string model;
    w::put_uint(model, 1, 8);
    w::put_bytes(model, 2, "pytorch");
    w::put_bytes(model, 7, graph);

    tocoad::CompatReport report;
    const std::string out = tocoad::opencv_compatible_onnx(model, &report);
    CHECK(report.renamed_producer == 1 && report.clips == 1 && report.gathers == 1 && report.dropped_empty_inputs == 1);
    std::vector<std::string> ops;
    int initializers = 0;
    std::string producer;
    for (const auto &f : w::parse(out)) {
        if (f.number == 2) producer = std::string(f.payload);
        if (f.number != 7) continue;
        for (const auto &g : w::parse(f.payload)) {
            if (g.number == 5) ++initializers;
            if (g.number != 1) continue;
            std::string op;
            int inputs = 0, attributes = 0;
            for (const auto &n : w::parse(g.payload)) {
                if (n.number == 4) op = std::string(n.payload);
                if (n.number == 1) ++inputs;
                if (n.number == 5) ++attributes;
            }
            ops.push_back(op + "/" + std::to_string(inputs) + "/" + std::to_string(attributes));
        }
    }
    CHECK(producer == "tocoad-edge");
    const std::vector<std::string> expected = {"Slice/4/0", "Slice/4/0", "Slice/4/0", "Concat/3/1", "Clip/1/2", "Pad/2/0"};
    CHECK_MSG(ops == expected, ops.empty() ? "no nodes" : ops[0]);
    CHECK(initializers == 3 + 9);
    CHECK(contains(error_of([] { tocoad::opencv_compatible_onnx(std::string("\x3a\xff\xff\xff\x0f", 5)); }), "not a valid protobuf"));
}

void test_engine_fingerprint() {
    CHECK(tocoad::tensorrt_version_string(8601) == "8.6.1");
    CHECK(tocoad::tensorrt_version_string(100300) == "10.3.0");
    CHECK(tocoad::same_tensorrt_version("8.6.1.6", "8.6.1") && !tocoad::same_tensorrt_version("8.6.2", "8.6.1"));
    CHECK(!tocoad::same_tensorrt_version("", ""));

    tocoad::Manifest m = tocoad::parse_manifest(manifest_json(), "manifest.json");
    const std::string sha(64, 'a');
    m.files["backbone.onnx"] = {sha, 10};
    const tocoad::DeviceInfo orin{"Orin", "8.7", "8.6.2"};
    auto engine = [&](const std::string &file, const std::string &precision, const std::string &trt,
                      const std::string &gpu, const std::string &cc, const std::string &onnx) {
        tocoad::EngineFingerprint e;
        e.file = file;
        e.precision = precision;
        e.tensorrt_version = trt;
        e.gpu_name = gpu;
        e.compute_capability = cc;
        e.onnx_sha256 = onnx;
        e.input_shape = {1, 64, 48, 3};
        return e;
    };
    tocoad_status status = TOCOAD_OK;
    auto e = error_of([&] { tocoad::matching_engine(m, "fp32", orin); }, &status);
    CHECK(status == TOCOAD_ERR_ENGINE_INCOMPATIBLE && contains(e, "no engines in the manifest"));

    m.engines = {engine("a.engine", "fp16", "8.5.2", "Orin", "8.7", sha),             // other TensorRT
                 engine("b.engine", "fp16", "8.6.2.3", "Xavier", "7.2", sha),        // other GPU
                 engine("c.engine", "fp16", "8.6.2", "Orin", "8.7", std::string(64, 'b'))};  // other model
    e = error_of([&] { tocoad::matching_engine(m, "fp32", orin); }, &status);
    CHECK(status == TOCOAD_ERR_ENGINE_INCOMPATIBLE && contains(e, "a.engine (TensorRT 8.5.2") &&
          contains(e, "b.engine") && contains(e, "TensorRT 8.6.2, Orin, sm 8.7") && contains(e, "fix: build the engine"));

    m.engines.push_back(engine("d.engine", "fp16", "8.6.2.3", "Orin", "8.7", sha));
    CHECK(tocoad::matching_engine(m, "fp32", orin).file == "d.engine");
    m.engines.push_back(engine("e.engine", "fp32", "8.6.2", "Orin", "8.7", sha));
    CHECK(tocoad::matching_engine(m, "fp32", orin).file == "e.engine");  // same precision preferred
    m.engines.back().input_shape = {1, 224, 224, 3};
    CHECK(tocoad::matching_engine(m, "fp32", orin).file == "d.engine");  // wrong input shape skipped
    CHECK(contains(error_of([&] { tocoad::matching_engine(m, "int8", orin); }), "no int8 model"));

    // dynamic batch: recorded as [-1, H, W, 3] with its profile, matched when batch 1 is within [min, max]
    m.engines = {engine("f.engine", "fp16", "8.6.2", "Orin", "8.7", sha)};
    m.engines[0].input_shape = {-1, 64, 48, 3};
    CHECK(contains(error_of([&] { tocoad::matching_engine(m, "fp32", orin); }), "f.engine"));  // no profile
    m.engines[0].batch_profile = {2, 4, 8};
    CHECK(contains(error_of([&] { tocoad::matching_engine(m, "fp32", orin); }), "-1x64x48x3 batch 2..8"));
    m.engines[0].batch_profile = {1, 1, 8};
    CHECK(tocoad::matching_engine(m, "fp32", orin).file == "f.engine");
    CHECK(tocoad::runs_input(m.engines[0], {64, 48, 3}, 8) && !tocoad::runs_input(m.engines[0], {64, 48, 3}, 9));
    CHECK(!tocoad::runs_input(m.engines[0], {48, 64, 3}, 1));
    m.engines[0].input_shape = {2, 64, 48, 3};
    m.engines[0].batch_profile.clear();
    CHECK(!tocoad::runs_input(m.engines[0], {64, 48, 3}, 1) && tocoad::runs_input(m.engines[0], {64, 48, 3}, 2));
}

std::string record_json(const std::string &model_id, const std::string &file, const std::string &onnx_sha,
                        const std::string &profile = "null") {
    return R"({"schema_version": 1, "model_id": ")" + model_id + R"(", "engines": [{"fingerprint": {"file": ")" +
           file + R"(", "tensorrt_version": "10.3.0", "gpu_name": "Orin", "compute_capability": "8.7",
           "precision": "fp16", "input_shape": [-1, 64, 48, 3], "onnx_sha256": ")" + onnx_sha +
           R"(", "dla_core": null, "batch_profile": )" + profile + R"(}, "sha256": ")" + std::string(64, 'c') +
           R"(", "bytes": 123}]})";
}

void test_engine_record() {
    tocoad::Manifest m = tocoad::parse_manifest(manifest_json(), "manifest.json");
    const std::string sha(64, 'a');
    m.files["backbone.onnx"] = {sha, 10};
    const tocoad::DeviceInfo orin{"Orin", "8.7", "10.3.0"};

    auto rec = tocoad::parse_engine_record(record_json("m", "x.engine", sha, "[1, 1, 8]"), "engines.json");
    CHECK(rec.engines.size() == 1 && rec.engines[0].fingerprint.batch_profile == std::vector<int64_t>({1, 1, 8}));
    CHECK(rec.engines[0].file.bytes == 123);
    tocoad::merge_engine_record(m, rec, "engines.json");
    CHECK(m.files.at("x.engine").sha256 == std::string(64, 'c'));      // hashed at open with every other file
    CHECK(tocoad::matching_engine(m, "fp32", orin).file == "x.engine");

    // records that do not belong to the bundle; the manifest is left unchanged
    const std::size_t files = m.files.size();
    tocoad_status status = TOCOAD_OK;
    auto refused = [&](const std::string &text, const std::string &part) {
        auto r = tocoad::parse_engine_record(text, "engines.json");
        const std::string e = error_of([&] { tocoad::merge_engine_record(m, r, "engines.json"); }, &status);
        CHECK_MSG(status == TOCOAD_ERR_BUNDLE && contains(e, part) && contains(e, "tocoad-export engine"), e);
        CHECK(m.files.size() == files && m.engines.size() == 1);
    };
    refused(record_json("other", "y.engine", sha), "another model");
    refused(record_json("m", "y.engine", std::string(64, 'b')), "ONNX model this bundle does not have");
    refused(record_json("m", "coreset.npy", sha), "not a free engine name");
    refused(record_json("m", "x.engine", sha), "not a free engine name");              // already merged
    CHECK(contains(error_of([&] { tocoad::parse_engine_record(record_json("m", "y", sha, "[1, 2]"), "engines.json"); }),
                   "batch_profile"));
    CHECK(contains(error_of([&] { tocoad::parse_engine_record(R"({"schema_version": 1, "model_id": "m",
        "engines": [], "extra": 1})", "engines.json"); }), "unknown key 'extra'"));
    CHECK(contains(error_of([&] { tocoad::parse_engine_record("{", "engines.json"); }), "not valid JSON"));
}

void test_engine_bindings() {
    using tocoad::TensorBinding;
    const std::vector<TensorBinding> allocated = {{"image", {1, 64, 48, 3}, "uint8"},
                                                  {"embeddings", {1, 48, 4}, "float32"}};
    tocoad::check_bindings("a.engine", allocated, allocated);  // equal: no error
    tocoad::check_bindings("a.engine", allocated, {allocated[1], allocated[0]});  // order does not matter
    tocoad_status status = TOCOAD_OK;
    auto refused = [&](std::vector<TensorBinding> engine_io, const std::string &part) {
        const std::string e = error_of([&] { tocoad::check_bindings("a.engine", allocated, engine_io); }, &status);
        CHECK_MSG(status == TOCOAD_ERR_ENGINE_INCOMPATIBLE && contains(e, part), e);
        CHECK_MSG(contains(e, "expected: image [1, 64, 48, 3] uint8, embeddings [1, 48, 4] float32") &&
                      contains(e, "fix: rebuild the engine"), e);
    };
    refused({allocated[0], {"embeddings", {1, 48, 8}, "float32"}}, "'embeddings' shape [1, 48, 8] != [1, 48, 4]");
    refused({allocated[0], {"embeddings", {1, 48, 4}, "float16"}}, "'embeddings' dtype float16 != float32");
    refused({{"image", {4, 64, 48, 3}, "uint8"}, allocated[1]}, "'image' shape [4, 64, 48, 3]");
    refused({allocated[0], {"features", {1, 48, 4}, "float32"}}, "no tensor 'embeddings'");
    refused({allocated[0], allocated[1], {"debug", {1}, "float32"}}, "unexpected tensor 'debug'");
    refused({}, "got: no tensors");
}

// An exact search that counts the queries it answers (the refined score's cost is how many patches it re-checks).
class CountingSearch final : public tocoad::NearestSearch {
public:
    explicit CountingSearch(std::unique_ptr<tocoad::NearestSearch> inner) : inner_(std::move(inner)) {}
    const char *name() const override { return "counting"; }
    void query(const float *queries, std::size_t n, float *out) const override {
        queries_ += n;
        inner_->query(queries, n, out);
    }
    mutable std::size_t queries_ = 0;

private:
    std::unique_ptr<tocoad::NearestSearch> inner_;
};

// A float32 bank of standard normal values.
std::shared_ptr<tocoad::Matrix> normal_bank(std::mt19937 &rng, std::size_t rows, std::size_t dim) {
    std::normal_distribution<float> normal(0.0f, 1.0f);
    auto bank = std::make_shared<tocoad::Matrix>();
    bank->rows = static_cast<int64_t>(rows);
    bank->cols = static_cast<int64_t>(dim);
    bank->source_dtype = "float32";
    for (std::size_t i = 0; i < rows * dim; ++i) bank->data.push_back(normal(rng));
    return bank;
}

// The refined image score equals the score of the fully exact distances (max and smoothed-max, one and two tiles),
// given any upper bounds of them; and with tight bounds it re-checks a few patches, not the frame.
void test_refined_score() {
    std::mt19937 rng(3);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::uniform_int_distribution<int> coin(0, 2);
    const std::size_t dim = 8, rows = 300;
    const auto bank = normal_bank(rng, rows, dim);
    const std::shared_ptr<const tocoad::Matrix> shared = bank;
    for (std::size_t tiles : {1u, 2u}) {
        for (const char *mode : {"max", "smoothed-max"}) {
            tocoad::ScoringSpec scoring;
            scoring.image_score = mode;
            scoring.gaussian_sigma = 4.0;       // at stride 8: sigma 0.5 patch, a 3 x 3 kernel
            const int grid_h = 6, grid_w = 5, stride = 8;
            const std::size_t n = tiles * grid_h * grid_w;
            for (int trial = 0; trial < 20; ++trial) {
                std::vector<float> embeddings(n * dim);
                for (float &v : embeddings) v = 1.5f * normal(rng);
                if (trial % 4 == 0)   // a "defect": a few neighbouring patches far from every bank row
                    for (std::size_t k : {7u, 8u, 12u})
                        for (std::size_t j = 0; j < dim; ++j) embeddings[k * dim + j] += 4.0f;
                std::vector<float> exact(n), upper(n);
                tocoad::make_exact_search(shared)->query(embeddings.data(), n, exact.data());
                for (std::size_t k = 0; k < n; ++k) {  // an upper bound: the distance to some row, often the nearest
                    const std::size_t r = static_cast<std::size_t>(rng() % rows);
                    const float any = std::sqrt(tocoad::squared_l2(embeddings.data() + k * dim, bank->data.data() + r * dim, dim));
                    upper[k] = coin(rng) == 0 ? any : exact[k];
                }
                CountingSearch counting(tocoad::make_exact_search(shared));
                const float got = tocoad::refined_image_score(embeddings.data(), dim, upper.data(), tiles, grid_h, grid_w,
                                                              stride, scoring, counting);
                const float want = tocoad::image_score(exact.data(), tiles, grid_h, grid_w, stride, scoring);
                CHECK_MSG(std::abs(got - want) <= 1e-6f * std::abs(want),
                          std::string(mode) + " tiles " + std::to_string(tiles) + ": refined " + std::to_string(got) +
                              " vs exact " + std::to_string(want));
                CHECK(counting.queries_ >= 1 && counting.queries_ <= n);
                CountingSearch tight(tocoad::make_exact_search(shared));   // bounds equal to the answers
                const float same = tocoad::refined_image_score(embeddings.data(), dim, exact.data(), tiles, grid_h,
                                                               grid_w, stride, scoring, tight);
                CHECK(std::abs(same - want) <= 1e-6f * std::abs(want));
                CHECK_MSG(tight.queries_ <= (scoring.image_score == "max" ? 5u : 3u * 9u),
                          std::string(mode) + ": tight bounds re-checked " + std::to_string(tight.queries_) + " patches");
            }
        }
    }
}

// The bounded search answers exactly what the exact search answers, bit for bit: small and wide banks (the bound
// keeps fewer dimensions than the bank has, or all but one), duplicate rows, queries on a bank row, far queries.
void test_bounded_exact_search() {
    std::mt19937 rng(5);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    struct Shape {
        std::size_t rows, dim, rank;
    };
    for (const Shape shape : {Shape{600, 40, 40}, Shape{2500, 160, 12}, Shape{64, 2, 2}, Shape{1, 16, 16}}) {
        auto bank = std::make_shared<tocoad::Matrix>();
        bank->rows = static_cast<int64_t>(shape.rows);
        bank->cols = static_cast<int64_t>(shape.dim);
        bank->source_dtype = "float32";
        std::vector<float> basis(shape.rank * shape.dim);
        for (float &v : basis) v = normal(rng);
        for (std::size_t r = 0; r < shape.rows; ++r) {      // a low-rank cloud plus noise: the bound prunes there
            std::vector<float> coef(shape.rank);
            for (float &c : coef) c = 3.0f * normal(rng);
            for (std::size_t k = 0; k < shape.dim; ++k) {
                float v = 0.1f * normal(rng) + 2.0f;
                for (std::size_t j = 0; j < shape.rank; ++j) v += coef[j] * basis[j * shape.dim + k];
                bank->data.push_back(v);
            }
        }
        if (shape.rows > 2)    // a duplicate row
            std::copy_n(bank->data.begin(), shape.dim, bank->data.begin() + static_cast<std::ptrdiff_t>(shape.dim));
        const std::shared_ptr<const tocoad::Matrix> shared = bank;
        const std::size_t n = 37;
        std::vector<float> queries(n * shape.dim);
        for (std::size_t i = 0; i < n; ++i)
            for (std::size_t k = 0; k < shape.dim; ++k) {
                const float row = bank->data[(i % shape.rows) * shape.dim + k];
                queries[i * shape.dim + k] = i % 3 == 0 ? row                          // on a bank row
                                             : i % 3 == 1 ? row + 0.3f * normal(rng)   // near one
                                                          : 25.0f * normal(rng);       // far from all
            }
        std::vector<float> exact(n), bounded(n);
        tocoad::make_exact_search(shared)->query(queries.data(), n, exact.data());
        tocoad::make_bounded_exact_search(shared)->query(queries.data(), n, bounded.data());
        for (std::size_t i = 0; i < n; ++i)
            CHECK_MSG(bounded[i] == exact[i], "bank " + std::to_string(shape.rows) + " x " + std::to_string(shape.dim) +
                                                  ", query " + std::to_string(i) + ": bounded " +
                                                  std::to_string(bounded[i]) + " vs exact " + std::to_string(exact[i]));
        CHECK(exact[0] == 0.0f);
    }
}

// A frame's map search split over threads gives the one-call answer bit for bit, whatever the number of parts
// (fewer queries than parts, uneven ranges); an exception in a worker's part reaches the caller.
void test_split_query() {
    std::mt19937 rng(11);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    const std::size_t dim = 24, rows = 400;
    const auto bank = normal_bank(rng, rows, dim);
    const auto exact = tocoad::make_exact_search(bank);
    for (std::size_t n : {1u, 63u, 200u, 785u}) {
        std::vector<float> queries(n * dim);
        for (float &v : queries) v = 1.3f * normal(rng);
        std::vector<float> once(n);
        exact->query(queries.data(), n, once.data());
        for (std::size_t parts : {1u, 2u, 3u, 8u}) {
            std::vector<float> split(n, -1.0f);
            tocoad::split_query(*exact, queries.data(), n, dim, split.data(), parts);
            CHECK_MSG(split == once, std::to_string(n) + " queries in " + std::to_string(parts) + " parts");
        }
    }

    struct Failing final : tocoad::NearestSearch {
        const char *name() const override { return "failing"; }
        void query(const float *, std::size_t n, float *out) const override {
            if (n < 200) throw std::runtime_error("part of " + std::to_string(n) + " queries");
            std::fill_n(out, n, 0.0f);
        }
    };
    std::vector<float> queries(300 * dim), out(300);   // two parts of 150 queries: both throw, one is rethrown
    bool thrown = false;
    try {
        tocoad::split_query(Failing(), queries.data(), 300, dim, out.data(), 2);
    } catch (const std::runtime_error &e) {
        thrown = std::string(e.what()) == "part of 150 queries";
    }
    CHECK(thrown);
}

}  // namespace

int main() {
    test_sha256();
    test_npy();
    test_manifest();
    test_member_paths();
    test_kernel_size();
    test_tile_grid();
    test_onnx_rewrite();
    test_engine_fingerprint();
    test_engine_record();
    test_engine_bindings();
    test_refined_score();
    test_bounded_exact_search();
    test_split_query();
    return check::finish("test_units");
}
