// What keeping data in a cloud object store costs (issue 17): storage, requests, retrieval,
// egress and early deletion, each item with the arithmetic that produced it, from the price
// tables of cost/pricing.hpp. Pure computation: the caller measures the bytes (an export result,
// a backup repository's base and incremental rate) and chooses the tables.
//
// The model, in the units the providers bill:
// - A month is 30 days and a GB is the table's bytes_per_gb (2^30 for S3, Azure and GCS).
// - `stored_bytes` are written on day 0 and `monthly_growth_bytes` more arrive evenly over every
//   30 days (a repository's incremental rate). Storage is billed per 30-day billing month on the
//   GB-months of that month; volume tiers (S3 Standard, Azure Hot) apply to each month's total,
//   and age tiers (S3 Intelligent-Tiering) to how long each byte has been stored.
// - Every object is one write request: `objects` for the stored bytes (by default one per
//   64 MiB part, ceil(stored_bytes / 64 MiB)) plus one per 64 MiB of growth.
// - A restore reads back everything stored at the end of the period, one read request per object,
//   pays the class's retrieval fee per GB (and, for archive classes, one restore request per
//   object) and sends it to the internet. Restores are spread evenly over the billing months and
//   the egress tiers apply to each month's total.
// - With delete_at_end (the default) everything is deleted after `days`: a class with a minimum
//   storage duration charges the remaining days of it once, pro rata, at its storage price.
#pragma once

#include "cost/pricing.hpp"

#include <hypersdk/error.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace hypersdk::cost {

inline constexpr std::uint64_t default_part_size = std::uint64_t{64} << 20;  // bytes per object when `objects` is 0
inline constexpr double days_per_month = 30;
inline constexpr double max_days = 36500;         // 100 years
inline constexpr unsigned max_restores = 100000;

struct CostInput {
    std::string provider;       // "s3", "azure", "gcs" (unused by compare)
    std::string storage_class;  // a class id of the provider, see known_classes() (unused by compare)
    std::string region;         // empty: regions[provider], else the catalog's default region for the provider
    std::map<std::string, std::string, std::less<>> regions;  // compare: provider -> region (others: default)
    std::uint64_t stored_bytes = 0;  // the real stored bytes on day 0 (after sparseness, compression, encryption)
    double days = 30;                // how long the data is kept
    unsigned restores = 0;           // full read-backs over the period
    std::uint64_t objects = 0;       // objects (write requests) for stored_bytes; 0: ceil(stored_bytes / 64 MiB)
    std::uint64_t monthly_growth_bytes = 0;  // added per 30 days, evenly (a backup repository's incremental rate)
    bool delete_at_end = true;  // deleted after `days` (early deletion applies); false: a window of a longer life
};

struct CostItem {
    std::string item;       // "storage" | "requests" | "retrieval" | "egress" | "early_deletion"
    double amount_usd = 0;  // unrounded
    std::string detail;     // the arithmetic: "500 GB x 1 month x $0.023"
};

struct CostEstimate {
    std::string provider;
    std::string storage_class;
    std::string class_name;  // "S3 Standard"
    std::string region;
    std::string currency = "USD";
    std::string pricing_as_of;
    std::string pricing_source;  // the price page
    std::string pricing_origin;  // "pricing/s3/us-east-1.json" or the --pricing file
    std::uint64_t bytes_per_gb = 0;
    double days = 0;
    unsigned restores = 0;
    bool delete_at_end = true;
    std::uint64_t stored_bytes = 0;
    std::uint64_t monthly_growth_bytes = 0;
    double stored_gb = 0;    // on day 0
    double final_gb = 0;     // after `days` of growth: what a restore reads
    double gb_months = 0;    // storage billed, all tiers together
    std::uint64_t objects = 0;         // for stored_bytes (given or defaulted)
    bool objects_defaulted = false;    // objects = ceil(stored_bytes / 64 MiB)
    std::uint64_t write_requests = 0;  // objects + growth objects
    std::uint64_t read_requests = 0;   // per restore
    std::vector<CostItem> items;       // always the five, in the order above, zero ones too
    double total_usd = 0;
    std::vector<std::string> assumptions;  // the model's choices, in words
};

// One provider, class and region. Errors (Errc::invalid_argument): unknown provider, class or
// region; a size of 0; negative, non-finite or over-long days; zero days with a class that has a
// minimum storage duration; too many restores.
Result<CostEstimate> estimate(const PricingCatalog &catalog, const CostInput &input);

// Every provider and class of the catalog, each in input.regions[provider] or the provider's
// default region, cheapest first (ties: provider, then the provider's class order). input.provider,
// storage_class and region are not used. Errors as estimate(); days must be above 0.
Result<std::vector<CostEstimate>> compare(const PricingCatalog &catalog, const CostInput &input);

// A size as the CLI takes it: "500G", "1.5T", "750GB", "2TiB", "64MiB", "123456" (bytes). K, M, G,
// T and P (alone or with B or iB, any case) are powers of 1024, the unit the providers bill in.
// Errors name the text: negative, empty, malformed or beyond 2^64 - 1 bytes.
Result<std::uint64_t> parse_size(std::string_view text);

// A request of the operation registry / daemon (api/cost.*.json):
//   {"provider": "s3", "storage_class": "standard", "region": "us-east-1",
//    "stored_bytes": 536870912000 | "size": "500G", "days": 30, "restores": 0, "objects": 0,
//    "monthly_growth_bytes": 0 | "monthly_growth": "20G", "delete_at_end": true,
//    "regions": {"s3": "eu-west-1"}}
// Every key is optional here (estimate() says what is missing); unknown keys, negative numbers and
// wrong types are errors naming the key.
Result<CostInput> cost_input_from_json(const nlohmann::json &request);

// {"provider", "storage_class", "class_name", "region", "currency", "pricing": {"as_of", "source",
//  "origin"}, "input": {...}, "stored_gb", "final_gb", "gb_months", "objects", "objects_defaulted",
//  "write_requests", "read_requests", "items": [{"item", "amount_usd", "detail"}], "total_usd",
//  "assumptions": [...]}; amounts rounded to 1e-6 USD.
nlohmann::json to_json(const CostItem &item);
nlohmann::json to_json(const CostEstimate &estimate);
nlohmann::json to_json(const std::vector<CostEstimate> &comparison);  // {"estimates": [...cheapest first]}

// Text for the CLI: one estimate with its items and details; a comparison as a table.
std::string format_estimate(const CostEstimate &estimate);
std::string format_comparison(const std::vector<CostEstimate> &comparison);

}  // namespace hypersdk::cost
