#include "preprocess.hpp"

#include <opencv2/imgproc.hpp>

#include "error.hpp"

namespace tocoad {
namespace {

constexpr int32_t kMinSide = 8;  // as tocoad_edge/runtime/frames.py
constexpr int32_t kMaxSide = 1 << 15;

int bytes_per_pixel(int32_t f) {
    switch (f) {
        case TOCOAD_PIXEL_GRAY8: return 1;
        case TOCOAD_PIXEL_BGRA8: return 4;
        default: return 3;
    }
}

int cv_type(int32_t f) {
    switch (f) {
        case TOCOAD_PIXEL_GRAY8: return CV_8UC1;
        case TOCOAD_PIXEL_BGRA8: return CV_8UC4;
        default: return CV_8UC3;
    }
}

const char *format_name(int32_t f) {
    switch (f) {
        case TOCOAD_PIXEL_BGR8: return "BGR8";
        case TOCOAD_PIXEL_RGB8: return "RGB8";
        case TOCOAD_PIXEL_GRAY8: return "GRAY8";
        case TOCOAD_PIXEL_BGRA8: return "BGRA8";
    }
    return "unknown";
}

}  // namespace

void validate_frame(const FrameView &frame) {
    if (frame.format != TOCOAD_PIXEL_BGR8 && frame.format != TOCOAD_PIXEL_RGB8 && frame.format != TOCOAD_PIXEL_GRAY8 &&
        frame.format != TOCOAD_PIXEL_BGRA8)
        throw_input("unknown pixel format",
                    "TOCOAD_PIXEL_BGR8 (0), TOCOAD_PIXEL_RGB8 (1), TOCOAD_PIXEL_GRAY8 (2) or TOCOAD_PIXEL_BGRA8 (3)",
                    std::to_string(frame.format), "pass one of the tocoad_pixel_format values");
    if (frame.pixels == nullptr)
        throw Error(TOCOAD_ERR_INVALID_ARGUMENT, "pixels is NULL", "a pointer to the frame's first row", "NULL",
                    "pass the address of the image buffer");
    if (frame.width < kMinSide || frame.height < kMinSide || frame.width > kMaxSide || frame.height > kMaxSide)
        throw_input("frame size out of range",
                    std::to_string(kMinSide) + ".." + std::to_string(kMaxSide) + " pixels per side",
                    std::to_string(frame.width) + " x " + std::to_string(frame.height),
                    "pass the frame's width and height in pixels");
    int64_t row = static_cast<int64_t>(frame.width) * bytes_per_pixel(frame.format);
    if (frame.stride < row)
        throw_input("stride is smaller than a row of pixels",
                    ">= " + std::to_string(row) + " bytes (width " + std::to_string(frame.width) + " x " +
                        std::to_string(bytes_per_pixel(frame.format)) + " bytes of " + format_name(frame.format) + ")",
                    std::to_string(frame.stride) + " bytes",
                    "pass the distance in bytes between the starts of two rows (check the pixel format)");
}

cv::Mat frame_to_model_input(const FrameView &frame, int input_width, int input_height) {
    validate_frame(frame);
    cv::Mat view(frame.height, frame.width, cv_type(frame.format), const_cast<uint8_t *>(frame.pixels), static_cast<std::size_t>(frame.stride));
    const cv::Size size(input_width, input_height);
    cv::Mat resized;
    if (view.size() == size) resized = view;
    else cv::resize(view, resized, size, 0, 0, cv::INTER_LINEAR);
    cv::Mat bgr;
    switch (frame.format) {
        case TOCOAD_PIXEL_BGR8: bgr = resized.isContinuous() && resized.data != view.data ? resized : resized.clone(); break;
        case TOCOAD_PIXEL_RGB8: cv::cvtColor(resized, bgr, cv::COLOR_RGB2BGR); break;
        case TOCOAD_PIXEL_GRAY8: cv::cvtColor(resized, bgr, cv::COLOR_GRAY2BGR); break;
        case TOCOAD_PIXEL_BGRA8: cv::cvtColor(resized, bgr, cv::COLOR_BGRA2BGR); break;
    }
    return bgr;
}

}  // namespace tocoad
