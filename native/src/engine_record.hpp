// engines.json: the TensorRT engines a device built into a bundle (tocoad-export engine), recorded beside the
// manifest so a signed manifest stays as exported. Merged into the manifest's engines and files, so the engine
// is hashed with every other file before anything is loaded and chosen by its fingerprint like any engine.
// The native runtime takes the record on its hashes; it checks no signatures (nor manifest.sig).
#pragma once

#include <string>

#include "manifest.hpp"

namespace tocoad {

// Check `record` belongs to `manifest` (same model_id; every engine built from one of its ONNX models; engine
// names of their own, not the manifest's files, none twice) and add its engines and their file entries.
// All or nothing: `manifest` is unchanged when it throws Error(TOCOAD_ERR_BUNDLE).
void merge_engine_record(Manifest &manifest, const EngineRecord &record, const std::string &where);

// Read bundle_dir/engines.json when there is one and merge it. Returns whether there was one.
bool merge_engine_record_file(const std::string &bundle_dir, Manifest &manifest);

}  // namespace tocoad
