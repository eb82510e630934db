#include "onnx_producer_patch.hpp"

#include "error.hpp"

namespace tocoad {
namespace {

constexpr uint64_t kProducerNameField = 2;  // ModelProto.producer_name (string)

uint64_t read_varint(const std::vector<uint8_t> &b, std::size_t &pos) {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (pos >= b.size()) throw_bundle("the ONNX model is truncated", "a complete protobuf message", "", "re-export the bundle");
        uint8_t byte = b[pos++];
        value |= static_cast<uint64_t>(byte & 0x7f) << shift;
        if ((byte & 0x80) == 0) return value;
    }
    throw_bundle("the ONNX model is not a protobuf message", "varints of at most 10 bytes", "a longer one", "re-export the bundle");
}

void write_varint(std::vector<uint8_t> &out, uint64_t v) {
    while (v >= 0x80) {
        out.push_back(static_cast<uint8_t>(v | 0x80));
        v >>= 7;
    }
    out.push_back(static_cast<uint8_t>(v));
}

}  // namespace

std::vector<uint8_t> rename_pytorch_producer(const std::vector<uint8_t> &model, const std::string &replacement) {
    std::size_t pos = 0;
    while (pos < model.size()) {
        std::size_t field_start = pos;
        uint64_t key = read_varint(model, pos);
        uint64_t field = key >> 3;
        uint64_t wire = key & 7;
        std::size_t value_start = pos;
        if (wire == 0) {
            read_varint(model, pos);
        } else if (wire == 1) {
            pos += 8;
        } else if (wire == 5) {
            pos += 4;
        } else if (wire == 2) {
            uint64_t length = read_varint(model, pos);
            if (length > model.size() - pos)
                throw_bundle("the ONNX model is truncated", "a complete protobuf message", "", "re-export the bundle");
            value_start = pos;
            pos += static_cast<std::size_t>(length);
            if (field == kProducerNameField &&
                std::string(model.begin() + static_cast<std::ptrdiff_t>(value_start), model.begin() + static_cast<std::ptrdiff_t>(pos)) == "pytorch") {
                std::vector<uint8_t> out(model.begin(), model.begin() + static_cast<std::ptrdiff_t>(field_start));
                write_varint(out, key);
                write_varint(out, replacement.size());
                out.insert(out.end(), replacement.begin(), replacement.end());
                out.insert(out.end(), model.begin() + static_cast<std::ptrdiff_t>(pos), model.end());
                return out;
            }
        } else {
            throw_bundle("the ONNX model is not a protobuf message", "wire types 0, 1, 2 or 5",
                         "wire type " + std::to_string(wire), "re-export the bundle");
        }
        if (pos > model.size())
            throw_bundle("the ONNX model is truncated", "a complete protobuf message", "", "re-export the bundle");
    }
    return model;
}

}  // namespace tocoad
