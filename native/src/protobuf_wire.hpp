// Just enough of the protobuf wire format to read and re-write ONNX messages without libprotobuf:
// a message is split into fields (kept as byte ranges) and new fields are appended to a string.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tocoad::wire {

enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

struct Field {
    uint32_t number = 0;
    uint32_t type = 0;
    uint64_t varint = 0;         // kVarint
    std::string_view payload;    // kLengthDelimited: the bytes; kFixed32/64: the raw little-endian bytes
    std::string_view whole;      // key + value, to copy the field unchanged
};

// Splits a message into its fields. Throws Error(TOCOAD_ERR_BUNDLE) on malformed input.
std::vector<Field> parse(std::string_view message);

void put_varint(std::string &out, uint64_t value);
void put_key(std::string &out, uint32_t number, WireType type);
void put_bytes(std::string &out, uint32_t number, std::string_view bytes);
void put_uint(std::string &out, uint32_t number, uint64_t value);
void put_float(std::string &out, uint32_t number, float value);

// Values of a repeated int64 field, packed or not.
std::vector<int64_t> int64s(const std::vector<Field> &fields, uint32_t number);

}  // namespace tocoad::wire
