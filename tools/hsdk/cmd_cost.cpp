// hsdk cost estimate|compare: what keeping exported disks or a backup repository in S3, Azure Blob
// or GCS costs (cost.estimate, cost.compare over the dated price tables in pricing/).
#include "commands.hpp"

#include <fmt/format.h>

#include <memory>

namespace hsdk {
namespace {

using json = nlohmann::json;

struct CostArgs {
    std::string provider, storage_class, size, repo, export_result, pricing, growth;
    std::vector<std::string> regions;
    double days = 30;
    unsigned restores = 0;
    std::uint64_t objects = 0;
    bool keep = false, json = false;
};

void add_cost_flags(CLI::App *app, CostArgs &a, bool compare) {
    auto *sizes = app->add_option_group("size", "What is stored (exactly one)");
    sizes->add_option("--size", a.size, "Bytes stored: 500G, 1.5T, 64MiB (powers of 1024)");
    sizes->add_option("--repo", a.repo, "A backup repository: its files, and its incremental rate as monthly growth")->check(CLI::ExistingDirectory);
    sizes->add_option("--export-result", a.export_result, "An export's result JSON (hsdk export --json, a daemon job): its files")
        ->check(CLI::ExistingFile);
    sizes->require_option(1);
    app->add_option("--days", a.days, "How long it is kept (default 30)")->check(CLI::NonNegativeNumber);
    app->add_option("--restores", a.restores, "Full read-backs over the period (retrieval, reads, egress)");
    app->add_option("--objects", a.objects, "Objects written (default: one per 64 MiB)");
    app->add_option("--monthly-growth", a.growth, "Bytes added every 30 days (default for --repo: its measured incremental rate)");
    app->add_flag("--keep", a.keep, "Kept beyond --days (no early-deletion charge: the period is a window of a longer life)");
    app->add_option("--pricing", a.pricing, "A pricing table file (negotiated prices; the shape of pricing/*/*.json)")->check(CLI::ExistingFile);
    if (compare)
        app->add_option("--region", a.regions, "PROVIDER=REGION for one provider (repeatable; others use their default region)");
    add_output_flags(app, a.json, compare ? "every estimate, cheapest first" : "the estimate");
}

int cost_request(const CostArgs &a, bool compare, json &request) {
    if (!compare) {
        request["provider"] = a.provider;
        request["storage_class"] = a.storage_class;
        if (!a.regions.empty()) request["region"] = a.regions.front();
    } else {
        json regions = json::object();
        for (const auto &r : a.regions) {
            const auto eq = r.find('=');
            if (eq == std::string::npos || eq == 0 || eq + 1 == r.size())
                return report_message(fmt::format("--region: expected PROVIDER=REGION, got '{}'", r), exit_usage);
            regions[r.substr(0, eq)] = r.substr(eq + 1);
        }
        if (!regions.empty()) request["regions"] = regions;
    }
    if (!a.size.empty()) request["size"] = a.size;
    if (!a.repo.empty()) request["repo"] = a.repo;
    if (!a.export_result.empty()) request["export_result"] = a.export_result;
    if (!a.pricing.empty()) request["pricing"] = a.pricing;
    if (!a.growth.empty()) request["monthly_growth"] = a.growth;
    request["days"] = a.days;
    request["restores"] = a.restores;
    request["objects"] = a.objects;
    request["delete_at_end"] = !a.keep;
    return exit_ok;
}

}  // namespace

void register_cost_commands(CLI::App &root, std::vector<Command> &commands) {
    auto *cost = root.add_subcommand("cost", "What storing exports or backups in S3, Azure Blob or GCS costs");
    cost->require_subcommand(1);
    for (const bool compare : {false, true}) {
        auto *app = compare ? cost->add_subcommand("compare", "Every provider and storage class side by side, cheapest first")
                            : cost->add_subcommand("estimate", "Storage, requests, retrieval, egress and early deletion of one class");
        auto a = std::make_shared<CostArgs>();
        if (!compare) {
            app->add_option("--provider", a->provider, "s3, azure or gcs")->required()->check(CLI::IsMember({"s3", "azure", "gcs"}));
            app->add_option("--class", a->storage_class, "Storage class (s3: standard ... deep-archive; azure: hot, cool, cold, archive; gcs: standard ... archive)")
                ->required();
            app->add_option("--region", a->regions, "Region (default: the provider's first table, e.g. us-east-1)")->expected(0, 1);
        }
        add_cost_flags(app, *a, compare);
        commands.push_back({app, [a, compare]() {
                                json request, result;
                                if (int st = cost_request(*a, compare, request); st != exit_ok) return st;
                                RunOptions how;
                                how.json_errors = a->json;
                                if (int st = run_op(compare ? "cost.compare" : "cost.estimate", request, result, how); st != exit_ok) return st;
                                if (a->json) {
                                    fmt::print("{}\n", result.dump(2));
                                } else {
                                    fmt::print("{}", result.value("report", ""));
                                }
                                return exit_ok;
                            }});
    }
}

}  // namespace hsdk
