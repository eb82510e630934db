// manifest.json of a bundle, parsed strictly like tocoad_edge/bundle/manifest.py (schema_version 1 or 2).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace tocoad {

struct TilingSpec {           // input.tiling (tocoad_edge/runtime/tiling.py)
    double overlap = 0.25;
    double scale = 1.0;
};

struct InputSpec {
    int height = 0;
    int width = 0;
    int channels = 3;
    std::string layout = "NHWC";
    std::string dtype = "uint8";
    std::string color = "BGR";
    std::string resize = "bilinear";
    std::optional<TilingSpec> tiling;  // absent: frames are resized to the input
};

struct ModelFile {
    std::string file;
    std::string input_name = "image";
    std::string output_name = "embeddings";
    std::string precision = "fp32";
    bool dynamic_batch = false;
};

struct EngineFingerprint {
    std::string file;
    std::string tensorrt_version;
    std::string gpu_name;
    std::string compute_capability;
    std::string precision;
    std::vector<int64_t> input_shape;
    std::string onnx_sha256;
    std::optional<int> dla_core;
    // "backbone" (default) or "search": the memory-bank search engine (Python runtime only; source_sha256 is the
    // bank file's sha256), which the native runtime validates but never loads
    std::string role = "backbone";
    std::string source_sha256;
    // dynamic batch: input_shape[0] is -1 and the optimisation profile's {min, opt, max} batch says which
    // batches the engine runs; empty for a static shape
    std::vector<int64_t> batch_profile;
};

struct IndexSpec {
    std::string file;
    std::string kind = "hnsw";
    std::string space = "l2";
    int M = 16;
    int ef_construction = 200;
    int ef = 64;
    int seed = 0;
    // kind "projected_hnsw" (schema 2): the index is over the bank projected by `projection` ([dim + 1, dims]
    // float32 .npy: matrix rows, then the bias); each query's `candidates` neighbours are re-ranked in full dim
    std::string projection;
    int dims = 0;
    int candidates = 1;
    // projected_hnsw: the best rows each patch lends its four grid neighbours (0: none; search_hnsw.cpp)
    int lend = 0;
};

struct MemoryBankSpec {
    std::string file;
    int64_t entries = 0;
    int64_t dim = 0;
    std::string dtype = "float32";
    std::optional<IndexSpec> index;
};

struct FeatureSpec {
    int stride = 0;
    int grid_h = 0;
    int grid_w = 0;
    int dim = 0;
};

struct ScoringSpec {
    std::string image_score = "max";
    double gaussian_sigma = 4.0;
    double image_threshold = 1.0;
    double pixel_threshold = 1.0;
    double normalization_offset = 0.0;
    double normalization_scale = 1.0;
    std::optional<double> review_threshold;  // raw score above it (and not NG) -> REVIEW
};

// One row of the export's HNSW ef table (search.ef_tuning.<precision>; export/search_tuning.py).
struct EfTuningRow {
    int ef = 0;
    double recall_at_1 = 0.0;
    double mean_distance_rel_error = 1.0;
};

// The manifest's search section: what the export measured about the index. Optional, and read as leniently as the
// Python runtime reads it (runtime/detector.py: query_ef, map_ef): a malformed entry is skipped, not an error.
struct SearchTuning {
    std::map<std::string, int> ef_per_precision;                 // the ef tuned for each precision's embeddings
    std::map<std::string, std::vector<EfTuningRow>> ef_tuning;   // per precision, in increasing ef
};

struct FileEntry {
    std::string sha256;
    int64_t bytes = 0;
};

struct Manifest {
    int schema_version = 0;
    std::string model_id;
    InputSpec input;
    FeatureSpec features;
    std::map<std::string, ModelFile> models;  // key: precision ("fp32", "int8")
    MemoryBankSpec memory_bank;
    ScoringSpec scoring;
    std::map<std::string, FileEntry> files;
    std::vector<EngineFingerprint> engines;
    SearchTuning search;
};

constexpr int kSchemaVersion = 2;      // written by this version; 1 (full-dimension index only) still reads
constexpr const char *kManifestName = "manifest.json";

// Parse manifest JSON text; `where` names the file in error messages. Throws Error(TOCOAD_ERR_BUNDLE).
Manifest parse_manifest(const std::string &json_text, const std::string &where);

// engines.json: engines built on the device, recorded beside the manifest (tocoad_edge/bundle/engine_record.py).
struct RecordedEngine {
    EngineFingerprint fingerprint;
    FileEntry file;
};

struct EngineRecord {
    std::string model_id;
    std::vector<RecordedEngine> engines;
};

constexpr int kEngineRecordSchemaVersion = 1;
constexpr const char *kEngineRecordName = "engines.json";

// Parse engines.json text strictly (like parse_manifest). Throws Error(TOCOAD_ERR_BUNDLE).
EngineRecord parse_engine_record(const std::string &json_text, const std::string &where);

}  // namespace tocoad
