// Helpers shared by the C-ABI tests: the parity fixture's frames and reference outputs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tocoad_edge/tocoad_edge.h"

namespace support {

struct Frame {
    int32_t width = 0;
    int32_t height = 0;
    tocoad_pixel_format format = TOCOAD_PIXEL_BGR8;
    std::vector<uint8_t> pixels;  // tightly packed rows

    int32_t channels() const { return format == TOCOAD_PIXEL_GRAY8 ? 1 : format == TOCOAD_PIXEL_BGRA8 ? 4 : 3; }
    int32_t stride() const { return width * channels(); }
};

// Binary PPM (P6, read as RGB8) or PGM (P5, GRAY8). Throws std::runtime_error.
Frame read_pnm(const std::string &path);

// The same image as BGR8 / BGRA8 (RGB8 input only; alpha 0x80).
Frame rgb_to_bgr(const Frame &rgb);
Frame rgb_to_bgra(const Frame &rgb);

// The same pixels in rows of `stride` bytes (stride >= width * channels); padding bytes are 0xAB.
std::vector<uint8_t> with_stride(const Frame &frame, int32_t stride);

struct Scored {
    tocoad_status status = TOCOAD_ERR_INTERNAL;
    double score = 0.0;
    double raw_score = 0.0;
    int32_t is_anomalous = 0;
    std::string decision;
    int32_t width = 0;
    int32_t height = 0;
    std::vector<float> map;
    std::string error;
};

Scored infer(tocoad_detector *detector, const uint8_t *pixels, int32_t width, int32_t height, int32_t stride,
             tocoad_pixel_format format);
Scored infer(tocoad_detector *detector, const Frame &frame);

tocoad_detector *open_or_null(const std::string &bundle, tocoad_search search = TOCOAD_SEARCH_AUTO,
                              tocoad_backend backend = TOCOAD_BACKEND_CPU);

}  // namespace support
