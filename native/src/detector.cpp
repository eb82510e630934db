#include "detector.hpp"

#include <algorithm>
#include <cmath>
#include <optional>
#include <thread>

#include <opencv2/core.hpp>

#include "anomaly_map.hpp"
#include "bundle_files.hpp"
#include "engine_record.hpp"
#include "error.hpp"
#include "npy.hpp"
#include "refine.hpp"
#include "tiling.hpp"

namespace tocoad {
namespace {

const std::string &listed_path(const std::map<std::string, std::string> &verified, const std::string &name,
                               const char *role) {
    auto it = verified.find(name);
    if (it == verified.end())
        throw_bundle(std::string("the ") + role + " file " + name + " is not listed in the manifest's files",
                     "every bundle file listed with its sha256", name, "re-export the bundle with tocoad-export");
    return it->second;
}

Matrix load_memory_bank(const std::map<std::string, std::string> &verified, const Manifest &m) {
    const auto &bank = m.memory_bank;
    Matrix coreset = read_npy(listed_path(verified, bank.file, "memory bank"));
    if (coreset.rows != bank.entries || coreset.cols != bank.dim)
        throw_bundle(bank.file + " does not match the manifest",
                     "[" + std::to_string(bank.entries) + ", " + std::to_string(bank.dim) + "]",
                     "[" + std::to_string(coreset.rows) + ", " + std::to_string(coreset.cols) + "]", "re-export the bundle");
    if (coreset.source_dtype != bank.dtype)
        throw_bundle(bank.file + " has another dtype than the manifest says", bank.dtype, coreset.source_dtype,
                     "re-export the bundle");
    for (float v : coreset.data)
        if (!std::isfinite(v))
            throw_bundle(bank.file + " holds NaN or inf", "finite values", "non-finite values", "re-export the bundle");
    return coreset;
}

const ModelFile &chosen_model(const Manifest &m, const std::string &precision) {
    auto it = m.models.find(precision);
    if (it == m.models.end()) {
        std::string have;
        for (const auto &kv : m.models) have += (have.empty() ? "" : ", ") + kv.first;
        throw_bundle("the bundle has no " + precision + " model", "one of [" + have + "]", precision,
                     precision == "int8" ? "export with --int8, or open with TOCOAD_PRECISION_FP32"
                                         : "open with a precision the bundle has");
    }
    return it->second;
}

std::unique_ptr<Backend> open_backend(const std::string &dir, const Manifest &m,
                                      const std::map<std::string, std::string> &verified, const tocoad_open_options &o,
                                      const std::string &precision) {
    if (o.backend == TOCOAD_BACKEND_TENSORRT) return make_tensorrt_backend(dir, precision, m);
    if (o.backend == TOCOAD_BACKEND_AUTO && tensorrt_compiled_in()) {
        try {
            return make_tensorrt_backend(dir, precision, m);
        } catch (const Error &e) {
            if (e.status() != TOCOAD_ERR_ENGINE_INCOMPATIBLE && e.status() != TOCOAD_ERR_BACKEND_UNAVAILABLE) throw;
        }
    }
    const ModelFile &model = chosen_model(m, precision);
    if (precision == "int8")
        // OpenCV DNN 4.6 cannot import the export's Q/DQ graph (per-channel DequantizeLinear scales); say so before
        // it tries, with the way out, rather than pass on its importer's message
        throw Error(TOCOAD_ERR_BACKEND_UNAVAILABLE, "the native CPU backend does not run INT8 models",
                    "TOCOAD_PRECISION_FP32 on the CPU backend, or an INT8 TensorRT engine (TOCOAD_BACKEND_TENSORRT)",
                    std::string("TOCOAD_PRECISION_INT8 with ") +
                        (o.backend == TOCOAD_BACKEND_AUTO ? "TOCOAD_BACKEND_AUTO and no usable INT8 engine"
                                                          : "TOCOAD_BACKEND_CPU"),
                    "open with TOCOAD_PRECISION_FP32 (on a CPU the FP32 model is also the faster one), or build "
                    "the engine on the device: tocoad-export engine BUNDLE --precision int8");
    return make_opencv_backend(listed_path(verified, model.file, "ONNX model"), model, m);
}

// The ef the Python runtime gives each use of the index (runtime/detector.py: query_ef, map_ef): the ef tuned at
// export for this precision; for the refined search's map, the smallest ef of the export's table whose recall@1
// reached 0.97 (a projected index: whose mean map error is within 0.5 %), as only the map depends on it there.
constexpr double kRefinedMinRecall = 0.97;
constexpr double kRefinedMaxMapError = 0.005;

int query_ef(const Manifest &m, const std::string &precision) {
    auto it = m.search.ef_per_precision.find(precision);
    return it != m.search.ef_per_precision.end() ? it->second : m.memory_bank.index->ef;
}

int map_ef(const Manifest &m, const std::string &precision) {
    const bool projected = m.memory_bank.index->kind == "projected_hnsw";
    std::optional<int> smallest;
    auto it = m.search.ef_tuning.find(precision);
    if (it != m.search.ef_tuning.end())
        for (const EfTuningRow &row : it->second)
            if (projected ? row.mean_distance_rel_error <= kRefinedMaxMapError : row.recall_at_1 >= kRefinedMinRecall)
                smallest = std::min(smallest.value_or(row.ef), row.ef);
    return smallest.value_or(query_ef(m, precision));
}

std::unique_ptr<NearestSearch> open_index(const Manifest &m, const std::map<std::string, std::string> &verified,
                                          const std::shared_ptr<const Matrix> &coreset, int ef) {
    IndexSpec ix = *m.memory_bank.index;
    ix.ef = ef;
    const std::string &index_path = listed_path(verified, ix.file, "index");
    if (ix.kind == "projected_hnsw")
        return make_projected_search(index_path, ix, read_npy(listed_path(verified, ix.projection, "search projection")),
                                     coreset, static_cast<std::size_t>(m.features.grid_h),
                                     static_cast<std::size_t>(m.features.grid_w));
    return make_hnsw_search(index_path, ix, m.memory_bank.entries, m.memory_bank.dim);
}

}  // namespace

void Detector::open_search(const Manifest &m, const std::map<std::string, std::string> &verified, int32_t kind,
                           const std::string &precision, Matrix coreset) {
    const auto &bank = m.memory_bank;
    if ((kind == TOCOAD_SEARCH_HNSW || kind == TOCOAD_SEARCH_REFINED) && !bank.index)
        throw_bundle("the bundle has no hnswlib index", "memory_bank.index in the manifest", "none",
                     "open with TOCOAD_SEARCH_EXACT or TOCOAD_SEARCH_AUTO");
    auto shared = std::make_shared<const Matrix>(std::move(coreset));
    if (kind == TOCOAD_SEARCH_EXACT || !bank.index) {
        search_ = make_exact_search(shared);
        search_name_ = search_->name();
    } else if (kind == TOCOAD_SEARCH_HNSW) {
        search_ = open_index(m, verified, shared, query_ef(m, precision));
        search_name_ = search_->name();
    } else {  // refined, and auto on a bundle with an index: the Python runtime's default
        search_ = open_index(m, verified, shared, map_ef(m, precision));
        exact_ = make_bounded_exact_search(shared);
        search_name_ = "refined";
    }
}

namespace {

void check_options(const tocoad_open_options &o) {
    if (o.struct_size != sizeof(tocoad_open_options))
        throw Error(TOCOAD_ERR_INVALID_ARGUMENT, "tocoad_open_options.struct_size is wrong",
                    std::to_string(sizeof(tocoad_open_options)), std::to_string(o.struct_size),
                    "initialise the options with tocoad_open_options_init()");
    if (o.backend != TOCOAD_BACKEND_AUTO && o.backend != TOCOAD_BACKEND_CPU && o.backend != TOCOAD_BACKEND_TENSORRT)
        throw Error(TOCOAD_ERR_INVALID_ARGUMENT, "unknown backend", "TOCOAD_BACKEND_AUTO, _CPU or _TENSORRT",
                    std::to_string(o.backend));
    if (o.precision != TOCOAD_PRECISION_FP32 && o.precision != TOCOAD_PRECISION_INT8)
        throw Error(TOCOAD_ERR_INVALID_ARGUMENT, "unknown precision", "TOCOAD_PRECISION_FP32 or _INT8",
                    std::to_string(o.precision));
    if (o.search != TOCOAD_SEARCH_AUTO && o.search != TOCOAD_SEARCH_HNSW && o.search != TOCOAD_SEARCH_EXACT &&
        o.search != TOCOAD_SEARCH_REFINED)
        throw Error(TOCOAD_ERR_INVALID_ARGUMENT, "unknown search", "TOCOAD_SEARCH_AUTO, _HNSW, _EXACT or _REFINED",
                    std::to_string(o.search));
    if (o.threads < 0 || o.threads > 1024)
        throw Error(TOCOAD_ERR_INVALID_ARGUMENT, "threads out of range", "0 (OpenCV default) .. 1024",
                    std::to_string(o.threads));
}

// Threads for one frame's map search: the option's count (0: this machine's cores), at most kMaxSearchParts.
constexpr std::size_t kMaxSearchParts = 8;

std::size_t search_parts(int32_t threads) {
    const std::size_t wanted = threads > 0 ? static_cast<std::size_t>(threads) : std::thread::hardware_concurrency();
    return std::max<std::size_t>(1, std::min(wanted, kMaxSearchParts));
}

}  // namespace

std::unique_ptr<Detector> Detector::open(const std::string &bundle_dir, const tocoad_open_options &options) {
    check_options(options);
    std::unique_ptr<Detector> d(new Detector());
    d->manifest_ = read_manifest(bundle_dir);
    if (options.backend == TOCOAD_BACKEND_TENSORRT || (options.backend == TOCOAD_BACKEND_AUTO && tensorrt_compiled_in())) {
        // engines built on the device are recorded in engines.json, not in the manifest; merged, they are hashed
        // below with every other file
        try {
            merge_engine_record_file(bundle_dir, d->manifest_);
        } catch (const Error &) {
            if (options.backend == TOCOAD_BACKEND_TENSORRT) throw;  // auto: the ONNX model serves without them
        }
    }
    const Manifest &m = d->manifest_;
    const auto verified = verify_files(bundle_dir, m);  // every file, before any loader runs
    const std::string precision = options.precision == TOCOAD_PRECISION_INT8 ? "int8" : "fp32";
    if (options.threads > 0) cv::setNumThreads(options.threads);
    d->search_parts_ = search_parts(options.threads);
    Matrix coreset = load_memory_bank(verified, m);
    d->open_search(m, verified, options.search, precision, std::move(coreset));
    d->backend_ = open_backend(bundle_dir, m, verified, options, precision);
    return d;
}

Prediction Detector::predict(const FrameView &frame) {
    const auto &m = manifest_;
    const std::size_t per_tile = static_cast<std::size_t>(m.features.grid_h) * static_cast<std::size_t>(m.features.grid_w);
    std::optional<TileLayout> layout;
    std::vector<cv::Mat> inputs;
    if (m.input.tiling) {
        const cv::Mat bgr = frame_to_model_input(frame, frame.width, frame.height);  // BGR at the frame's size
        layout = tile_layout(bgr.size(), cv::Size(m.input.width, m.input.height), *m.input.tiling);
        const cv::Mat canvas = tiling_canvas(bgr, *layout);
        for (std::size_t i = 0; i < layout->count(); ++i)
            inputs.push_back(canvas(cv::Rect(layout->origin(i), layout->tile)).clone());  // contiguous
    } else {
        inputs.push_back(frame_to_model_input(frame, m.input.width, m.input.height));
    }
    const std::size_t tiles = inputs.size();   // 1 for an untiled frame
    const std::size_t patches = per_tile * tiles;
    std::vector<float> embeddings;
    std::vector<float> distances(patches);
    std::optional<float> refined_raw;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        // a tiled frame: the tiles one by one through the backend, then one search over all their patches
        std::vector<float> all;
        for (const cv::Mat &input : inputs) {
            backend_->infer(input.ptr<uint8_t>(), embeddings);
            if (tiles > 1) all.insert(all.end(), embeddings.begin(), embeddings.end());
        }
        if (tiles > 1) embeddings.swap(all);
        split_query(*search_, embeddings.data(), patches, static_cast<std::size_t>(m.memory_bank.dim),
                    distances.data(), search_parts_);
        for (float v : distances)
            if (!std::isfinite(v))
                throw Error(TOCOAD_ERR_INTERNAL, "the model produced NaN or inf embeddings", "finite values",
                            "non-finite distances", "check the bundle with tocoad-export's parity report");
        if (exact_)  // refined: the patches that may carry the image score, re-checked exactly
            refined_raw = refined_image_score(embeddings.data(), static_cast<std::size_t>(m.memory_bank.dim),
                                              distances.data(), tiles, m.features.grid_h, m.features.grid_w,
                                              m.features.stride, m.scoring, *exact_);
    }
    Prediction p;
    p.raw_score = refined_raw ? *refined_raw
                              : image_score(distances.data(), tiles, m.features.grid_h,
                                            m.features.grid_w, m.features.stride, m.scoring);
    p.score = normalise(p.raw_score, m.scoring);
    p.is_anomalous = p.raw_score > m.scoring.image_threshold;  // as the Python runtime decides
    p.is_review = !p.is_anomalous && m.scoring.review_threshold && p.raw_score > *m.scoring.review_threshold;
    cv::Mat map = layout ? normalised_map(tiled_raw_map(distances.data(), *layout, m.features.grid_h,
                                                        m.features.grid_w, m.scoring.gaussian_sigma), m.scoring)
                         : normalised_anomaly_map(distances.data(), m, frame.width, frame.height);
    p.width = map.cols;
    p.height = map.rows;
    p.anomaly_map.assign(map.ptr<float>(), map.ptr<float>() + map.total());
    return p;
}

}  // namespace tocoad
