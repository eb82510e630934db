// Frame buffer (any size; BGR8, RGB8, GRAY8 or BGRA8; any row stride) -> model input: input.height x
// input.width x 3 uint8 BGR, resized with cv::resize INTER_LINEAR exactly like the Python runtime.
#pragma once

#include <cstdint>

#include <opencv2/core.hpp>

#include "tocoad_edge/tocoad_edge.h"

namespace tocoad {

struct FrameView {
    const uint8_t *pixels = nullptr;
    int32_t width = 0;
    int32_t height = 0;
    int32_t stride = 0;
    int32_t format = TOCOAD_PIXEL_BGR8;  // a tocoad_pixel_format, validated before use
};

// Throws Error(TOCOAD_ERR_INPUT) naming what is wrong with the buffer.
void validate_frame(const FrameView &frame);

// Returns a continuous CV_8UC3 BGR image of input_width x input_height.
cv::Mat frame_to_model_input(const FrameView &frame, int input_width, int input_height);

}  // namespace tocoad
