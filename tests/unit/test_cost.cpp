#include "cost/estimate.hpp"
#include "cost/pricing.hpp"

#include "scratch.hpp"

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <string_view>

// Every example below is worked out by hand in its comments, from the prices in pricing/ (a GB is
// 2^30 bytes and a month 30 days, as the providers bill). Everything lives in one named namespace:
// test files are compiled in unity batches.
namespace cost_test {

using namespace hypersdk;
using namespace hypersdk::cost;

constexpr std::uint64_t cost_test_gb = std::uint64_t{1} << 30;

const PricingCatalog &cost_test_catalog() {
    static const PricingCatalog catalog = PricingCatalog::builtin().value();
    return catalog;
}

CostInput cost_test_input(std::string provider, std::string storage_class, double gb, double days, unsigned restores = 0) {
    CostInput in;
    in.provider = std::move(provider);
    in.storage_class = std::move(storage_class);
    in.stored_bytes = static_cast<std::uint64_t>(gb * static_cast<double>(cost_test_gb));
    in.days = days;
    in.restores = restores;
    return in;
}

CostEstimate cost_test_run(const CostInput &in, const PricingCatalog &catalog = cost_test_catalog()) {
    auto r = estimate(catalog, in);
    REQUIRE_MESSAGE(r.has_value(), (r ? std::string() : r.error().message));
    return r.value();
}

const CostItem &cost_test_item(const CostEstimate &e, std::string_view name) {
    for (const auto &i : e.items)
        if (i.item == name) return i;
    FAIL("no item " << name);
    return e.items.front();
}

double cost_test_usd(const CostEstimate &e, std::string_view name) { return cost_test_item(e, name).amount_usd; }

doctest::Approx cost_test_usd_is(double usd) { return doctest::Approx(usd).epsilon(1e-9); }

std::string cost_test_error(const CostInput &in, const PricingCatalog &catalog = cost_test_catalog()) {
    auto r = estimate(catalog, in);
    if (r) return "(estimated)";
    CHECK(r.error().code == Errc::invalid_argument);
    return r.error().message;
}

std::string cost_test_table_error(const nlohmann::json &doc) {
    auto r = parse_pricing(doc, "bad.json");
    if (r) return "(parsed)";
    CHECK(r.error().code == Errc::invalid_argument);
    return r.error().message;
}

// A valid table to break one key at a time: the embedded S3 us-east-1 one, as the files spell it.
nlohmann::json cost_test_s3_doc() {
    auto t = cost_test_catalog().find("s3", "us-east-1");
    REQUIRE(t.has_value());
    return to_json(*t.value());
}

TEST_CASE("cost: the embedded tables, one per provider and region, in the providers' own units") {
    const auto &catalog = cost_test_catalog();
    CHECK(catalog.providers() == std::vector<std::string>{"azure", "gcs", "s3"});
    CHECK(catalog.regions("s3") == std::vector<std::string>{"eu-west-1", "us-east-1"});
    CHECK(catalog.regions("azure") == std::vector<std::string>{"eastus", "westeurope"});
    CHECK(catalog.regions("gcs") == std::vector<std::string>{"europe-west1", "us-central1"});
    CHECK(catalog.default_region("s3") == "us-east-1");
    CHECK(catalog.default_region("azure") == "eastus");
    CHECK(catalog.default_region("gcs") == "us-central1");

    // The minimum durations of the issue, and which classes have none.
    const std::map<std::string, double> minimum = {
        {"s3/standard", 0},     {"s3/intelligent-tiering", 0}, {"s3/standard-ia", 30}, {"s3/onezone-ia", 30},
        {"s3/glacier-ir", 90},  {"s3/glacier-flexible", 90},   {"s3/deep-archive", 180},
        {"azure/hot", 0},       {"azure/cool", 30},            {"azure/cold", 90},     {"azure/archive", 180},
        {"gcs/standard", 0},    {"gcs/nearline", 30},          {"gcs/coldline", 90},   {"gcs/archive", 365},
    };
    for (const auto &t : catalog.tables()) {
        CAPTURE(t.origin);
        CHECK(t.currency == "USD");
        CHECK(t.bytes_per_gb == cost_test_gb);
        CHECK(t.source.rfind("https://", 0) == 0);
        REQUIRE(t.classes.size() == known_classes(t.provider).size());
        for (std::size_t i = 0; i < t.classes.size(); ++i) {
            const auto &c = t.classes[i];
            CAPTURE(c.id);
            CHECK(c.id == known_classes(t.provider)[i]);
            CHECK(c.min_storage_days == minimum.at(t.provider + "/" + c.id));
            CHECK((c.early_deletion == EarlyDeletion::prorated_remaining) == (c.min_storage_days > 0));
            // S3 prices requests per 1,000; Azure and GCS per 10,000 operations.
            const std::uint64_t per = t.provider == "s3" ? 1000 : 10000;
            CHECK(c.put.per == per);
            CHECK(c.get.per == per);
        }
        CHECK_FALSE(t.egress_tiers.back().up_to_gb.has_value());
        // The files round-trip through to_json().
        auto again = parse_pricing(to_json(t), t.origin);
        REQUIRE(again.has_value());
        CHECK(again.value() == t);
    }
}

TEST_CASE("cost: 500 GB in S3 Standard, us-east-1, for 30 days") {
    // 500 GB = 500 x 2^30 bytes, kept 30 days = 1 month, never read back.
    //   storage:  500 GB x 1 month x $0.023                       = $11.50 (inside the first 50 TB tier)
    //   requests: 500 GB / 64 MiB = 8,000 PUTs x $0.005 / 1,000    =  $0.04
    //   retrieval, egress, early deletion: none                     =  $0
    //   total                                                       = $11.54
    const auto e = cost_test_run(cost_test_input("s3", "standard", 500, 30));
    CHECK(e.region == "us-east-1");
    CHECK(e.objects == 8000);
    CHECK(e.objects_defaulted);
    CHECK(cost_test_usd(e, "storage") == cost_test_usd_is(11.50));
    CHECK(cost_test_usd(e, "requests") == cost_test_usd_is(0.04));
    CHECK(cost_test_usd(e, "retrieval") == 0);
    CHECK(cost_test_usd(e, "egress") == 0);
    CHECK(cost_test_usd(e, "early_deletion") == 0);
    CHECK(e.total_usd == cost_test_usd_is(11.54));
    CHECK(cost_test_item(e, "storage").detail == "500 GB x 1 month x $0.023");
    CHECK(cost_test_item(e, "requests").detail == "8,000 PUT requests x $0.005/1,000 (one per 64 MiB object)");
    CHECK(cost_test_item(e, "early_deletion").detail == "none: S3 Standard has no minimum storage duration");

    // Every item is listed, in a fixed order, zero ones too; amounts in JSON are rounded to 1e-6.
    const auto j = to_json(e);
    REQUIRE(j["items"].size() == 5);
    CHECK(j["items"][0]["item"] == "storage");
    CHECK(j["items"][1]["item"] == "requests");
    CHECK(j["items"][2]["item"] == "retrieval");
    CHECK(j["items"][3]["item"] == "egress");
    CHECK(j["items"][4]["item"] == "early_deletion");
    CHECK(j["total_usd"].get<double>() == 11.54);
    CHECK(j["pricing"]["origin"] == "pricing/s3/us-east-1.json");
    CHECK(j["write_requests"] == 8000);
}

TEST_CASE("cost: Azure and GCS price operations per 10,000") {
    // Azure Cool, East US: 100 GB for 30 days written as 10,000 blobs.
    //   storage:  100 GB x 1 month x $0.01                    = $1.00
    //   requests: 10,000 writes x $0.10 / 10,000              = $0.10  (divided by 1,000 it would be $1.00)
    //   early deletion: kept 30 days, the 30-day minimum      = $0
    //   total                                                 = $1.10
    auto in = cost_test_input("azure", "cool", 100, 30);
    in.objects = 10000;
    const auto azure = cost_test_run(in);
    CHECK(azure.region == "eastus");
    CHECK(cost_test_usd(azure, "storage") == cost_test_usd_is(1.00));
    CHECK(cost_test_usd(azure, "requests") == cost_test_usd_is(0.10));
    CHECK(cost_test_usd(azure, "early_deletion") == 0);
    CHECK(azure.total_usd == cost_test_usd_is(1.10));
    CHECK(cost_test_item(azure, "requests").detail == "10,000 write operations x $0.1/10,000");

    // Google's own "simple example" (cloud.google.com/storage/pricing-examples): 50 GB of Standard
    // storage for a month and 10,000 Class A operations.
    //   storage:  50 GB x $0.020                                = $1.00
    //   requests: 10,000 Class A x $0.005 / 1,000 (= $0.05 / 10,000) = $0.05
    auto gin = cost_test_input("gcs", "standard", 50, 30);
    gin.objects = 10000;
    const auto gcs = cost_test_run(gin);
    CHECK(cost_test_usd(gcs, "storage") == cost_test_usd_is(1.00));
    CHECK(cost_test_usd(gcs, "requests") == cost_test_usd_is(0.05));
    CHECK(gcs.total_usd == cost_test_usd_is(1.05));
}

TEST_CASE("cost: GCS Archive kept 100 days pays 265 days of early deletion, once") {
    // 1,000 GB in GCS Archive, us-central1, deleted after 100 of its 365-day minimum.
    //   storage:        1,000 GB x 100/30 months x $0.0012           =  $4.00
    //   early deletion: 1,000 GB x (365 - 100) = 265 days / 30 x $0.0012 = $10.60, charged once
    //                   (charged every month of a year it would be $127.20)
    //   requests:       1,000 GB / 64 MiB = 16,000 Class A x $0.50 / 10,000 = $0.80
    //   total                                                          = $15.40
    // Storage and early deletion together are exactly a year's storage: 1,000 x 365/30 x $0.0012 = $14.60.
    const auto e = cost_test_run(cost_test_input("gcs", "archive", 1000, 100));
    CHECK(cost_test_usd(e, "storage") == cost_test_usd_is(4.00));
    CHECK(cost_test_usd(e, "early_deletion") == cost_test_usd_is(10.60));
    CHECK(cost_test_usd(e, "requests") == cost_test_usd_is(0.80));
    CHECK(e.total_usd == cost_test_usd_is(15.40));
    CHECK(cost_test_item(e, "early_deletion").detail ==
          "1,000 GB x (365 - 100) = 265 days of the 365-day minimum / 30 x $0.0012, charged once");

    // Azure's own example (learn.microsoft.com, access tiers): a blob moved to Cool and deleted after
    // 21 days pays early deletion for 9 (30 minus 21) days. 1,000 GB in East US:
    //   storage 1,000 x 21/30 x $0.01 = $7.00; early deletion 1,000 x 9/30 x $0.01 = $3.00 (a full month in all).
    const auto cool = cost_test_run(cost_test_input("azure", "cool", 1000, 21));
    CHECK(cost_test_usd(cool, "storage") == cost_test_usd_is(7.00));
    CHECK(cost_test_usd(cool, "early_deletion") == cost_test_usd_is(3.00));

    // Kept past the minimum, or kept on after the period: no early deletion.
    CHECK(cost_test_usd(cost_test_run(cost_test_input("gcs", "archive", 1000, 365)), "early_deletion") == 0);
    auto kept = cost_test_input("gcs", "archive", 1000, 100);
    kept.delete_at_end = false;
    CHECK(cost_test_usd(cost_test_run(kept), "early_deletion") == 0);
}

TEST_CASE("cost: a restore from S3 Glacier Flexible Retrieval crosses the egress tiers") {
    // 20,480 GB (20 TiB) in Glacier Flexible Retrieval, us-east-1, for 180 days, restored once to
    // the internet with the Standard retrieval tier. 20,480 GB / 64 MiB = 327,680 objects.
    //   storage:   20,480 GB x 6 months x $0.0036                              =   $442.368
    //   requests:  327,680 PUTs x $0.03 / 1,000 = $9.8304
    //            + 327,680 GETs x $0.0004 / 1,000 = $0.131072                  =     $9.961472
    //   retrieval: 20,480 GB x $0.01 = $204.80
    //            + 327,680 restore requests x $0.05 / 1,000 = $16.384           =   $221.184
    //   egress:    20,480 GB in one month: 100 GB free
    //            + (10,240 - 100) = 10,140 GB x $0.09 = $912.60
    //            + (20,480 - 10,240) = 10,240 GB x $0.085 = $870.40            = $1,783.00
    //   early deletion: 180 days >= the 90-day minimum                        =     $0
    //   total                                                                  = $2,456.513472
    const auto e = cost_test_run(cost_test_input("s3", "glacier-flexible", 20480, 180, 1));
    CHECK(e.objects == 327680);
    CHECK(cost_test_usd(e, "storage") == cost_test_usd_is(442.368));
    CHECK(cost_test_usd(e, "requests") == cost_test_usd_is(9.961472));
    CHECK(cost_test_usd(e, "retrieval") == cost_test_usd_is(221.184));
    CHECK(cost_test_usd(e, "egress") == cost_test_usd_is(1783.00));
    CHECK(cost_test_usd(e, "early_deletion") == 0);
    CHECK(e.total_usd == cost_test_usd_is(2456.513472));
    CHECK(cost_test_item(e, "egress").detail ==
          "1 restore x 20,480 GB to the internet = 20,480 GB: 100 GB x $0 + 10,140 GB x $0.09 + 10,240 GB x $0.085");
    CHECK(cost_test_item(e, "retrieval").detail ==
          "1 restore x 20,480 GB x $0.01/GB + 1 restore x 327,680 restore requests x $0.05/1,000");
}

TEST_CASE("cost: AWS's restore example - 15,000,000 objects, 100 TB, Standard retrieval") {
    // repost.aws/knowledge-center/s3-manage-data-retrieval: restoring 15,000,000 objects holding
    // 100 TB (102,400 GB) from Glacier Flexible Retrieval with Standard retrievals costs
    //   15,000,000 / 1,000 x $0.05 = $750 in retrieval requests + 102,400 GB x $0.01 = $1,024  = $1,774.
    auto in = cost_test_input("s3", "glacier-flexible", 102400, 90, 1);
    in.objects = 15000000;
    const auto e = cost_test_run(in);
    CHECK(cost_test_usd(e, "retrieval") == cost_test_usd_is(1774.00));
    // The GETs of the restored copies are requests: 15,000,000 x $0.0004 / 1,000 = $6, besides the
    // 15,000,000 PUTs x $0.03 / 1,000 = $450 that wrote them.
    CHECK(cost_test_usd(e, "requests") == cost_test_usd_is(456.00));
}

TEST_CASE("cost: S3's storage example - volume tiers apply to each month's GB-months") {
    // The S3 pricing page's storage example ends at 52,900 GB-Months of S3 Standard in a month:
    //   51,200 GB (the first 50 TB) x $0.023 = $1,177.60 + (52,900 - 51,200) = 1,700 GB x $0.022 = $37.40
    //   = $1,215.00.
    const auto *standard = cost_test_catalog().find("s3", "us-east-1").value()->find_class("standard");
    REQUIRE(standard != nullptr);
    CHECK(apply_tiers(52900, standard->storage_tiers) == cost_test_usd_is(1215.00));
    // The same month through estimate(): 52,900 GB kept 30 days.
    const auto e = cost_test_run(cost_test_input("s3", "standard", 52900, 30));
    CHECK(cost_test_usd(e, "storage") == cost_test_usd_is(1215.00));
    CHECK(cost_test_item(e, "storage").detail ==
          "52,900 GB x 1 month at the monthly volume tiers ($0.023 up to 51,200 GB, $0.022 up to 512,000 GB, $0.021 above)");
    // Two months of it: the tiers restart every month, so twice $1,215.00, not 105,800 GB-months at once.
    CHECK(cost_test_usd(cost_test_run(cost_test_input("s3", "standard", 52900, 60)), "storage") == cost_test_usd_is(2430.00));
}

TEST_CASE("cost: a backup repository - the base plus its incremental rate") {
    // S3 Standard: a 1,000 GB base, growing 300 GB a month (10 GB a day), for 60 days, restored once.
    //   month 1 (days 0-30):  1,000 x 30 + 10 x 30^2 / 2          = 34,500 GB-days = 1,150 GB-months
    //   month 2 (days 30-60): 1,000 x 30 + 10 x (60^2 - 30^2) / 2 = 43,500 GB-days = 1,450 GB-months
    //   storage:  2,600 GB-months x $0.023                                        = $59.80
    //   requests: (16,000 + 600 GB / 64 MiB = 9,600) = 25,600 PUTs x $0.005 / 1,000 = $0.128
    //           + 25,600 GETs x $0.0004 / 1,000                                  = $0.01024
    //   egress:   the restore reads the final 1,600 GB: 100 GB free + 1,500 GB x $0.09 = $135.00
    auto in = cost_test_input("s3", "standard", 1000, 60, 1);
    in.monthly_growth_bytes = 300 * cost_test_gb;
    const auto e = cost_test_run(in);
    CHECK(e.gb_months == cost_test_usd_is(2600));
    CHECK(e.final_gb == cost_test_usd_is(1600));
    CHECK(e.write_requests == 25600);
    CHECK(cost_test_usd(e, "storage") == cost_test_usd_is(59.80));
    CHECK(cost_test_usd(e, "requests") == cost_test_usd_is(0.13824));
    CHECK(cost_test_usd(e, "egress") == cost_test_usd_is(135.00));
    CHECK(cost_test_item(e, "storage").detail == "(1,000 GB + 300 GB/month growth) over 60 days = 2,600 GB-months x $0.023");

    // Deep Archive, a 100 GB base growing 30 GB a month (1 GB a day), deleted after 60 days:
    //   storage:        100 x 60 + 1 x 60^2 / 2 = 7,800 GB-days = 260 GB-months x $0.00099 = $0.2574
    //   early deletion: the base misses 180 - 60 = 120 days: 100 x 120 = 12,000 GB-days;
    //                   data written on day s misses 180 - (60 - s) days: the integral over s in
    //                   [0, 60] is 60 x (120 + 180) / 2 = 9,000 GB-days;
    //                   21,000 GB-days = 700 GB-months x $0.00099 = $0.693
    auto deep = cost_test_input("s3", "deep-archive", 100, 60);
    deep.monthly_growth_bytes = 30 * cost_test_gb;
    const auto d = cost_test_run(deep);
    CHECK(cost_test_usd(d, "storage") == cost_test_usd_is(0.2574));
    CHECK(cost_test_usd(d, "early_deletion") == cost_test_usd_is(0.693));
}

TEST_CASE("cost: S3 Intelligent-Tiering moves data that is not read down by age") {
    // 1,000 GB for 120 days (4 months), never read:
    //   days 0-30 in Frequent Access:            1,000 GB-months x $0.023  = $23.00
    //   days 30-90 in Infrequent Access:         2,000 GB-months x $0.0125 = $25.00
    //   days 90-120 in Archive Instant Access:   1,000 GB-months x $0.004  =  $4.00
    //   monitoring: 16,000 objects x 4 months = 64,000 object-months x $0.0025 / 1,000 = $0.16
    //   storage                                                            = $52.16
    const auto e = cost_test_run(cost_test_input("s3", "intelligent-tiering", 1000, 120));
    CHECK(cost_test_usd(e, "storage") == cost_test_usd_is(52.16));
    CHECK(cost_test_usd(e, "requests") == cost_test_usd_is(0.08));
    CHECK(cost_test_item(e, "storage").detail ==
          "1,000 GB x 4 months: 1,000 GB-months in the first 30 days x $0.023 + 2,000 GB-months in the Infrequent Access tier "
          "(after 30 days) x $0.0125 + 1,000 GB-months in the Archive Instant Access tier (after 90 days) x $0.004 + 64,000 "
          "object-months x $0.0025/1,000 monitoring");
}

TEST_CASE("cost: restores are spread over the months, and the egress tiers apply per month") {
    // 5,000 GB of S3 Standard for 90 days (3 billing months), restored 3 times: one restore a month,
    // each 100 GB free + 4,900 GB x $0.09 = $441, so $1,323 (not $1,317.20 as one 15,000 GB month).
    const auto spread = cost_test_run(cost_test_input("s3", "standard", 5000, 90, 3));
    CHECK(cost_test_usd(spread, "egress") == cost_test_usd_is(1323.00));
    CHECK(cost_test_item(spread, "egress").detail ==
          "3 months with 1 restore x 5,000 GB to the internet = 5,000 GB: 100 GB x $0 + 4,900 GB x $0.09");
    // Two restores within 30 days share one month: 10,000 GB = 100 GB free + 9,900 GB x $0.09 = $891.
    const auto same = cost_test_run(cost_test_input("s3", "standard", 5000, 30, 2));
    CHECK(cost_test_usd(same, "egress") == cost_test_usd_is(891.00));
    // Retrieval is charged without egress too: Standard-IA, 1 restore of 500 GB = 500 x $0.01 = $5.
    const auto ia = cost_test_run(cost_test_input("s3", "standard-ia", 500, 30, 1));
    CHECK(cost_test_usd(ia, "retrieval") == cost_test_usd_is(5.00));
}

TEST_CASE("cost: a negotiated price table (--pricing FILE), with Azure's archive example") {
    // Azure's docs price a rehydration with sample prices (learn.microsoft.com, archive tier): data
    // retrieval $0.022/GB, read operations $5.50 per 10,000, and an early deletion of
    // "(180 - 90 days)/30 days x $0.002/GB-month x 1,000 = $5.40" - a product that holds at
    // $0.0018/GB-month (3 x $0.0018 x 1,000 = $5.40; at $0.002 it would be $6.00), the Archive price
    // the example was first written with. With $0.0018 and a 1,000 GB blob kept 90 days in Archive,
    // then rehydrated once (no egress: the negotiated file makes it free):
    //   data retrieval: 1,000 GB x $0.022                          = $22.00
    //   early deletion: (180 - 90) / 30 x $0.0018 x 1,000 GB       =  $5.40
    //   storage:        1,000 GB x 3 months x $0.0018              =  $5.40
    //   requests:       1 write x $0.11 / 10,000 + 1 read x $5.50 / 10,000 = $0.000561
    const std::string text = R"({
      "provider": "azure", "region": "eastus2", "currency": "USD", "as_of": "2024-07-26",
      "source": "https://learn.microsoft.com/en-us/azure/storage/blobs/blob-storage-estimate-costs",
      "classes": {"archive": {"storage_gb_month": 0.0018, "min_storage_days": 180, "early_deletion": "prorated_remaining",
                              "retrieval_per_gb": 0.022,
                              "requests": {"put": {"price": 0.11, "per": 10000}, "get": {"price": 5.5, "per": 10000}}}},
      "egress_tiers": [{"up_to_gb": null, "price_per_gb": 0}]})";
    const auto path = hypersdk::test::work("cost_negotiated_azure.json");
    std::ofstream(path, std::ios::trunc) << text;
    auto table = load_pricing_file(path);
    REQUIRE_MESSAGE(table.has_value(), (table ? std::string() : table.error().message));
    auto catalog = cost_test_catalog();
    catalog.put(table.value());
    CHECK(catalog.default_region("azure") == "eastus2");  // the negotiated table is where azure is priced now

    auto in = cost_test_input("azure", "archive", 1000, 90, 1);
    in.objects = 1;
    const auto e = cost_test_run(in, catalog);
    CHECK(e.region == "eastus2");
    CHECK(e.pricing_origin == path);
    CHECK(cost_test_usd(e, "retrieval") == cost_test_usd_is(22.00));
    CHECK(cost_test_usd(e, "early_deletion") == cost_test_usd_is(5.40));
    CHECK(cost_test_usd(e, "storage") == cost_test_usd_is(5.40));
    CHECK(cost_test_usd(e, "requests") == cost_test_usd_is(0.000561));
    CHECK(cost_test_usd(e, "egress") == 0);
    // The file prices only Archive: other Azure classes are refused in that region, by name.
    CHECK(cost_test_error(cost_test_input("azure", "hot", 1000, 30), catalog) ==
          fmt::format("{} has no price for azure class \"hot\" (priced there: archive)", path));
    // Comparing now prices Azure in eastus2 (one class) beside S3 and GCS in their default regions.
    auto rows = compare(catalog, cost_test_input("", "", 1000, 365));
    REQUIRE(rows.has_value());
    CHECK(rows.value().size() == 7 + 1 + 4);
}

TEST_CASE("cost: compare prices every provider and class, cheapest first") {
    // 1,000 GB for 365 days (12.1667 months), never read:
    //   azure archive: 1,000 x 365/30 x $0.00099 = $12.045 + 16,000 writes x $0.11 / 10,000 = $0.176 -> $12.221
    //   s3 deep-archive: $12.045 + 16,000 PUTs x $0.05 / 1,000 = $0.80                         -> $12.845
    //   gcs archive: 1,000 x 365/30 x $0.0012 = $14.60 + 16,000 Class A x $0.50 / 10,000 = $0.80 -> $15.40
    auto rows = compare(cost_test_catalog(), cost_test_input("", "", 1000, 365));
    REQUIRE(rows.has_value());
    const auto &r = rows.value();
    REQUIRE(r.size() == 15);
    for (std::size_t i = 1; i < r.size(); ++i) CHECK(r[i - 1].total_usd <= r[i].total_usd);
    CHECK(r[0].provider == "azure");
    CHECK(r[0].storage_class == "archive");
    CHECK(r[0].region == "eastus");
    CHECK(r[0].total_usd == cost_test_usd_is(12.221));
    CHECK(r[1].provider == "s3");
    CHECK(r[1].storage_class == "deep-archive");
    CHECK(r[1].total_usd == cost_test_usd_is(12.845));
    CHECK(r[2].provider == "gcs");
    CHECK(r[2].storage_class == "archive");
    CHECK(r[2].total_usd == cost_test_usd_is(15.40));

    // Each provider in a region of its own choosing.
    auto in = cost_test_input("", "", 1000, 365);
    in.regions = {{"s3", "eu-west-1"}, {"azure", "westeurope"}};
    auto eu = compare(cost_test_catalog(), in);
    REQUIRE(eu.has_value());
    for (const auto &e : eu.value()) {
        if (e.provider == "s3") CHECK(e.region == "eu-west-1");
        if (e.provider == "azure") CHECK(e.region == "westeurope");
        if (e.provider == "gcs") CHECK(e.region == "us-central1");
    }

    // Restores turn the order around: four full restores in the year (in billing months 1, 4, 7
    // and 10 of 13, one per month) put S3 Deep Archive ahead of Azure Archive.
    //   s3 deep-archive: storage $12.045; requests 16,000 PUTs x $0.05 / 1,000 = $0.80
    //                    + 4 x 16,000 GETs x $0.0004 / 1,000 = $0.0256; retrieval 4 x 1,000 GB x $0.02 = $80
    //                    + 4 x 16,000 restore requests x $0.10 / 1,000 = $6.40; egress 4 x (100 GB free
    //                    + 900 GB x $0.09) = $324                                           -> $423.2706
    //   azure archive:   storage $12.045; requests $0.176 + 4 x 16,000 reads x $5.50 / 10,000 = $35.20;
    //                    retrieval 4 x 1,000 GB x $0.022 = $88; egress 4 x (100 GB free + 900 GB x $0.087)
    //                    = $313.20                                                          -> $448.621
    auto often = compare(cost_test_catalog(), cost_test_input("", "", 1000, 365, 4));
    REQUIRE(often.has_value());
    const auto find = [&](std::string_view provider, std::string_view storage_class) {
        for (std::size_t i = 0; i < often.value().size(); ++i)
            if (often.value()[i].provider == provider && often.value()[i].storage_class == storage_class) return i;
        FAIL("no row " << provider << " " << storage_class);
        return std::size_t{0};
    };
    const auto deep = find("s3", "deep-archive");
    const auto archive = find("azure", "archive");
    CHECK(deep < archive);
    CHECK(often.value()[deep].total_usd == cost_test_usd_is(423.2706));
    CHECK(often.value()[archive].total_usd == cost_test_usd_is(448.621));

    const auto j = to_json(r);
    CHECK(j["estimates"].size() == 15);
    CHECK(j["estimates"][0]["total_usd"].get<double>() == 12.221);
    const auto text = format_comparison(r);
    CHECK(text.find("azure  archive") != std::string::npos);
    CHECK(text.find("$12.22") != std::string::npos);
}

TEST_CASE("cost: sizes as the CLI writes them") {
    CHECK(parse_size("500G").value() == 500 * cost_test_gb);
    CHECK(parse_size("500GB").value() == 500 * cost_test_gb);
    CHECK(parse_size("500gib").value() == 500 * cost_test_gb);
    CHECK(parse_size("1.5T").value() == 1536 * cost_test_gb);
    CHECK(parse_size("64MiB").value() == default_part_size);
    CHECK(parse_size("123456").value() == 123456);
    CHECK(parse_size(" 2 K ").value() == 2048);
    CHECK(parse_size("16E").has_error());
    CHECK(parse_size("-500G").error().message == "size must not be negative: \"-500G\"");
    CHECK(parse_size("").error().message == "size is empty");
    CHECK(parse_size("G").error().message == "size \"G\" is not a number with an optional unit (500G, 1.5T, 123456)");
    CHECK(parse_size("5X").error().message == "size \"5X\": unknown unit \"X\" (use K, M, G, T or P: powers of 1024)");
    CHECK(parse_size("99999999999P").error().message == "size \"99999999999P\" is too large (at most 2^64 - 1 bytes)");
}

TEST_CASE("cost: bad input is refused with a clear message") {
    // Zero or negative sizes.
    CHECK(cost_test_error(cost_test_input("s3", "standard", 0, 30)) == "size must be greater than 0 bytes");
    auto negative = cost_input_from_json({{"provider", "s3"}, {"storage_class", "standard"}, {"stored_bytes", -5}});
    REQUIRE(negative.has_error());
    CHECK(negative.error().message == "stored_bytes must not be negative, got -5");
    auto negative_size = cost_input_from_json({{"size", "-5G"}});
    REQUIRE(negative_size.has_error());
    CHECK(negative_size.error().message == "size: size must not be negative: \"-5G\"");

    // Zero days with a minimum-duration class; negative and endless days.
    CHECK(cost_test_error(cost_test_input("gcs", "nearline", 100, 0)) ==
          "days is 0, but gcs nearline (GCS Nearline) has a minimum storage duration of 30 days: anything stored is charged "
          "at least 30 days; give the days it will be kept");
    CHECK(cost_test_error(cost_test_input("s3", "standard", 100, -1)) == "days must be a number of days, 0 or more, got -1");
    CHECK(cost_test_error(cost_test_input("s3", "standard", 100, std::numeric_limits<double>::quiet_NaN())) ==
          "days must be a number of days, 0 or more, got nan");
    CHECK(cost_test_error(cost_test_input("s3", "standard", 100, 40000)) == "days must be at most 36500 (100 years), got 40000");
    auto zero_days = compare(cost_test_catalog(), cost_test_input("", "", 100, 0));
    REQUIRE(zero_days.has_error());
    CHECK(zero_days.error().message ==
          "days is 0, but a comparison includes classes with a minimum storage duration; give the days the data will be kept");
    // Zero days in a class without a minimum is an upload and a delete: requests only.
    const auto upload = cost_test_run(cost_test_input("s3", "standard", 500, 0));
    CHECK(cost_test_usd(upload, "storage") == 0);
    CHECK(upload.total_usd == cost_test_usd_is(0.04));

    // Unknown provider, class or region.
    CHECK(cost_test_error(cost_test_input("s4", "standard", 100, 30)) == "unknown provider \"s4\" (known: azure, gcs, s3)");
    CHECK(cost_test_error(cost_test_input("", "standard", 100, 30)) == "provider is required (known: azure, gcs, s3)");
    CHECK(cost_test_error(cost_test_input("s3", "glacier", 100, 30)) ==
          "unknown storage class \"glacier\" for s3 (known: standard, intelligent-tiering, standard-ia, onezone-ia, glacier-ir, "
          "glacier-flexible, deep-archive)");
    CHECK(cost_test_error(cost_test_input("azure", "", 100, 30)) == "storage class is required (known for azure: hot, cool, cold, archive)");
    auto mars = cost_test_input("s3", "standard", 100, 30);
    mars.region = "mars-1";
    CHECK(cost_test_error(mars) ==
          "no prices for s3 in region \"mars-1\" (known: eu-west-1, us-east-1); give a price table for that region (--pricing FILE)");
    auto in = cost_test_input("", "", 100, 30);
    in.regions = {{"oracle", "x"}};
    auto unknown = compare(cost_test_catalog(), in);
    REQUIRE(unknown.has_error());
    CHECK(unknown.error().message == "regions: unknown provider \"oracle\" (known: azure, gcs, s3)");

    // Requests of the registry: unknown keys and wrong types name the key.
    auto typo = cost_input_from_json({{"provider", "s3"}, {"day", 30}});
    REQUIRE(typo.has_error());
    CHECK(typo.error().message.rfind("unknown key \"day\" (known: provider, storage_class,", 0) == 0);
    auto both = cost_input_from_json({{"stored_bytes", 5}, {"size", "5G"}});
    REQUIRE(both.has_error());
    CHECK(both.error().message == "give either stored_bytes or size, not both");
    auto days_text = cost_input_from_json({{"days", "30"}});
    REQUIRE(days_text.has_error());
    CHECK(days_text.error().message == "days must be a number, got \"30\"");
}

TEST_CASE("cost: a registry request reads into the same estimate") {
    auto in = cost_input_from_json(
        {{"provider", "s3"}, {"storage_class", "standard"}, {"region", "us-east-1"}, {"size", "500G"}, {"days", 30}, {"restores", 0}});
    REQUIRE(in.has_value());
    const auto e = cost_test_run(in.value());
    CHECK(e.total_usd == cost_test_usd_is(11.54));
    auto repo = cost_input_from_json({{"provider", "s3"}, {"storage_class", "standard"}, {"stored_bytes", 1000 * cost_test_gb},
                                      {"monthly_growth", "300G"}, {"days", 60}, {"delete_at_end", false}});
    REQUIRE(repo.has_value());
    CHECK(repo.value().monthly_growth_bytes == 300 * cost_test_gb);
    CHECK_FALSE(repo.value().delete_at_end);
    CHECK(cost_test_usd(cost_test_run(repo.value()), "storage") == cost_test_usd_is(59.80));

    const auto text = format_estimate(e);
    CHECK(text.find("s3 standard (S3 Standard) in us-east-1: 500 GB for 30 days, 0 restores") == 0);
    CHECK(text.find("\n  total                  $11.54\n") != std::string::npos);
    CHECK(text.find("$0.04  8,000 PUT requests x $0.005/1,000") != std::string::npos);
}

TEST_CASE("cost: a malformed price table is refused, naming the file and the key") {
    auto not_json = parse_pricing_text("{\"provider\": \"s3\",", "bad.json");
    REQUIRE(not_json.has_error());
    CHECK(not_json.error().code == Errc::invalid_argument);
    CHECK(not_json.error().message.rfind("bad.json: not valid JSON: parse error at line 1", 0) == 0);

    auto doc = cost_test_s3_doc();
    REQUIRE(cost_test_table_error(doc) == "(parsed)");

    auto missing = doc;
    missing["classes"]["standard"]["requests"]["put"].erase("per");
    CHECK(cost_test_table_error(missing) == "bad.json: classes.standard.requests.put.per: missing");

    auto per_zero = doc;
    per_zero["classes"]["standard"]["requests"]["put"]["per"] = 0;
    CHECK(cost_test_table_error(per_zero) ==
          "bad.json: classes.standard.requests.put.per: must be a positive integer (the number of operations the price is for: 1000 "
          "or 10000), got 0");

    auto negative = doc;
    negative["classes"]["standard-ia"]["storage_gb_month"] = -0.0125;
    CHECK(cost_test_table_error(negative) == "bad.json: classes.standard-ia.storage_gb_month: must not be negative, got -0.0125");

    auto text_price = doc;
    text_price["classes"]["glacier-ir"]["retrieval_per_gb"] = "0.03";
    CHECK(cost_test_table_error(text_price) == "bad.json: classes.glacier-ir.retrieval_per_gb: must be a number, got \"0.03\"");

    auto typo = doc;
    typo["classes"]["standard"]["storage_gb_mnth"] = 0.023;
    CHECK(cost_test_table_error(typo).rfind("bad.json: classes.standard.storage_gb_mnth: unknown key (allowed here: name,", 0) == 0);

    auto unknown_class = doc;
    unknown_class["classes"]["glacier"] = doc["classes"]["glacier-ir"];
    CHECK(cost_test_table_error(unknown_class) ==
          "bad.json: classes.glacier: unknown storage class for s3 (known: standard, intelligent-tiering, standard-ia, onezone-ia, "
          "glacier-ir, glacier-flexible, deep-archive)");

    auto no_rule = doc;
    no_rule["classes"]["deep-archive"]["early_deletion"] = "none";
    CHECK(cost_test_table_error(no_rule) ==
          "bad.json: classes.deep-archive.early_deletion: is \"none\" but min_storage_days is 180: a minimum duration needs "
          "\"prorated_remaining\"");

    auto monthly = doc;
    monthly["classes"]["deep-archive"]["early_deletion"] = "monthly";
    CHECK(cost_test_table_error(monthly) ==
          "bad.json: classes.deep-archive.early_deletion: must be \"none\" or \"prorated_remaining\", got \"monthly\"");

    auto bounded = doc;
    bounded["egress_tiers"].back()["up_to_gb"] = 512000;
    CHECK(cost_test_table_error(bounded) ==
          "bad.json: egress_tiers[4].up_to_gb: the last tier must be open-ended (\"up_to_gb\": null) so that every GB has a price");

    auto descending = doc;
    descending["egress_tiers"][2]["up_to_gb"] = 5000;
    CHECK(cost_test_table_error(descending) ==
          "bad.json: egress_tiers[2].up_to_gb: must be greater than the previous tier's limit (10240 GB), got 5000");

    auto mismatch = doc;
    mismatch["classes"]["standard"]["storage_gb_month"] = 0.02;
    CHECK(cost_test_table_error(mismatch) ==
          "bad.json: classes.standard.storage_tiers[0].price_per_gb: must equal storage_gb_month (0.02), got 0.023");

    auto provider = doc;
    provider["provider"] = "oracle";
    CHECK(cost_test_table_error(provider) == "bad.json: provider: unknown provider \"oracle\" (known: azure, gcs, s3)");

    auto date = doc;
    date["as_of"] = "2026-13-01";
    CHECK(cost_test_table_error(date) == "bad.json: as_of: must be a date YYYY-MM-DD, got \"2026-13-01\"");

    auto euro = doc;
    euro["currency"] = "EUR";
    CHECK(cost_test_table_error(euro) == "bad.json: currency: only \"USD\" is supported, got \"EUR\"");

    auto no_classes = doc;
    no_classes["classes"] = nlohmann::json::object();
    CHECK(cost_test_table_error(no_classes) == "bad.json: classes: must name at least one storage class");

    // Through the file loader: the path is the name; a missing file is not_found.
    const auto path = hypersdk::test::work("cost_malformed.json");
    std::ofstream(path, std::ios::trunc) << per_zero.dump(2);
    auto loaded = load_pricing_file(path);
    REQUIRE(loaded.has_error());
    CHECK(loaded.error().message.rfind(path + ": classes.standard.requests.put.per: must be a positive integer", 0) == 0);
    auto absent = load_pricing_file(hypersdk::test::work("cost_no_such_table.json"));
    REQUIRE(absent.has_error());
    CHECK(absent.error().code == Errc::not_found);
    CHECK(absent.error().message ==
          hypersdk::test::work("cost_no_such_table.json") + ": cannot read the price table: No such file or directory");
}

}  // namespace cost_test
