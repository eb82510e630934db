#include "engine_bindings.hpp"

#include <map>

#include "error.hpp"

namespace tocoad {
namespace {

std::string dims_text(const std::vector<int64_t> &dims) {
    std::string out = "[";
    for (std::size_t i = 0; i < dims.size(); ++i) out += (i ? ", " : "") + std::to_string(dims[i]);
    return out + "]";
}

std::string list_text(const std::vector<TensorBinding> &list) {
    std::string out;
    for (const auto &b : list) out += (out.empty() ? "" : ", ") + b.name + " " + dims_text(b.dims) + " " + b.dtype;
    return out.empty() ? "no tensors" : out;
}

}  // namespace

void check_bindings(const std::string &engine_file, const std::vector<TensorBinding> &allocated,
                    const std::vector<TensorBinding> &engine_io) {
    std::map<std::string, const TensorBinding *> have;
    for (const auto &b : engine_io) have[b.name] = &b;
    std::string diff;
    auto add = [&](const std::string &d) { diff += (diff.empty() ? "" : "; ") + d; };
    std::map<std::string, bool> wanted;
    for (const auto &want : allocated) {
        wanted[want.name] = true;
        auto it = have.find(want.name);
        if (it == have.end()) {
            add("no tensor '" + want.name + "'");
            continue;
        }
        if (it->second->dims != want.dims)
            add("'" + want.name + "' shape " + dims_text(it->second->dims) + " != " + dims_text(want.dims));
        if (it->second->dtype != want.dtype)
            add("'" + want.name + "' dtype " + it->second->dtype + " != " + want.dtype);
    }
    for (const auto &b : engine_io)
        if (!wanted.count(b.name)) add("unexpected tensor '" + b.name + "'");
    if (!diff.empty())
        throw Error(TOCOAD_ERR_ENGINE_INCOMPATIBLE,
                    "engine " + engine_file + " does not have the tensors the runtime allocates for (" + diff + ")",
                    list_text(allocated), list_text(engine_io),
                    "rebuild the engine from this bundle on this device: tocoad-export engine BUNDLE");
}

}  // namespace tocoad
