#include "engine_record.hpp"

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "error.hpp"

namespace tocoad {

void merge_engine_record(Manifest &manifest, const EngineRecord &record, const std::string &where) {
    const std::string fix = "rebuild the engine on this device: tocoad-export engine BUNDLE";
    if (record.model_id != manifest.model_id)
        throw_bundle(where + " records engines of another model", "model_id " + manifest.model_id,
                     "model_id " + record.model_id, fix);
    std::set<std::string> model_shas;
    for (const auto &kv : manifest.models) {
        auto f = manifest.files.find(kv.second.file);
        if (f != manifest.files.end()) model_shas.insert(f->second.sha256);
    }
    const std::set<std::string> reserved = {kManifestName, "manifest.sig", kEngineRecordName, "engines.sig"};
    std::set<std::string> seen;
    for (const auto &e : record.engines) {
        const std::string &name = e.fingerprint.file;
        if (reserved.count(name) || manifest.files.count(name) || !seen.insert(name).second)
            throw_bundle(where + " names " + name + ", a file that is not a free engine name",
                         "a file name of its own (not a manifest file, not listed twice)", name, fix);
        if (e.fingerprint.role == "search") {
            auto bank = manifest.files.find(manifest.memory_bank.file);
            if (bank == manifest.files.end() || bank->second.sha256 != e.fingerprint.source_sha256)
                throw_bundle("search engine " + name + " in " + where + " was built from another memory bank",
                             "source_sha256 of " + manifest.memory_bank.file, e.fingerprint.source_sha256, fix);
            continue;
        }
        if (model_shas.count(e.fingerprint.onnx_sha256) == 0)
            throw_bundle("engine " + name + " was built from an ONNX model this bundle does not have",
                         "onnx_sha256 of one of the bundle's models", e.fingerprint.onnx_sha256, fix);
    }
    for (const auto &e : record.engines) {
        if (e.fingerprint.role != "backbone") continue;   // the search engine runs in the Python runtime only
        manifest.engines.push_back(e.fingerprint);
        manifest.files.emplace(e.fingerprint.file, e.file);
    }
}

bool merge_engine_record_file(const std::string &bundle_dir, Manifest &manifest) {
    const std::filesystem::path path = std::filesystem::path(bundle_dir) / kEngineRecordName;
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) return false;
    std::ifstream in(path, std::ios::binary);
    if (!in) throw_bundle("cannot read " + path.string(), "", "", "rebuild the engine on this device: tocoad-export engine BUNDLE");
    std::ostringstream text;
    text << in.rdbuf();
    merge_engine_record(manifest, parse_engine_record(text.str(), path.string()), path.string());
    return true;
}

}  // namespace tocoad
