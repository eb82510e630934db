#include "npy.hpp"

#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>

#include "error.hpp"

namespace tocoad {
namespace {

const char *kFix = "write the array with numpy.save(file, array.astype('float32')) (tocoad-export does this)";

// The header is a Python dict literal, e.g. {'descr': '<f4', 'fortran_order': False, 'shape': (10, 152), }
std::string dict_value(const std::string &header, const std::string &key, const std::string &where) {
    std::string quoted = "'" + key + "'";
    auto k = header.find(quoted);
    if (k == std::string::npos) throw_bundle(where + " has a malformed .npy header", "a '" + key + "' entry", header, kFix);
    auto colon = header.find(':', k + quoted.size());
    if (colon == std::string::npos) throw_bundle(where + " has a malformed .npy header", "key: value", header, kFix);
    auto start = header.find_first_not_of(' ', colon + 1);
    if (start == std::string::npos) throw_bundle(where + " has a malformed .npy header", "a value", header, kFix);
    std::size_t end;
    if (header[start] == '\'') {
        end = header.find('\'', start + 1);
        if (end == std::string::npos) throw_bundle(where + " has a malformed .npy header", "a quoted value", header, kFix);
        return header.substr(start + 1, end - start - 1);
    }
    if (header[start] == '(') {
        end = header.find(')', start);
        if (end == std::string::npos) throw_bundle(where + " has a malformed .npy header", "a shape tuple", header, kFix);
        return header.substr(start, end - start + 1);
    }
    end = header.find_first_of(",}", start);
    return header.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

std::vector<int64_t> parse_shape(const std::string &tuple, const std::string &where) {
    std::vector<int64_t> dims;
    std::size_t i = 1;  // after '('
    while (i < tuple.size()) {
        while (i < tuple.size() && (tuple[i] == ' ' || tuple[i] == ',')) ++i;
        if (i >= tuple.size() || tuple[i] == ')') break;
        if (tuple[i] < '0' || tuple[i] > '9') throw_bundle(where + " has a malformed .npy shape", "integers", tuple, kFix);
        int64_t v = 0;
        while (i < tuple.size() && tuple[i] >= '0' && tuple[i] <= '9') {
            if (v > (std::numeric_limits<int64_t>::max() - 9) / 10)
                throw_bundle(where + " has an absurd .npy shape", "a shape that fits in memory", tuple, kFix);
            v = v * 10 + (tuple[i] - '0');
            ++i;
        }
        dims.push_back(v);
    }
    return dims;
}

}  // namespace

float half_to_float(uint16_t h) {
    uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    uint32_t exponent = (h >> 10) & 0x1fu;
    uint32_t mantissa = h & 0x3ffu;
    uint32_t bits;
    if (exponent == 0) {
        if (mantissa == 0) {
            bits = sign;
        } else {  // subnormal: normalise
            int shift = 0;
            while ((mantissa & 0x400u) == 0) {
                mantissa <<= 1;
                ++shift;
            }
            mantissa &= 0x3ffu;
            bits = sign | static_cast<uint32_t>(127 - 15 + 1 - shift) << 23 | mantissa << 13;
        }
    } else if (exponent == 0x1f) {
        bits = sign | 0x7f800000u | mantissa << 13;  // inf / nan
    } else {
        bits = sign | (exponent + 127 - 15) << 23 | mantissa << 13;
    }
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

Matrix parse_npy(const std::vector<uint8_t> &bytes, const std::string &where) {
    static const uint8_t magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
    if (bytes.size() < 10 || std::memcmp(bytes.data(), magic, 6) != 0)
        throw_bundle(where + " is not a .npy file", "the \\x93NUMPY magic", std::to_string(bytes.size()) + " bytes", kFix);
    uint8_t major = bytes[6];
    std::size_t header_len, offset;
    if (major == 1) {
        header_len = bytes[8] | bytes[9] << 8;
        offset = 10;
    } else if (major == 2 || major == 3) {
        if (bytes.size() < 12) throw_bundle(where + " is truncated", "a .npy header", "", kFix);
        header_len = static_cast<std::size_t>(bytes[8]) | static_cast<std::size_t>(bytes[9]) << 8 |
                     static_cast<std::size_t>(bytes[10]) << 16 | static_cast<std::size_t>(bytes[11]) << 24;
        offset = 12;
    } else {
        throw_bundle(where + " has an unknown .npy format version", "1, 2 or 3", std::to_string(major), kFix);
    }
    if (header_len > bytes.size() - offset) throw_bundle(where + " is truncated", "a complete .npy header", "", kFix);
    std::string header(reinterpret_cast<const char *>(bytes.data() + offset), header_len);
    offset += header_len;

    std::string descr = dict_value(header, "descr", where);
    std::string fortran = dict_value(header, "fortran_order", where);
    std::vector<int64_t> shape = parse_shape(dict_value(header, "shape", where), where);
    if (descr.find('O') != std::string::npos || descr.find('V') != std::string::npos || descr.find('[') != std::string::npos)
        throw_bundle(where + " holds Python objects (a pickle); it is refused", "float32 or float16", descr, kFix);
    std::size_t item;
    if (descr == "<f4") item = 4;
    else if (descr == "<f2") item = 2;
    else throw_bundle(where + " has an unsupported dtype", "little-endian float32 ('<f4') or float16 ('<f2')", descr, kFix);
    if (fortran != "False") throw_bundle(where + " is in Fortran order", "C order (fortran_order False)", fortran, kFix);
    if (shape.size() != 2) throw_bundle(where + " is not a 2-D array", "[entries, dim]", std::to_string(shape.size()) + " dims", kFix);
    if (shape[0] > 0 && shape[1] > static_cast<int64_t>((bytes.size() - offset) / item) / shape[0])
        throw_bundle(where + " is truncated", std::to_string(shape[0]) + " x " + std::to_string(shape[1]) + " values",
                     std::to_string((bytes.size() - offset) / item) + " values", "copy the bundle again or re-export it");
    std::size_t count = static_cast<std::size_t>(shape[0] * shape[1]);
    if (bytes.size() - offset != count * item)
        throw_bundle(where + " has trailing or missing bytes", std::to_string(count * item) + " data bytes",
                     std::to_string(bytes.size() - offset) + " data bytes", "copy the bundle again or re-export it");

    Matrix m;
    m.rows = shape[0];
    m.cols = shape[1];
    m.data.resize(count);
    const uint8_t *src = bytes.data() + offset;
    if (item == 4) {
        m.source_dtype = "float32";
        std::memcpy(m.data.data(), src, count * 4);
    } else {
        m.source_dtype = "float16";
        for (std::size_t i = 0; i < count; ++i) m.data[i] = half_to_float(static_cast<uint16_t>(src[2 * i] | src[2 * i + 1] << 8));
    }
    return m;
}

Matrix read_npy(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(TOCOAD_ERR_RESOURCE, "cannot open " + path);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return parse_npy(bytes, path);
}

}  // namespace tocoad
