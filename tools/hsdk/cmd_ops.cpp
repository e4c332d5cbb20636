// hsdk ops [--json] [NAME] and hsdk run OPERATION --request JSON|@FILE|@- [-p] [--json]: the
// operation registry itself, and any operation of it run from the command line.
#include "commands.hpp"
#include "progress_display.hpp"

#include <hypersdk/ops.hpp>

#include <fmt/format.h>

#include <memory>

namespace hsdk {
namespace {

using json = nlohmann::json;

// "string", "integer", "one of a, b", "object" for a property schema.
std::string type_of(const json &schema, const json &root) {
    const json *s = &schema;
    if (s->contains("$ref")) {
        const std::string ref = (*s)["$ref"];
        const std::string prefix = "#/definitions/";
        if (ref.rfind(prefix, 0) == 0 && root.contains("definitions") && root["definitions"].contains(ref.substr(prefix.size())))
            s = &root["definitions"][ref.substr(prefix.size())];
    }
    if (s->contains("enum")) {
        std::string out = "one of";
        for (const auto &v : (*s)["enum"]) out += " " + (v.is_string() ? v.get<std::string>() : v.dump());
        return out;
    }
    if (s->contains("type")) return (*s)["type"].is_string() ? (*s)["type"].get<std::string>() : (*s)["type"].dump();
    if (s->contains("oneOf")) {
        std::string out;
        for (const auto &b : (*s)["oneOf"])
            if (b.contains("type")) out += (out.empty() ? "" : " or ") + b["type"].get<std::string>();
        return out.empty() ? "value" : out;
    }
    return "value";
}

void print_fields(const json &schema) {
    const auto props = schema.value("properties", json::object());
    const auto required = schema.value("required", json::array());
    for (const auto &[name, sub] : props.items()) {
        const bool req = std::find(required.begin(), required.end(), name) != required.end();
        std::string desc = sub.value("description", "");
        json def = json::object();  // what a $ref points at
        if (sub.contains("$ref")) {
            const std::string ref = sub["$ref"];
            def = schema.value("definitions", json::object()).value(ref.substr(ref.rfind('/') + 1), json::object());
            if (desc.empty()) desc = def.value("description", "");
        }
        std::string line = fmt::format("  {:<22} {:<10}", name, type_of(sub, schema));
        if (req) line += " (required)";
        if (sub.contains("default")) line += " [default " + sub["default"].dump() + "]";
        else if (def.contains("default")) line += " [default " + def["default"].dump() + "]";
        fmt::print("{}\n", line);
        if (!desc.empty()) fmt::print("      {}\n", desc);
    }
}

void register_ops(CLI::App &root, std::vector<Command> &commands) {
    auto *app = root.add_subcommand("ops", "List the library's operations (what `hsdk run` runs), or describe one");
    struct Args {
        bool json = false;
        std::string name;
    };
    auto a = std::make_shared<Args>();
    add_output_flags(app, a->json, "the registry (or the operation) with its schemas");
    app->add_option("name", a->name, "An operation to describe, e.g. image.convert");
    commands.push_back({app, [a]() {
                            if (a->name.empty()) {
                                if (a->json) {
                                    fmt::print("{}\n", hypersdk::operations_json().dump(2));
                                    return exit_ok;
                                }
                                for (const auto &op : hypersdk::operations())
                                    fmt::print("{:<20} {:<5} {}\n", op.name, op.long_running ? "long" : "", op.summary);
                                return exit_ok;
                            }
                            const json registry = hypersdk::operations_json();
                            for (const auto &op : registry["operations"]) {
                                if (op["name"] != a->name) continue;
                                if (a->json) {
                                    fmt::print("{}\n", op.dump(2));
                                    return exit_ok;
                                }
                                fmt::print("{} - {}\n\n{}\n\n", a->name, op["summary"].get<std::string>(), op["description"].get<std::string>());
                                fmt::print("long-running: {}\n", op["long_running"].get<bool>() ? "yes (runs as a queued job)" : "no");
                                std::string errors;
                                for (const auto &e : op["errors"]) errors += (errors.empty() ? "" : ", ") + e.get<std::string>();
                                fmt::print("errors: {}\n\nrequest:\n", errors.empty() ? "-" : errors);
                                print_fields(op["request"]);
                                fmt::print("\nresult:\n");
                                print_fields(op["result"]);
                                return exit_ok;
                            }
                            return report_message(fmt::format("unknown operation '{}' (hsdk ops lists them)", a->name), exit_usage);
                        }});
}

void register_run(CLI::App &root, std::vector<Command> &commands) {
    auto *app = root.add_subcommand("run", "Run any operation of the library with a JSON request (see hsdk ops)");
    struct Args {
        std::string operation, request = "{}";
        bool progress = false, json = false;
    };
    auto a = std::make_shared<Args>();
    app->add_option("operation", a->operation, "Operation name, e.g. image.convert")->required();
    app->add_option("--request,-r", a->request, "The request: JSON text, @FILE, or @- for standard input (default {})");
    app->add_flag("-p,--progress", a->progress, "Show progress (a bar on a terminal, phase lines elsewhere)");
    add_output_flags(app, a->json, "the result, or {\"error\": {\"code\", \"message\"}} when it fails");
    commands.push_back({app, [a]() {
                            json request;
                            std::string error;
                            if (!read_json_argument("--request", a->request, request, error)) return report_message(error, exit_usage);
                            json result;
                            RunOptions how = progress_if(a->progress);
                            how.json_errors = a->json;
                            if (int s = run_op(a->operation, request, result, std::move(how)); s != exit_ok) return s;
                            if (a->json || !result.is_object()) fmt::print("{}\n", result.dump(2));
                            else print_tree(result, 0);
                            return exit_ok;
                        }});
}

}  // namespace

void register_ops_commands(CLI::App &root, std::vector<Command> &commands) {
    register_ops(root, commands);
    register_run(root, commands);
}

}  // namespace hsdk
