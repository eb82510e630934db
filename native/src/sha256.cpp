#include "sha256.hpp"

#include <openssl/evp.h>

#include <cstdio>
#include <memory>
#include <vector>

#include "error.hpp"

namespace tocoad {
namespace {

struct DigestContext {
    DigestContext() : ctx(EVP_MD_CTX_new()) {
        if (ctx == nullptr || EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) != 1)
            throw Error(TOCOAD_ERR_RESOURCE, "cannot initialise SHA-256 (OpenSSL)");
    }
    ~DigestContext() { EVP_MD_CTX_free(ctx); }
    DigestContext(const DigestContext &) = delete;
    DigestContext &operator=(const DigestContext &) = delete;

    void update(const void *data, std::size_t size) {
        if (size > 0 && EVP_DigestUpdate(ctx, data, size) != 1)
            throw Error(TOCOAD_ERR_RESOURCE, "SHA-256 update failed (OpenSSL)");
    }

    std::string hex() {
        unsigned char digest[EVP_MAX_MD_SIZE];
        unsigned int length = 0;
        if (EVP_DigestFinal_ex(ctx, digest, &length) != 1)
            throw Error(TOCOAD_ERR_RESOURCE, "SHA-256 final failed (OpenSSL)");
        static const char digits[] = "0123456789abcdef";
        std::string out(length * 2, '0');
        for (unsigned int i = 0; i < length; ++i) {
            out[2 * i] = digits[digest[i] >> 4];
            out[2 * i + 1] = digits[digest[i] & 0x0f];
        }
        return out;
    }

    EVP_MD_CTX *ctx;
};

struct FileCloser {
    void operator()(std::FILE *f) const { std::fclose(f); }
};

}  // namespace

std::string sha256_hex(const void *data, std::size_t size) {
    DigestContext digest;
    digest.update(data, size);
    return digest.hex();
}

std::string sha256_file_hex(const std::string &path) {
    std::unique_ptr<std::FILE, FileCloser> file(std::fopen(path.c_str(), "rb"));
    if (!file) throw Error(TOCOAD_ERR_RESOURCE, "cannot open " + path + " for reading");
    DigestContext digest;
    std::vector<unsigned char> chunk(1 << 20);
    for (;;) {
        std::size_t n = std::fread(chunk.data(), 1, chunk.size(), file.get());
        digest.update(chunk.data(), n);
        if (n < chunk.size()) {
            if (std::ferror(file.get())) throw Error(TOCOAD_ERR_RESOURCE, "read error in " + path);
            break;
        }
    }
    return digest.hex();
}

}  // namespace tocoad
