#include "bundle_files.hpp"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "error.hpp"
#include "sha256.hpp"

namespace fs = std::filesystem;

namespace tocoad {

std::string safe_member_path(const std::string &bundle_dir, const std::string &name) {
    fs::path p(name);
    bool blank = name.find_first_not_of(" \t\r\n") == std::string::npos;
    bool climbs = false;
    for (const auto &part : p) climbs = climbs || part == "..";
    if (blank || p.is_absolute() || climbs)
        throw_bundle("manifest names a file outside the bundle: '" + name + "'",
                     "a plain file name inside the bundle folder", name);
    fs::path full = fs::path(bundle_dir) / p;
    std::error_code ec;
    if (fs::is_symlink(fs::symlink_status(full, ec)))
        throw_bundle("bundle file " + name + " is a symbolic link", "a regular file", "a link");
    fs::path root = fs::weakly_canonical(fs::path(bundle_dir), ec);
    fs::path resolved = fs::weakly_canonical(full, ec);
    auto r = root.begin();
    auto f = resolved.begin();
    for (; r != root.end(); ++r, ++f)
        if (f == resolved.end() || *r != *f)
            throw_bundle("manifest names a file outside the bundle: '" + name + "'",
                         "a plain file name inside the bundle folder", resolved.string());
    return full.string();
}

Manifest read_manifest(const std::string &bundle_dir) {
    std::error_code ec;
    if (!fs::is_directory(fs::path(bundle_dir), ec))
        throw_bundle("bundle folder not found: " + bundle_dir, "a folder written by tocoad-export", "",
                     "give the --out folder of tocoad-export");
    fs::path path = fs::path(bundle_dir) / kManifestName;
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw_bundle(std::string("no ") + kManifestName + " in " + bundle_dir, "a folder written by tocoad-export", "",
                     "export the bundle again with tocoad-export");
    std::ostringstream text;
    text << in.rdbuf();
    return parse_manifest(text.str(), path.string());
}

std::map<std::string, std::string> verify_files(const std::string &bundle_dir, const Manifest &manifest) {
    std::map<std::string, std::string> out;
    for (const auto &[name, entry] : manifest.files) {
        std::string path = safe_member_path(bundle_dir, name);
        std::error_code ec;
        if (!fs::is_regular_file(fs::path(path), ec))
            throw_bundle("bundle file missing: " + path, "", "", "copy the whole bundle folder again");
        auto size = static_cast<int64_t>(fs::file_size(fs::path(path), ec));
        if (ec || size != entry.bytes)
            throw_bundle("bundle file " + name + " has the wrong size (truncated or replaced)",
                         std::to_string(entry.bytes) + " bytes", std::to_string(size) + " bytes",
                         "copy the bundle again or re-export it");
        std::string digest = sha256_file_hex(path);
        if (digest != entry.sha256)
            throw_bundle("bundle file " + name + " fails its sha256 check (corrupt or tampered)", entry.sha256, digest,
                         "copy the bundle again or re-export it");
        out.emplace(name, path);
    }
    return out;
}

}  // namespace tocoad
