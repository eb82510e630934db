#include "protobuf_wire.hpp"

#include <cstring>

#include "error.hpp"

namespace tocoad::wire {
namespace {

[[noreturn]] void malformed(const std::string &what) {
    throw_bundle("the ONNX model is not a valid protobuf message (" + what + ")", "a file written by onnx.save", "",
                 "copy the bundle again or re-export it");
}

uint64_t read_varint(std::string_view b, std::size_t &pos) {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (pos >= b.size()) malformed("truncated varint");
        auto byte = static_cast<uint8_t>(b[pos++]);
        value |= static_cast<uint64_t>(byte & 0x7f) << shift;
        if ((byte & 0x80) == 0) return value;
    }
    malformed("varint longer than 10 bytes");
}

}  // namespace

std::vector<Field> parse(std::string_view message) {
    std::vector<Field> fields;
    std::size_t pos = 0;
    while (pos < message.size()) {
        const std::size_t start = pos;
        Field f;
        const uint64_t key = read_varint(message, pos);
        f.number = static_cast<uint32_t>(key >> 3);
        f.type = static_cast<uint32_t>(key & 7);
        std::size_t size = 0;
        switch (f.type) {
            case kVarint: f.varint = read_varint(message, pos); break;
            case kFixed64: size = 8; break;
            case kFixed32: size = 4; break;
            case kLengthDelimited: {
                const uint64_t length = read_varint(message, pos);
                if (length > message.size() - pos) malformed("length beyond the end");
                size = static_cast<std::size_t>(length);
                break;
            }
            default: malformed("wire type " + std::to_string(f.type));
        }
        if (size > message.size() - pos) malformed("truncated field");
        f.payload = message.substr(pos, size);
        pos += size;
        f.whole = message.substr(start, pos - start);
        fields.push_back(f);
    }
    return fields;
}

void put_varint(std::string &out, uint64_t value) {
    while (value >= 0x80) {
        out.push_back(static_cast<char>(value | 0x80));
        value >>= 7;
    }
    out.push_back(static_cast<char>(value));
}

void put_key(std::string &out, uint32_t number, WireType type) { put_varint(out, (uint64_t{number} << 3) | type); }

void put_bytes(std::string &out, uint32_t number, std::string_view bytes) {
    put_key(out, number, kLengthDelimited);
    put_varint(out, bytes.size());
    out.append(bytes.data(), bytes.size());
}

void put_uint(std::string &out, uint32_t number, uint64_t value) {
    put_key(out, number, kVarint);
    put_varint(out, value);
}

void put_float(std::string &out, uint32_t number, float value) {
    put_key(out, number, kFixed32);
    char bytes[4];
    std::memcpy(bytes, &value, 4);  // little-endian hosts only (x86-64, aarch64)
    out.append(bytes, 4);
}

std::vector<int64_t> int64s(const std::vector<Field> &fields, uint32_t number) {
    std::vector<int64_t> values;
    for (const auto &f : fields) {
        if (f.number != number) continue;
        if (f.type == kVarint) {
            values.push_back(static_cast<int64_t>(f.varint));
        } else if (f.type == kLengthDelimited) {
            std::size_t pos = 0;
            while (pos < f.payload.size()) values.push_back(static_cast<int64_t>(read_varint(f.payload, pos)));
        }
    }
    return values;
}

}  // namespace tocoad::wire
