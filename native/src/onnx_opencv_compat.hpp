// In-memory rewrite of an (already sha256-checked) ONNX model into the dialect OpenCV 4.x DNN imports.
// The file on disk is not changed; every rewrite computes the same function:
//  - producer_name "pytorch" is renamed: OpenCV then ignores AveragePool's count_include_pad=0.
//  - trailing empty optional inputs are dropped (Pad(x, pads, "") fails with "Blob  not found").
//  - Clip(x, min, max) with constant inputs (opset >= 11) becomes Clip with min/max attributes
//    (OpenCV's importer requires one input).
//  - Gather(x, constant int64 indices [k0..kn-1], axis) becomes n Slices + Concat (OpenCV's Gather
//    takes a single index only); this is the BGR->RGB channel swap of the exported graph.
#pragma once

#include <string>

namespace tocoad {

struct CompatReport {
    int renamed_producer = 0;
    int dropped_empty_inputs = 0;
    int clips = 0;
    int gathers = 0;
};

// Throws Error(TOCOAD_ERR_BUNDLE) if the bytes are not a protobuf ModelProto.
std::string opencv_compatible_onnx(const std::string &model, CompatReport *report = nullptr);

}  // namespace tocoad
