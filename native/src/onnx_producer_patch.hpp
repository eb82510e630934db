// OpenCV 4.x's ONNX importer treats AveragePool as count_include_pad=1 whenever the model's
// producer_name is "pytorch", ignoring the node's own count_include_pad=0 attribute. The exported
// graph relies on count_include_pad=0 (3x3 local aggregation), so before handing the (already
// sha256-checked) bytes to OpenCV we rename the producer in memory. The file on disk is unchanged.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tocoad {

// Returns the ONNX ModelProto bytes with a top-level producer_name "pytorch" replaced by
// `replacement`; other bytes are returned unchanged. Throws Error(TOCOAD_ERR_BUNDLE) on malformed input.
std::vector<uint8_t> rename_pytorch_producer(const std::vector<uint8_t> &model, const std::string &replacement);

}  // namespace tocoad
