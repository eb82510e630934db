// One exception type inside the library; converted to a tocoad_status + message at the C boundary.
#pragma once

#include <stdexcept>
#include <string>

#include "tocoad_edge/tocoad_edge.h"

namespace tocoad {

// Mirrors tocoad_edge.errors.TocoadError: a message plus what was expected, what was got, how to fix.
class Error : public std::runtime_error {
public:
    Error(tocoad_status status, const std::string &message, const std::string &expected = "",
          const std::string &got = "", const std::string &fix = "");

    tocoad_status status() const noexcept { return status_; }

private:
    tocoad_status status_;
};

[[noreturn]] void throw_bundle(const std::string &message, const std::string &expected = "",
                               const std::string &got = "", const std::string &fix = "");
[[noreturn]] void throw_input(const std::string &message, const std::string &expected = "",
                              const std::string &got = "", const std::string &fix = "");

}  // namespace tocoad
