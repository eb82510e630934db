// A strict reader for the .npy files of a bundle: float32 or float16, little endian, C order, 2-D.
// Object arrays (pickles), Fortran order, big endian and every other dtype are refused.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tocoad {

struct Matrix {
    int64_t rows = 0;
    int64_t cols = 0;
    std::vector<float> data;  // row-major rows x cols, converted to float32
    std::string source_dtype;  // "float32" or "float16"
};

// Parse .npy bytes; `where` names the file in errors. Throws Error(TOCOAD_ERR_BUNDLE).
Matrix parse_npy(const std::vector<uint8_t> &bytes, const std::string &where);

Matrix read_npy(const std::string &path);

float half_to_float(uint16_t h);

}  // namespace tocoad
