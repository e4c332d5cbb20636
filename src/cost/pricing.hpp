// Object-storage price tables for the cost estimator (issue 17): one table per provider and
// region, kept as JSON under pricing/ and compiled into the library (cmake/EmbedPricing.cmake);
// a negotiated table can be loaded from a file of the same shape (`--pricing FILE`).
//
// Units are the providers' own: storage per GB-month, requests per `per` operations (S3 per
// 1,000, Azure and GCS per 10,000), retrieval and egress per GB, where a GB is `bytes_per_gb`
// bytes (2^30 for all three: AWS, Azure and Google bill binary gigabytes) and a month is 30 days.
// pricing/README.md describes every field and where each number comes from.
#pragma once

#include <hypersdk/error.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hypersdk::cost {

// One step of a tiered price: the price of every GB up to `up_to_gb` (cumulative, counted from
// the first GB of the month); no limit on the last step.
struct PriceTier {
    std::optional<double> up_to_gb;
    double price_per_gb = 0;

    bool operator==(const PriceTier &) const = default;
};

// A price per `per` operations: {0.005, 1000} is $0.005 per 1,000 requests.
struct RequestPrice {
    double price = 0;
    std::uint64_t per = 1000;

    bool operator==(const RequestPrice &) const = default;
};

// Automatic tiering by age (S3 Intelligent-Tiering): data not read for `after_days` days is
// billed at `storage_gb_month` from then on.
struct AgeTier {
    double after_days = 0;
    double storage_gb_month = 0;
    std::string name;  // "Infrequent Access tier"

    bool operator==(const AgeTier &) const = default;
};

enum class EarlyDeletion {
    none,                // no minimum storage duration
    prorated_remaining,  // deleting before min_storage_days charges the remaining days once, pro rata
};

std::string_view early_deletion_name(EarlyDeletion rule) noexcept;

struct StorageClass {
    std::string id;    // "glacier-flexible": the class ids are fixed per provider, see known_classes()
    std::string name;  // "S3 Glacier Flexible Retrieval" (defaults to the id)
    double storage_gb_month = 0;                    // first (or only) storage price
    std::vector<PriceTier> storage_tiers;           // volume steps per month; empty: storage_gb_month flat
    std::vector<AgeTier> age_tiers;                 // ascending after_days; empty: no automatic tiering
    double monitoring_per_1000_objects_month = 0;   // S3 Intelligent-Tiering's monitoring fee
    double min_storage_days = 0;
    EarlyDeletion early_deletion = EarlyDeletion::none;
    double retrieval_per_gb = 0;                    // data retrieval fee per GB read back
    RequestPrice put;                               // writes: PUT / Class A / write operations
    RequestPrice get;                               // reads: GET / Class B / read operations
    std::optional<RequestPrice> restore;            // archive restore requests (S3 Glacier Flexible, Deep Archive)

    bool operator==(const StorageClass &) const = default;
};

struct PricingTable {
    std::string provider;  // "s3", "azure", "gcs"
    std::string region;    // "us-east-1"
    std::string currency = "USD";
    std::string as_of;     // "YYYY-MM-DD": when the numbers were taken from `source`
    std::string source;    // the public price page
    std::string notes;     // free text: what was verified, what was not
    std::uint64_t bytes_per_gb = 1073741824;
    std::vector<StorageClass> classes;  // in the provider's canonical order (known_classes())
    std::vector<PriceTier> egress_tiers;  // data transfer out to the internet, per month
    std::string origin;    // where it was read from: "pricing/s3/us-east-1.json" or a file path

    [[nodiscard]] const StorageClass *find_class(std::string_view id) const;

    bool operator==(const PricingTable &) const = default;
};

// The providers and, for each, its class ids in canonical order (cheapest access first).
const std::vector<std::string> &known_providers();
const std::vector<std::string> &known_classes(std::string_view provider);  // empty for an unknown provider

// Reading a table. Every field is checked; errors are Errc::invalid_argument and read
// "<origin>: <key path>: <what is wrong>", e.g.
// "neg.json: classes.standard.requests.put.per: must be a positive integer (1000 or 10000), got 0".
Result<PricingTable> parse_pricing(const nlohmann::json &doc, std::string_view origin);
Result<PricingTable> parse_pricing_text(std::string_view text, std::string_view origin);
Result<PricingTable> load_pricing_file(const std::filesystem::path &path);  // Errc::not_found if unreadable

// The same shape as the files (parse_pricing(to_json(t)) == t, origin aside).
nlohmann::json to_json(const PricingTable &table);

// The cost of `gb` under a tiered price (tiers as validated: ascending limits, the last unbounded).
double apply_tiers(double gb, const std::vector<PriceTier> &tiers);

// Every table known to an estimate: the embedded ones, and those loaded with --pricing.
class PricingCatalog {
public:
    // The tables compiled into the library (pricing/**/*.json). Each file must be named
    // "<provider>/<region>.json" after its own fields.
    static Result<PricingCatalog> builtin();

    // Adds a table, or replaces the one of the same provider and region (negotiated prices);
    // the table's region becomes its provider's default region in this catalog.
    void put(PricingTable table);

    [[nodiscard]] const std::vector<PricingTable> &tables() const { return tables_; }
    [[nodiscard]] std::vector<std::string> providers() const;                         // sorted
    [[nodiscard]] std::vector<std::string> regions(std::string_view provider) const;  // sorted

    // Where `compare` prices a provider when no region is given: the region of a table added with
    // put(), else us-east-1 (s3), eastus (azure), us-central1 (gcs), else the first region.
    [[nodiscard]] std::string default_region(std::string_view provider) const;

    // Errc::invalid_argument naming the known providers / regions when there is none.
    [[nodiscard]] Result<const PricingTable *> find(std::string_view provider, std::string_view region) const;

private:
    std::vector<PricingTable> tables_;
    std::vector<std::pair<std::string, std::string>> preferred_;  // provider -> region, from put()
};

}  // namespace hypersdk::cost
