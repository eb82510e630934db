// A minimal test harness: CHECK(cond) records a failure with file:line and keeps going; main returns
// finish() so ctest sees a non-zero exit status when any check failed.
#pragma once

#include <cstdio>
#include <string>

namespace check {

inline int &failures() {
    static int count = 0;
    return count;
}

inline int &passes() {
    static int count = 0;
    return count;
}

inline void record(bool ok, const char *expr, const char *file, int line, const std::string &detail) {
    if (ok) {
        ++passes();
        return;
    }
    ++failures();
    std::fprintf(stderr, "FAILED %s:%d: %s %s\n", file, line, expr, detail.c_str());
}

inline int finish(const char *name) {
    std::printf("%s: %d checks passed, %d failed\n", name, passes(), failures());
    if (passes() == 0) {
        std::fprintf(stderr, "%s: no check ran\n", name);
        return 1;
    }
    return failures() == 0 ? 0 : 1;
}

}  // namespace check

#define CHECK(cond) ::check::record(static_cast<bool>(cond), #cond, __FILE__, __LINE__, "")
#define CHECK_MSG(cond, msg) ::check::record(static_cast<bool>(cond), #cond, __FILE__, __LINE__, (msg))
