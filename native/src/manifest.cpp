#include "manifest.hpp"

#include <cmath>
#include <initializer_list>
#include <set>

#include <nlohmann/json.hpp>

#include "error.hpp"

namespace tocoad {
namespace {

using json = nlohmann::json;

const char *kFix = "export the bundle again with this version of tocoad-edge";

// A JSON object checked against the keys the schema knows; every error names the dotted key.
class Section {
public:
    Section(const json &value, std::string path, std::string where, std::initializer_list<const char *> known)
        : value_(value), path_(std::move(path)), where_(std::move(where)) {
        if (!value_.is_object()) fail(path_.empty() ? "the manifest" : "'" + path_ + "'", "a JSON object", value_.type_name());
        std::set<std::string> names(known.begin(), known.end());
        for (auto it = value_.begin(); it != value_.end(); ++it) {
            if (names.count(it.key()) == 0) {
                std::string list;
                for (const auto &n : names) list += (list.empty() ? "" : ", ") + n;
                fail("unknown key '" + dotted(it.key()) + "'", "one of [" + list + "]", "'" + it.key() + "'");
            }
        }
    }

    bool has(const char *key) const { return value_.contains(key) && !value_.at(key).is_null(); }

    const json &at(const char *key) const {
        if (!value_.contains(key)) fail("missing key '" + dotted(key) + "'", "", "", "add '" + dotted(key) + "'");
        return value_.at(key);
    }

    int64_t integer(const char *key, std::optional<int64_t> fallback = std::nullopt) const {
        if (!value_.contains(key) && fallback) return *fallback;
        const json &v = at(key);
        if (!v.is_number_integer()) fail("key '" + dotted(key) + "' must be an integer", "an integer", v.dump());
        return v.get<int64_t>();
    }

    double number(const char *key, std::optional<double> fallback = std::nullopt) const {
        if (!value_.contains(key) && fallback) return *fallback;
        const json &v = at(key);
        if (!v.is_number()) fail("key '" + dotted(key) + "' must be a number", "a number", v.dump());
        double d = v.get<double>();
        if (!std::isfinite(d)) fail("key '" + dotted(key) + "' must be a finite number", "a finite number", v.dump());
        return d;
    }

    std::string text(const char *key, std::optional<std::string> fallback = std::nullopt) const {
        if (!value_.contains(key) && fallback) return *fallback;
        const json &v = at(key);
        if (!v.is_string()) fail("key '" + dotted(key) + "' must be a string", "a string", v.dump());
        return v.get<std::string>();
    }

    bool boolean(const char *key, bool fallback) const {
        if (!value_.contains(key)) return fallback;
        const json &v = at(key);
        if (!v.is_boolean()) fail("key '" + dotted(key) + "' must be true or false", "a boolean", v.dump());
        return v.get<bool>();
    }

    Section child(const char *key, std::initializer_list<const char *> known) const {
        return Section(at(key), dotted(key), where_, known);
    }

    std::string dotted(const std::string &key) const { return path_.empty() ? key : path_ + "." + key; }

    [[noreturn]] void fail(const std::string &what, const std::string &expected, const std::string &got,
                           const std::string &fix = kFix) const {
        throw_bundle(where_ + " does not match the manifest schema: " + what, expected, got, fix);
    }

    const json &value() const { return value_; }
    const std::string &where() const { return where_; }

private:
    const json &value_;
    std::string path_;
    std::string where_;
};

void require(bool ok, const Section &s, const char *key, const std::string &expected, const std::string &got) {
    if (!ok) s.fail("key '" + s.dotted(key) + "' is out of range", expected, got);
}

bool is_sha256_hex(const std::string &s) {
    if (s.size() != 64) return false;
    for (char c : s)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

InputSpec parse_input(const Section &root) {
    Section s = root.child("input", {"height", "width", "channels", "layout", "dtype", "color", "resize", "tiling"});
    InputSpec in;
    in.height = static_cast<int>(s.integer("height"));
    in.width = static_cast<int>(s.integer("width"));
    in.channels = static_cast<int>(s.integer("channels", 3));
    in.layout = s.text("layout", std::string("NHWC"));
    in.dtype = s.text("dtype", std::string("uint8"));
    in.color = s.text("color", std::string("BGR"));
    in.resize = s.text("resize", std::string("bilinear"));
    require(in.height > 0 && in.height <= 16384, s, "height", "1..16384", std::to_string(in.height));
    require(in.width > 0 && in.width <= 16384, s, "width", "1..16384", std::to_string(in.width));
    require(in.channels == 3, s, "channels", "3", std::to_string(in.channels));
    require(in.layout == "NHWC", s, "layout", "NHWC", in.layout);
    require(in.dtype == "uint8", s, "dtype", "uint8", in.dtype);
    require(in.color == "BGR", s, "color", "BGR", in.color);
    require(in.resize == "bilinear", s, "resize", "bilinear", in.resize);
    if (s.has("tiling")) {
        Section t = s.child("tiling", {"overlap", "scale", "combine"});
        TilingSpec tiling;
        tiling.overlap = t.number("overlap", 0.25);
        tiling.scale = t.number("scale", 1.0);
        // the bounds of tocoad_edge/bundle/manifest.py (MAX_TILE_OVERLAP, MAX_TILE_SCALE)
        require(tiling.overlap >= 0.0 && tiling.overlap <= 0.75, t, "overlap", "a number in [0, 0.75]",
                std::to_string(tiling.overlap));
        require(tiling.scale > 0.0 && tiling.scale <= 4.0, t, "scale", "a number in (0, 4]", std::to_string(tiling.scale));
        const std::string combine = t.text("combine", std::string("mean"));
        require(combine == "mean", t, "combine", "mean", combine);
        in.tiling = tiling;
    }
    return in;
}

FeatureSpec parse_features(const Section &root) {
    Section s = root.child("features", {"backbone", "layers", "aggregation", "stride", "grid", "dim", "projection",
                                        "mean", "std", "aggregation_mode", "aggregation_dim",
                                        "tone_reference"});   // the tone runs inside the model graph
    FeatureSpec f;
    s.text("backbone");
    s.integer("aggregation");
    f.stride = static_cast<int>(s.integer("stride"));
    f.dim = static_cast<int>(s.integer("dim"));
    const json &grid = s.at("grid");
    if (!grid.is_array() || grid.size() != 2 || !grid[0].is_number_integer() || !grid[1].is_number_integer())
        s.fail("key 'features.grid' must be [h, w]", "two integers", grid.dump());
    f.grid_h = grid[0].get<int>();
    f.grid_w = grid[1].get<int>();
    require(f.grid_h > 0 && f.grid_w > 0, s, "grid", "positive sizes", grid.dump());
    require(f.dim > 0, s, "dim", "a positive integer", std::to_string(f.dim));
    require(f.stride > 0, s, "stride", "a positive integer", std::to_string(f.stride));
    return f;
}

ModelFile parse_model(const json &value, const std::string &key, const std::string &where) {
    Section s(value, "models." + key, where,
              {"file", "input_name", "output_name", "precision", "dynamic_batch"});
    ModelFile m;
    m.file = s.text("file");
    m.input_name = s.text("input_name", std::string("image"));
    m.output_name = s.text("output_name", std::string("embeddings"));
    m.precision = s.text("precision", std::string("fp32"));
    m.dynamic_batch = s.boolean("dynamic_batch", false);
    require(m.precision == "fp32" || m.precision == "int8", s, "precision", "fp32 or int8", m.precision);
    return m;
}

IndexSpec parse_index(const Section &bank) {
    Section s = bank.child("index", {"file", "kind", "space", "M", "ef_construction", "ef", "seed", "projection",
                                     "dims", "candidates", "lend"});
    IndexSpec ix;
    ix.file = s.text("file");
    ix.kind = s.text("kind", std::string("hnsw"));
    ix.space = s.text("space", std::string("l2"));
    ix.M = static_cast<int>(s.integer("M", 16));
    ix.ef_construction = static_cast<int>(s.integer("ef_construction", 200));
    ix.ef = static_cast<int>(s.integer("ef", 64));
    ix.seed = static_cast<int>(s.integer("seed", 0));
    require(ix.kind == "hnsw" || ix.kind == "projected_hnsw", s, "kind", "hnsw or projected_hnsw", ix.kind);
    const bool projected = ix.kind == "projected_hnsw";
    if (s.has("projection")) ix.projection = s.text("projection");
    if (s.has("dims")) ix.dims = static_cast<int>(s.integer("dims"));
    ix.candidates = static_cast<int>(s.integer("candidates", 1));
    ix.lend = static_cast<int>(s.integer("lend", 0));
    require(projected == !ix.projection.empty(), s, "projection", "a file name for kind projected_hnsw, null for hnsw",
            ix.projection.empty() ? "null" : ix.projection);
    require(projected == (ix.dims > 0), s, "dims", "a positive integer for kind projected_hnsw, null for hnsw",
            std::to_string(ix.dims));
    require(ix.candidates >= 1 && (projected || ix.candidates == 1), s, "candidates", "an integer >= 1 (1 for hnsw)",
            std::to_string(ix.candidates));
    require(ix.lend >= 0 && ix.lend <= ix.candidates && (projected || ix.lend == 0), s, "lend",
            "an integer in 0 .. candidates (" + std::to_string(ix.candidates) + "); 0 for hnsw", std::to_string(ix.lend));
    require(ix.space == "l2", s, "space", "l2", ix.space);
    require(ix.ef > 0, s, "ef", "a positive integer", std::to_string(ix.ef));
    return ix;
}

MemoryBankSpec parse_memory_bank(const Section &root) {
    Section s = root.child("memory_bank", {"file", "entries", "dim", "dtype", "index"});
    MemoryBankSpec b;
    b.file = s.text("file");
    b.entries = s.integer("entries");
    b.dim = s.integer("dim");
    b.dtype = s.text("dtype", std::string("float32"));
    require(b.entries > 0, s, "entries", "a positive integer", std::to_string(b.entries));
    require(b.dim > 0, s, "dim", "a positive integer", std::to_string(b.dim));
    require(b.dtype == "float32" || b.dtype == "float16", s, "dtype", "float32 or float16", b.dtype);
    if (s.has("index")) b.index = parse_index(s);
    return b;
}

ScoringSpec parse_scoring(const Section &root) {
    Section s = root.child("scoring", {"image_score", "gaussian_sigma", "image_threshold", "pixel_threshold",
                                       "normalization_offset", "normalization_scale", "review_threshold"});
    ScoringSpec sc;
    sc.image_score = s.text("image_score", std::string("max"));
    sc.gaussian_sigma = s.number("gaussian_sigma", 4.0);
    sc.image_threshold = s.number("image_threshold", 1.0);
    sc.pixel_threshold = s.number("pixel_threshold", 1.0);
    sc.normalization_offset = s.number("normalization_offset", 0.0);
    sc.normalization_scale = s.number("normalization_scale", 1.0);
    require(sc.image_score == "max" || sc.image_score == "smoothed-max", s, "image_score", "max or smoothed-max",
            sc.image_score);
    require(sc.gaussian_sigma >= 0.0 && sc.gaussian_sigma <= 64.0, s, "gaussian_sigma", "0..64",
            std::to_string(sc.gaussian_sigma));
    require(sc.normalization_scale > 0.0, s, "normalization_scale", "a positive number",
            std::to_string(sc.normalization_scale));
    if (s.has("review_threshold")) {
        sc.review_threshold = s.number("review_threshold");
        require(*sc.review_threshold < sc.image_threshold, s, "review_threshold",
                "below image_threshold (" + std::to_string(sc.image_threshold) + ")",
                std::to_string(*sc.review_threshold));
    }
    return sc;
}

std::map<std::string, FileEntry> parse_files(const Section &root) {
    const json &files = root.at("files");
    if (!files.is_object()) root.fail("key 'files' must be a mapping", "a mapping of file name to {sha256, bytes}", files.type_name());
    std::map<std::string, FileEntry> out;
    for (auto it = files.begin(); it != files.end(); ++it) {
        Section s(it.value(), "files." + it.key(), root.where(), {"sha256", "bytes"});
        FileEntry e;
        e.sha256 = s.text("sha256");
        e.bytes = s.integer("bytes");
        require(is_sha256_hex(e.sha256), s, "sha256", "64 lowercase hex digits", e.sha256);
        require(e.bytes >= 0, s, "bytes", "a size >= 0", std::to_string(e.bytes));
        out.emplace(it.key(), e);
    }
    return out;
}

EngineFingerprint parse_fingerprint(const Section &s) {
    EngineFingerprint e;
    e.file = s.text("file");
    e.tensorrt_version = s.text("tensorrt_version");
    e.gpu_name = s.text("gpu_name");
    e.compute_capability = s.text("compute_capability");
    e.precision = s.text("precision");
    e.onnx_sha256 = s.text("onnx_sha256");
    auto integers = [&](const char *key, std::vector<int64_t> &out) {
        const json &list = s.at(key);
        if (!list.is_array()) s.fail("key '" + s.dotted(key) + "' must be a list", "a list of integers", list.dump());
        for (const auto &d : list) {
            if (!d.is_number_integer())
                s.fail("key '" + s.dotted(key) + "' must hold integers", "integers", list.dump());
            out.push_back(d.get<int64_t>());
        }
    };
    integers("input_shape", e.input_shape);
    if (s.has("role")) e.role = s.text("role");
    require(e.role == "backbone" || e.role == "search", s, "role", "\"backbone\" or \"search\"", e.role);
    if (s.has("source_sha256")) e.source_sha256 = s.text("source_sha256");
    if (s.has("dla_core")) e.dla_core = static_cast<int>(s.integer("dla_core"));
    if (s.has("batch_profile")) {
        integers("batch_profile", e.batch_profile);
        require(e.batch_profile.size() == 3 && e.batch_profile[0] >= 1 && e.batch_profile[0] <= e.batch_profile[1] &&
                    e.batch_profile[1] <= e.batch_profile[2],
                s, "batch_profile", "[min, opt, max] with 1 <= min <= opt <= max", s.at("batch_profile").dump());
    }
    return e;
}

#define TOCOAD_FINGERPRINT_KEYS                                                                                  \
    "file", "tensorrt_version", "gpu_name", "compute_capability", "precision", "input_shape", "onnx_sha256", \
        "dla_core", "batch_profile", "role", "source_sha256", "chunk_entries"

std::vector<EngineFingerprint> parse_engines(const Section &root) {
    std::vector<EngineFingerprint> out;
    if (!root.has("engines")) return out;
    const json &list = root.at("engines");
    if (!list.is_array()) root.fail("key 'engines' must be a list", "a list", list.type_name());
    for (std::size_t i = 0; i < list.size(); ++i)
        out.push_back(parse_fingerprint(
            Section(list[i], "engines[" + std::to_string(i) + "]", root.where(), {TOCOAD_FINGERPRINT_KEYS})));
    return out;
}

SearchTuning parse_search_tuning(const json &doc) {
    SearchTuning out;
    if (!doc.contains("search") || !doc["search"].is_object()) return out;
    const json &search = doc["search"];
    const auto positive_int = [](const json &v) { return v.is_number_integer() && v.get<int64_t>() > 0 && v.get<int64_t>() < (1 << 30); };
    if (search.contains("ef_per_precision") && search["ef_per_precision"].is_object())
        for (auto it = search["ef_per_precision"].begin(); it != search["ef_per_precision"].end(); ++it)
            if (positive_int(it.value())) out.ef_per_precision[it.key()] = static_cast<int>(it.value().get<int64_t>());
    if (search.contains("ef_tuning") && search["ef_tuning"].is_object())
        for (auto it = search["ef_tuning"].begin(); it != search["ef_tuning"].end(); ++it) {
            if (!it.value().is_array()) continue;
            auto &rows = out.ef_tuning[it.key()];
            for (const json &r : it.value()) {
                if (!r.is_object() || !r.contains("ef") || !positive_int(r["ef"])) continue;
                EfTuningRow row;
                row.ef = static_cast<int>(r["ef"].get<int64_t>());
                if (r.contains("recall_at_1") && r["recall_at_1"].is_number()) row.recall_at_1 = r["recall_at_1"].get<double>();
                if (r.contains("mean_distance_rel_error") && r["mean_distance_rel_error"].is_number())
                    row.mean_distance_rel_error = r["mean_distance_rel_error"].get<double>();
                rows.push_back(row);
            }
        }
    return out;
}

}  // namespace

Manifest parse_manifest(const std::string &json_text, const std::string &where) {
    json doc;
    try {
        doc = json::parse(json_text);
    } catch (const json::exception &e) {
        throw_bundle(where + " is not valid JSON", "", e.what(), "the manifest is damaged: export the bundle again");
    }
    if (!doc.is_object()) throw_bundle(where + " is not a JSON object", "", doc.type_name());
    if (!doc.contains("schema_version") || !doc["schema_version"].is_number_integer() ||
        doc["schema_version"].get<int64_t>() < 1 || doc["schema_version"].get<int64_t>() > kSchemaVersion) {
        throw_bundle(where + " has an unsupported schema version", "1 .. " + std::to_string(kSchemaVersion),
                     doc.contains("schema_version") ? doc["schema_version"].dump() : "none",
                     "export the bundle with this version of tocoad-edge");
    }
    Section root(doc, "", where,
                 {"schema_version", "model_id", "created_by", "input", "features", "models", "memory_bank", "scoring",
                  "files", "engines", "versions", "calibration", "search", "training", "self_test", "decision"});
    Manifest m;
    m.schema_version = static_cast<int>(doc["schema_version"].get<int64_t>());
    m.model_id = root.text("model_id");
    root.text("created_by");
    m.input = parse_input(root);
    m.features = parse_features(root);
    const json &models = root.at("models");
    if (!models.is_object() || models.empty())
        root.fail("key 'models' must be a non-empty mapping", "{precision: {file, ...}}", models.dump());
    for (auto it = models.begin(); it != models.end(); ++it)
        m.models.emplace(it.key(), parse_model(it.value(), it.key(), where));
    m.memory_bank = parse_memory_bank(root);
    m.scoring = parse_scoring(root);
    m.files = parse_files(root);
    m.engines = parse_engines(root);
    m.search = parse_search_tuning(doc);
    if (m.memory_bank.dim != m.features.dim)
        root.fail("memory_bank.dim differs from features.dim", std::to_string(m.features.dim),
                  std::to_string(m.memory_bank.dim));
    return m;
}

EngineRecord parse_engine_record(const std::string &json_text, const std::string &where) {
    json doc;
    try {
        doc = json::parse(json_text);
    } catch (const json::exception &e) {
        throw_bundle(where + " is not valid JSON", "", e.what(), "rebuild the engine on this device: tocoad-export engine BUNDLE");
    }
    Section root(doc, "", where, {"schema_version", "model_id", "engines"});
    if (root.integer("schema_version") != kEngineRecordSchemaVersion)
        root.fail("unsupported schema version", std::to_string(kEngineRecordSchemaVersion), root.at("schema_version").dump());
    EngineRecord record;
    record.model_id = root.text("model_id");
    const json &list = root.at("engines");
    if (!list.is_array()) root.fail("key 'engines' must be a list", "a list", list.type_name());
    for (std::size_t i = 0; i < list.size(); ++i) {
        const std::string path = "engines[" + std::to_string(i) + "]";
        Section s(list[i], path, where, {"fingerprint", "sha256", "bytes"});
        RecordedEngine e;
        e.fingerprint = parse_fingerprint(s.child("fingerprint", {TOCOAD_FINGERPRINT_KEYS}));
        e.file.sha256 = s.text("sha256");
        e.file.bytes = s.integer("bytes");
        require(is_sha256_hex(e.file.sha256), s, "sha256", "64 lowercase hex digits", e.file.sha256);
        require(e.file.bytes >= 0, s, "bytes", "a size >= 0", std::to_string(e.file.bytes));
        record.engines.push_back(std::move(e));
    }
    return record;
}

}  // namespace tocoad
