// SHA-256 of a file or a buffer, as lowercase hex (OpenSSL libcrypto).
#pragma once

#include <cstddef>
#include <string>

namespace tocoad {

std::string sha256_hex(const void *data, std::size_t size);

// Streams the file in 1 MiB chunks. Throws Error(TOCOAD_ERR_RESOURCE) if it cannot be read.
std::string sha256_file_hex(const std::string &path);

}  // namespace tocoad
