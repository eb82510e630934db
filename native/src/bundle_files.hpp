// Resolving and verifying the files a manifest names (size + sha256), before any loader reads them.
#pragma once

#include <map>
#include <string>

#include "manifest.hpp"

namespace tocoad {

// bundle_dir/name, refusing absolute paths, "..", links and anything that leaves the bundle folder.
std::string safe_member_path(const std::string &bundle_dir, const std::string &name);

// Read bundle_dir/manifest.json and parse it. Throws Error(TOCOAD_ERR_BUNDLE).
Manifest read_manifest(const std::string &bundle_dir);

// Check size and sha256 of every file listed in the manifest. Returns name -> path.
std::map<std::string, std::string> verify_files(const std::string &bundle_dir, const Manifest &manifest);

}  // namespace tocoad
