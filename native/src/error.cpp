#include "error.hpp"

namespace tocoad {
namespace {

std::string compose(const std::string &message, const std::string &expected, const std::string &got,
                    const std::string &fix) {
    std::string s = message;  // same layout as TocoadError.__str__ in Python
    if (!expected.empty()) s += "; expected: " + expected;
    if (!got.empty()) s += "; got: " + got;
    if (!fix.empty()) s += "; fix: " + fix;
    return s;
}

}  // namespace

Error::Error(tocoad_status status, const std::string &message, const std::string &expected,
             const std::string &got, const std::string &fix)
    : std::runtime_error(compose(message, expected, got, fix)), status_(status) {}

void throw_bundle(const std::string &message, const std::string &expected, const std::string &got,
                  const std::string &fix) {
    throw Error(TOCOAD_ERR_BUNDLE, message, expected, got, fix);
}

void throw_input(const std::string &message, const std::string &expected, const std::string &got,
                 const std::string &fix) {
    throw Error(TOCOAD_ERR_INPUT, message, expected, got, fix);
}

}  // namespace tocoad
