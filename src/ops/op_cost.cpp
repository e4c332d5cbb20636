// Cost estimates: cost.estimate and cost.compare over the price tables of src/cost/, sized from
// bytes, a backup repository or an export's result.
#include "ops/context.hpp"

#include "cost/estimate.hpp"

#include <hypersdk/backup.hpp>

#include <fmt/format.h>

#include <ctime>
#include <filesystem>
#include <fstream>

namespace hypersdk::ops {
namespace {

using json = nlohmann::json;

double cost_epoch_seconds(const std::string &rfc3339) {
    std::tm tm{};
    if (rfc3339.size() < 19 || !strptime(rfc3339.substr(0, 19).c_str(), "%Y-%m-%dT%H:%M:%S", &tm)) return 0;
    return static_cast<double>(timegm(&tm));
}

// A repository as an object store would hold it: every point's files as they are (an object
// holds a file's apparent size, as recorded when the point was taken), and the incremental
// points' bytes over the days they span as the monthly growth.
Result<std::pair<std::uint64_t, std::uint64_t>> cost_repo_size(const std::string &repo) {
    HSDK_TRY(auto listed, list_backups(repo));
    std::uint64_t stored = 0, incremental = 0;
    double first = 0, last = 0;
    std::size_t points = 0;
    for (const auto &vm : listed.value("vms", json::array())) {
        for (const auto &p : vm.value("points", json::array())) {
            // The bytes the point's files held when it was taken (its link files, as stored).
            const std::uint64_t bytes = p.value("file_bytes", std::uint64_t{0});
            stored += bytes;
            ++points;
            const double t = cost_epoch_seconds(p.value("created", ""));
            if (t > 0) {
                first = first == 0 ? t : std::min(first, t);
                last = std::max(last, t);
            }
            if (p.value("kind", "") != "full") incremental += bytes;
        }
    }
    if (points == 0) return fail(Errc::not_found, fmt::format("backup repository '{}' holds no points to size", repo));
    // Less than a day between the first and the last point says little about a rate: count it as one day.
    const double span_days = std::max(1.0, (last - first) / 86400.0);
    const auto growth = points > 1 ? static_cast<std::uint64_t>(static_cast<double>(incremental) / span_days * cost::days_per_month) : 0;
    return std::make_pair(stored, growth);
}

// The files of an export's result: export.run's result, a daemon job (its result) or hsdk export --json.
Result<std::uint64_t> cost_export_size(const std::string &path) {
    std::ifstream in(path);
    if (!in) return fail(Errc::not_found, fmt::format("cannot read the export result '{}'", path));
    json doc = json::parse(in, nullptr, false);
    if (doc.is_discarded() || !doc.is_object()) return fail(Errc::invalid_argument, fmt::format("'{}' is not a JSON export result", path));
    if (doc.contains("result") && doc["result"].is_object()) doc = doc["result"];
    if (!doc.contains("files") || !doc["files"].is_array() || doc["files"].empty())
        return fail(Errc::invalid_argument, fmt::format("'{}' lists no files (expected an export result with \"files\")", path));
    std::uint64_t total = 0;
    for (const auto &f : doc["files"]) {
        if (!f.is_string()) continue;
        std::error_code ec;
        const auto n = std::filesystem::file_size(f.get<std::string>(), ec);
        if (ec) return fail(Errc::not_found, fmt::format("file '{}' of the export result is missing", f.get<std::string>()));
        total += n;
    }
    return total;
}

Result<std::pair<cost::PricingCatalog, cost::CostInput>> cost_inputs(const json &request) {
    json r = request;
    std::string repo, export_result, pricing;
    for (auto [key, dest] : {std::pair<const char *, std::string *>{"repo", &repo}, {"export_result", &export_result}, {"pricing", &pricing}}) {
        if (r.contains(key)) {
            *dest = r[key].get<std::string>();
            r.erase(key);
        }
    }
    const int sources = (r.contains("stored_bytes") || r.contains("size")) + !repo.empty() + !export_result.empty();
    if (sources != 1) return fail(Errc::invalid_argument, "invalid request: give exactly one of stored_bytes/size, repo or export_result");
    HSDK_TRY(auto input, cost::cost_input_from_json(r));
    if (!repo.empty()) {
        HSDK_TRY(auto sized, cost_repo_size(repo));
        input.stored_bytes = sized.first;
        if (!r.contains("monthly_growth_bytes") && !r.contains("monthly_growth")) input.monthly_growth_bytes = sized.second;
    }
    if (!export_result.empty()) {
        HSDK_TRY(auto bytes, cost_export_size(export_result));
        input.stored_bytes = bytes;
    }
    HSDK_TRY(auto catalog, cost::PricingCatalog::builtin());
    if (!pricing.empty()) {
        HSDK_TRY(auto table, cost::load_pricing_file(pricing));
        catalog.put(std::move(table));
    }
    return std::make_pair(std::move(catalog), std::move(input));
}

Result<json> cost_estimate_op(Context &c) {
    HSDK_TRY(auto in, cost_inputs(c.request()));
    HSDK_TRY(auto e, cost::estimate(in.first, in.second));
    json j = cost::to_json(e);
    j["report"] = cost::format_estimate(e);
    return j;
}

Result<json> cost_compare_op(Context &c) {
    HSDK_TRY(auto in, cost_inputs(c.request()));
    HSDK_TRY(auto all, cost::compare(in.first, in.second));
    json j = cost::to_json(all);
    j["report"] = cost::format_comparison(all);
    return j;
}

const HandlerEntry cost_table[] = {
    {"cost.estimate", cost_estimate_op},
    {"cost.compare", cost_compare_op},
};

}  // namespace

std::span<const HandlerEntry> cost_handlers() { return cost_table; }

}  // namespace hypersdk::ops
