#include "ops/registry.hpp"

#include "ops/embedded_api.hpp"

#include <hypersdk/version.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <optional>

namespace hypersdk {
namespace ops {
namespace {

std::optional<Errc> errc_from_name(std::string_view name) {
    for (int i = 0; i <= static_cast<int>(Errc::no_memory); ++i)
        if (errc_name(static_cast<Errc>(i)) == name) return static_cast<Errc>(i);
    return std::nullopt;
}

class Registry {
public:
    static const Registry &get() {
        static const Registry r;
        return r;
    }

    const Entry *find(std::string_view name) const {
        auto it = std::lower_bound(entries_.begin(), entries_.end(), name,
                                   [](const Entry &e, std::string_view n) { return e.info.name < n; });
        return it != entries_.end() && it->info.name == name ? &*it : nullptr;
    }

    const std::vector<OperationInfo> &infos() const { return infos_; }
    const nlohmann::json &common() const { return common_; }
    const std::optional<Error> &error() const { return error_; }

private:
    Registry() {
        if (auto r = load(); !r) error_ = r.error();
        std::sort(entries_.begin(), entries_.end(), [](const Entry &a, const Entry &b) { return a.info.name < b.info.name; });
        for (const auto &e : entries_) infos_.push_back(e.info);
    }

    Result<void> load() {
        std::map<std::string, Handler, std::less<>> handlers;
        for (auto table : {image_handlers(), vm_handlers(), vsphere_handlers(), provider_handlers(), backup_handlers(), cost_handlers(), migrate_handlers()})
            for (const auto &h : table) handlers.emplace(std::string(h.name), h.handler);

        nlohmann::json &common = common_;
        std::vector<nlohmann::json> docs;
        for (std::size_t i = 0; i < embedded_api_file_count; ++i) {
            const auto &f = embedded_api_files[i];
            if (std::string_view(f.name) == "openapi.json") continue;  // served as it is, not an operation
            auto doc = nlohmann::json::parse(f.text, nullptr, false);
            if (doc.is_discarded()) return fail(Errc::internal, fmt::format("api/{} is not valid JSON", f.name));
            if (std::string_view(f.name) == "common.json") common = doc.value("definitions", nlohmann::json::object());
            else docs.push_back(std::move(doc));
        }
        for (auto &doc : docs) {
            const std::string name = doc.value("operation", "");
            auto h = handlers.find(name);
            if (h == handlers.end()) return fail(Errc::internal, fmt::format("operation '{}' of api/ has no handler", name));
            OperationInfo info;
            info.name = name;
            info.summary = doc.value("summary", "");
            info.description = doc.value("description", "");
            info.long_running = doc.value("long_running", false);
            for (const auto &e : doc.value("errors", nlohmann::json::array())) {
                auto code = errc_from_name(e.get<std::string>());
                if (!code) return fail(Errc::internal, fmt::format("operation '{}' lists an unknown error '{}'", name, e.get<std::string>()));
                info.errors.push_back(*code);
            }
            const auto prepare = [&](const char *part) {
                nlohmann::json s = inline_common_refs(doc.value(part, nlohmann::json::object()), common);
                s["$schema"] = "http://json-schema.org/draft-07/schema#";
                s["title"] = fmt::format("{} {}", name, part);
                return s;
            };
            info.request_schema = prepare("request");
            info.result_schema = prepare("result");
            HSDK_TRY(auto request, Schema::compile(info.request_schema, name + " request"));
            HSDK_TRY(auto result, Schema::compile(info.result_schema, name + " result"));
            entries_.push_back(Entry{std::move(info), std::move(request), std::move(result), h->second});
            handlers.erase(h);
        }
        if (!handlers.empty())
            return fail(Errc::internal, fmt::format("operation '{}' has a handler but no description in api/", handlers.begin()->first));
        return success();
    }

    std::vector<Entry> entries_;
    std::vector<OperationInfo> infos_;
    nlohmann::json common_ = nlohmann::json::object();
    std::optional<Error> error_;
};

}  // namespace

const Entry *find_entry(std::string_view name) { return Registry::get().find(name); }

const nlohmann::json &common_definitions() { return Registry::get().common(); }

Result<void> registry_status() {
    if (const auto &e = Registry::get().error()) return fail(*e);
    return success();
}

}  // namespace ops

const std::vector<OperationInfo> &operations() { return ops::Registry::get().infos(); }

const OperationInfo *find_operation(std::string_view name) {
    const auto *e = ops::find_entry(name);
    return e ? &e->info : nullptr;
}

nlohmann::json operations_json() {
    nlohmann::json list = nlohmann::json::array();
    for (const auto &op : operations()) {
        nlohmann::json errors = nlohmann::json::array();
        for (auto e : op.errors) errors.push_back(std::string(errc_name(e)));
        list.push_back({{"name", op.name},
                        {"summary", op.summary},
                        {"description", op.description},
                        {"long_running", op.long_running},
                        {"errors", std::move(errors)},
                        {"request", op.request_schema},
                        {"result", op.result_schema}});
    }
    return {{"version", std::string(version())}, {"operations", std::move(list)}};
}

namespace {

Result<const ops::Entry *> entry_of(std::string_view operation) {
    HSDK_TRYV(ops::registry_status());
    const auto *e = ops::find_entry(operation);
    if (e == nullptr)
        return fail(Errc::invalid_argument, fmt::format("unknown operation '{}' (hsdk ops lists them)", operation));
    return e;
}

}  // namespace

Result<nlohmann::json> prepare_request(std::string_view operation, const nlohmann::json &request) {
    HSDK_TRY(const auto *e, entry_of(operation));
    nlohmann::json r = request.is_null() ? nlohmann::json::object() : request;
    HSDK_TRYV(e->request.validate(r, fmt::format("request of {}", operation)));
    e->request.apply_defaults(r);
    return r;
}

Result<void> validate_result(std::string_view operation, const nlohmann::json &result) {
    HSDK_TRY(const auto *e, entry_of(operation));
    auto r = e->result.validate(result, fmt::format("result of {}", operation));
    if (!r) return fail(Errc::internal, r.error().message);
    return success();
}

nlohmann::json redact_request(std::string_view operation, const nlohmann::json &request) {
    const auto *e = ops::find_entry(operation);
    if (e == nullptr) return nlohmann::json::object();  // nothing known about it: keep nothing
    return e->request.redact(request);
}

}  // namespace hypersdk

namespace hypersdk {

std::string_view openapi_json() noexcept {
    for (std::size_t i = 0; i < ops::embedded_api_file_count; ++i)
        if (std::string_view(ops::embedded_api_files[i].name) == "openapi.json") return ops::embedded_api_files[i].text;
    return "{}";
}

}  // namespace hypersdk
