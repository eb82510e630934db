#include "onnx_opencv_compat.hpp"

#include <cfloat>
#include <cstring>
#include <map>
#include <optional>
#include <vector>

#include "protobuf_wire.hpp"

namespace tocoad {
namespace {

using wire::Field;

// ONNX field numbers (onnx.proto3).
namespace model_f { constexpr uint32_t producer_name = 2, graph = 7; }
namespace graph_f { constexpr uint32_t node = 1, initializer = 5; }
namespace node_f { constexpr uint32_t input = 1, output = 2, name = 3, op_type = 4, attribute = 5, domain = 7; }
namespace attr_f { constexpr uint32_t name = 1, f = 2, i = 3, t = 5, type = 20; }
namespace tensor_f { constexpr uint32_t dims = 1, data_type = 2, float_data = 4, int64_data = 7, name = 8, raw_data = 9; }
constexpr uint64_t kAttrFloat = 1, kAttrInt = 2;
constexpr uint64_t kFloat = 1, kInt64 = 7;

struct Constant {
    uint64_t data_type = 0;
    std::vector<int64_t> dims;
    std::vector<double> values;
};

std::optional<Constant> read_constant(std::string_view tensor, std::string *name) {
    const auto fields = wire::parse(tensor);
    Constant c;
    std::string_view raw;
    bool has_raw = false;
    std::vector<float> floats;
    for (const auto &f : fields) {
        if (f.number == tensor_f::data_type && f.type == wire::kVarint) c.data_type = f.varint;
        if (f.number == tensor_f::name && f.type == wire::kLengthDelimited && name) *name = std::string(f.payload);
        if (f.number == tensor_f::raw_data && f.type == wire::kLengthDelimited) raw = f.payload, has_raw = true;
        if (f.number == tensor_f::float_data) {
            const std::string_view p = f.payload;
            for (std::size_t k = 0; k + 4 <= p.size(); k += 4) {
                float v;
                std::memcpy(&v, p.data() + k, 4);
                floats.push_back(v);
            }
        }
    }
    c.dims = wire::int64s(fields, tensor_f::dims);
    if (c.data_type == kInt64) {
        if (has_raw) {
            for (std::size_t k = 0; k + 8 <= raw.size(); k += 8) {
                int64_t v;
                std::memcpy(&v, raw.data() + k, 8);
                c.values.push_back(static_cast<double>(v));
            }
        } else {
            for (int64_t v : wire::int64s(fields, tensor_f::int64_data)) c.values.push_back(static_cast<double>(v));
        }
    } else if (c.data_type == kFloat) {
        if (has_raw) {
            for (std::size_t k = 0; k + 4 <= raw.size(); k += 4) {
                float v;
                std::memcpy(&v, raw.data() + k, 4);
                c.values.push_back(v);
            }
        } else {
            for (float v : floats) c.values.push_back(v);
        }
    } else {
        return std::nullopt;
    }
    return c;
}

struct Node {
    std::vector<std::string> inputs;
    std::vector<std::string> outputs;
    std::string name;
    std::string op_type;
    std::string domain;
    std::vector<Field> attributes;  // kept as they are
    std::vector<Field> rest;        // doc_string etc., kept as they are
    std::string extra_attributes;   // serialized AttributeProto fields added by a rewrite
};

Node read_node(std::string_view bytes) {
    Node n;
    for (const auto &f : wire::parse(bytes)) {
        switch (f.number) {
            case node_f::input: n.inputs.emplace_back(f.payload); break;
            case node_f::output: n.outputs.emplace_back(f.payload); break;
            case node_f::name: n.name = std::string(f.payload); break;
            case node_f::op_type: n.op_type = std::string(f.payload); break;
            case node_f::domain: n.domain = std::string(f.payload); n.rest.push_back(f); break;
            case node_f::attribute: n.attributes.push_back(f); break;
            default: n.rest.push_back(f);
        }
    }
    return n;
}

std::string write_node(const Node &n) {
    std::string out;
    for (const auto &s : n.inputs) wire::put_bytes(out, node_f::input, s);
    for (const auto &s : n.outputs) wire::put_bytes(out, node_f::output, s);
    if (!n.name.empty()) wire::put_bytes(out, node_f::name, n.name);
    wire::put_bytes(out, node_f::op_type, n.op_type);
    for (const auto &a : n.attributes) out.append(a.whole);
    out += n.extra_attributes;
    for (const auto &f : n.rest) out.append(f.whole);
    return out;
}

std::string int_attribute(const std::string &name, int64_t value) {
    std::string a;
    wire::put_bytes(a, attr_f::name, name);
    wire::put_uint(a, attr_f::i, static_cast<uint64_t>(value));
    wire::put_uint(a, attr_f::type, kAttrInt);
    std::string field;
    wire::put_bytes(field, node_f::attribute, a);
    return field;
}

std::string float_attribute(const std::string &name, float value) {
    std::string a;
    wire::put_bytes(a, attr_f::name, name);
    wire::put_float(a, attr_f::f, value);
    wire::put_uint(a, attr_f::type, kAttrFloat);
    std::string field;
    wire::put_bytes(field, node_f::attribute, a);
    return field;
}

std::string int64_initializer(const std::string &name, int64_t value) {
    std::string t;
    wire::put_uint(t, tensor_f::dims, 1);
    wire::put_uint(t, tensor_f::data_type, kInt64);
    wire::put_bytes(t, tensor_f::name, name);
    char raw[8];
    std::memcpy(raw, &value, 8);
    wire::put_bytes(t, tensor_f::raw_data, std::string_view(raw, 8));
    std::string field;
    wire::put_bytes(field, graph_f::initializer, t);
    return field;
}

std::optional<int64_t> int_attribute_of(const Node &n, const std::string &name) {
    for (const auto &a : n.attributes) {
        std::optional<int64_t> value;
        bool match = false;
        for (const auto &f : wire::parse(a.payload)) {
            if (f.number == attr_f::name) match = f.payload == name;
            if (f.number == attr_f::i && f.type == wire::kVarint) value = static_cast<int64_t>(f.varint);
        }
        if (match) return value;
    }
    return std::nullopt;
}

class GraphRewriter {
public:
    GraphRewriter(std::string_view graph, CompatReport &report) : fields_(wire::parse(graph)), report_(report) {
        for (const auto &f : fields_) {
            if (f.number == graph_f::initializer) {
                std::string name;
                if (auto c = read_constant(f.payload, &name)) constants_[name] = *c;
            } else if (f.number == graph_f::node) {
                Node n = read_node(f.payload);
                if (n.op_type == "Constant" && n.outputs.size() == 1)
                    for (const auto &a : n.attributes)
                        for (const auto &af : wire::parse(a.payload))
                            if (af.number == attr_f::t)
                                if (auto c = read_constant(af.payload, nullptr)) constants_[n.outputs[0]] = *c;
            }
        }
    }

    std::string rewrite() {
        std::string nodes;
        std::string out;
        for (const auto &f : fields_) {
            if (f.number != graph_f::node) {
                if (f.number != graph_f::initializer) out.append(f.whole);
                continue;
            }
            Node n = read_node(f.payload);
            while (!n.inputs.empty() && n.inputs.back().empty()) {
                n.inputs.pop_back();
                ++report_.dropped_empty_inputs;
            }
            if (n.domain.empty() && n.op_type == "Clip" && clip_to_attributes(n)) ++report_.clips;
            if (n.domain.empty() && n.op_type == "Gather" && gather_to_slices(n, nodes)) {
                ++report_.gathers;
                continue;
            }
            wire::put_bytes(nodes, graph_f::node, write_node(n));
        }
        // Field order inside a message does not matter to protobuf; nodes stay in topological order.
        std::string graph = nodes + out;
        for (const auto &f : fields_)
            if (f.number == graph_f::initializer) graph.append(f.whole);
        graph += new_initializers_;
        return graph;
    }

private:
    std::optional<double> scalar(const std::string &name, uint64_t type) const {
        auto it = constants_.find(name);
        if (it == constants_.end() || it->second.data_type != type || it->second.values.size() != 1) return std::nullopt;
        return it->second.values[0];
    }

    bool clip_to_attributes(Node &n) const {
        if (n.inputs.size() < 2 || n.inputs.size() > 3) return false;
        float lo = -FLT_MAX, hi = FLT_MAX;
        if (!n.inputs[1].empty()) {
            auto v = scalar(n.inputs[1], kFloat);
            if (!v) return false;
            lo = static_cast<float>(*v);
        }
        if (n.inputs.size() == 3) {
            auto v = scalar(n.inputs[2], kFloat);
            if (!v) return false;
            hi = static_cast<float>(*v);
        }
        n.inputs.resize(1);
        n.extra_attributes += float_attribute("min", lo) + float_attribute("max", hi);
        return true;
    }

    bool gather_to_slices(const Node &n, std::string &nodes) {
        if (n.inputs.size() != 2 || n.outputs.size() != 1) return false;
        auto it = constants_.find(n.inputs[1]);
        if (it == constants_.end() || it->second.data_type != kInt64 || it->second.dims.size() != 1 ||
            it->second.values.size() < 2)
            return false;
        for (double k : it->second.values)
            if (k < 0) return false;  // negative indices need the input rank; leave such a Gather alone
        const int64_t axis = int_attribute_of(n, "axis").value_or(0);
        if (axis < 0) return false;
        const std::string base = (n.name.empty() ? n.outputs[0] : n.name) + "/tocoad_opencv";
        Node concat;
        concat.op_type = "Concat";
        concat.name = base + "/concat";
        concat.outputs = n.outputs;
        concat.extra_attributes = int_attribute("axis", axis);
        for (std::size_t j = 0; j < it->second.values.size(); ++j) {
            const auto k = static_cast<int64_t>(it->second.values[j]);
            const std::string prefix = base + "/slice" + std::to_string(j);
            new_initializers_ += int64_initializer(prefix + "/starts", k);
            new_initializers_ += int64_initializer(prefix + "/ends", k + 1);
            new_initializers_ += int64_initializer(prefix + "/axes", axis);
            Node slice;
            slice.op_type = "Slice";
            slice.name = prefix;
            slice.inputs = {n.inputs[0], prefix + "/starts", prefix + "/ends", prefix + "/axes"};
            slice.outputs = {prefix + "/out"};
            concat.inputs.push_back(slice.outputs[0]);
            wire::put_bytes(nodes, graph_f::node, write_node(slice));
        }
        wire::put_bytes(nodes, graph_f::node, write_node(concat));
        return true;
    }

    std::vector<Field> fields_;
    CompatReport &report_;
    std::map<std::string, Constant> constants_;
    std::string new_initializers_;
};

}  // namespace

std::string opencv_compatible_onnx(const std::string &model, CompatReport *report) {
    CompatReport local;
    CompatReport &r = report ? *report : local;
    std::string out;
    for (const auto &f : wire::parse(model)) {
        if (f.number == model_f::producer_name && f.type == wire::kLengthDelimited && f.payload == "pytorch") {
            wire::put_bytes(out, model_f::producer_name, "tocoad-edge");
            ++r.renamed_producer;
        } else if (f.number == model_f::graph && f.type == wire::kLengthDelimited) {
            wire::put_bytes(out, model_f::graph, GraphRewriter(f.payload, r).rewrite());
        } else {
            out.append(f.whole);
        }
    }
    return out;
}

}  // namespace tocoad
