#include "test_support.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <stdexcept>

namespace support {
namespace {

std::string token(std::istream &in) {
    std::string t;
    char c;
    while (in.get(c)) {
        if (c == '#') {
            std::string rest;
            std::getline(in, rest);
            continue;
        }
        if (std::isspace(static_cast<unsigned char>(c))) {
            if (!t.empty()) break;
            continue;
        }
        t.push_back(c);
    }
    return t;
}

}  // namespace

Frame read_pnm(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open " + path);
    const std::string magic = token(in);
    Frame f;
    f.width = std::stoi(token(in));
    f.height = std::stoi(token(in));
    if (token(in) != "255" || (magic != "P6" && magic != "P5")) throw std::runtime_error("not a P5/P6 file: " + path);
    f.format = magic == "P6" ? TOCOAD_PIXEL_RGB8 : TOCOAD_PIXEL_GRAY8;
    f.pixels.resize(static_cast<std::size_t>(f.width) * static_cast<std::size_t>(f.height) * static_cast<std::size_t>(f.channels()));
    in.read(reinterpret_cast<char *>(f.pixels.data()), static_cast<std::streamsize>(f.pixels.size()));
    if (in.gcount() != static_cast<std::streamsize>(f.pixels.size())) throw std::runtime_error("truncated " + path);
    return f;
}

Frame rgb_to_bgr(const Frame &rgb) {
    Frame bgr = rgb;
    bgr.format = TOCOAD_PIXEL_BGR8;
    for (std::size_t i = 0; i + 2 < bgr.pixels.size(); i += 3) std::swap(bgr.pixels[i], bgr.pixels[i + 2]);
    return bgr;
}

Frame rgb_to_bgra(const Frame &rgb) {
    Frame bgra = rgb;
    bgra.format = TOCOAD_PIXEL_BGRA8;
    bgra.pixels.clear();
    for (std::size_t i = 0; i + 2 < rgb.pixels.size(); i += 3)
        bgra.pixels.insert(bgra.pixels.end(), {rgb.pixels[i + 2], rgb.pixels[i + 1], rgb.pixels[i], 0x80});
    return bgra;
}

std::vector<uint8_t> with_stride(const Frame &frame, int32_t stride) {
    std::vector<uint8_t> out(static_cast<std::size_t>(stride) * static_cast<std::size_t>(frame.height), 0xAB);
    const std::size_t row = static_cast<std::size_t>(frame.stride());
    for (int32_t y = 0; y < frame.height; ++y)
        std::copy(frame.pixels.begin() + static_cast<std::ptrdiff_t>(y * row),
                  frame.pixels.begin() + static_cast<std::ptrdiff_t>((y + 1) * row),
                  out.begin() + static_cast<std::ptrdiff_t>(static_cast<std::size_t>(y) * static_cast<std::size_t>(stride)));
    return out;
}

Scored infer(tocoad_detector *detector, const uint8_t *pixels, int32_t width, int32_t height, int32_t stride,
             tocoad_pixel_format format) {
    Scored s;
    tocoad_result *result = nullptr;
    s.status = tocoad_infer(detector, pixels, width, height, stride, format, &result);
    if (s.status != TOCOAD_OK) {
        s.error = tocoad_last_error();
        return s;
    }
    tocoad_result_scores(result, &s.score, &s.raw_score, &s.is_anomalous);
    s.decision = tocoad_result_decision(result);
    const float *data = nullptr;
    tocoad_result_map(result, &data, &s.width, &s.height);
    s.map.assign(data, data + static_cast<std::size_t>(s.width) * static_cast<std::size_t>(s.height));
    tocoad_result_free(result);
    return s;
}

Scored infer(tocoad_detector *detector, const Frame &frame) {
    return infer(detector, frame.pixels.data(), frame.width, frame.height, frame.stride(), frame.format);
}

tocoad_detector *open_or_null(const std::string &bundle, tocoad_search search, tocoad_backend backend) {
    tocoad_open_options options;
    tocoad_open_options_init(&options);
    options.search = search;
    options.backend = backend;
    tocoad_detector *detector = nullptr;
    if (tocoad_open(bundle.c_str(), &options, &detector) != TOCOAD_OK) {
        std::fprintf(stderr, "tocoad_open(%s) failed: %s\n", bundle.c_str(), tocoad_last_error());
        return nullptr;
    }
    return detector;
}

}  // namespace support
