#include "cost/pricing.hpp"

#include "cost/embedded_pricing.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <sstream>

namespace hypersdk::cost {
namespace {

using PricingJson = nlohmann::json;

// Where a value sits in the file, for messages: "classes.standard.requests.put.per".
std::string pricing_key(std::string_view path, std::string_view key) {
    return path.empty() ? std::string(key) : fmt::format("{}.{}", path, key);
}

std::string pricing_index(std::string_view path, std::size_t i) { return fmt::format("{}[{}]", path, i); }

Error pricing_error(std::string_view origin, std::string_view path, std::string_view what) {
    return Error{Errc::invalid_argument, fmt::format("{}: {}: {}", origin, path, what)};
}

std::string pricing_join(const std::vector<std::string> &names) {
    std::string out;
    for (const auto &n : names) out += (out.empty() ? "" : ", ") + n;
    return out;
}

// A JSON value as it was written, for "got ..." (short: strings and numbers as they are).
std::string pricing_shown(const PricingJson &v) {
    auto s = v.dump();
    return s.size() > 40 ? s.substr(0, 37) + "..." : s;
}

Result<void> pricing_only_keys(const PricingJson &obj, std::string_view origin, std::string_view path,
                               std::initializer_list<std::string_view> allowed) {
    for (const auto &[key, value] : obj.items()) {
        (void)value;
        if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
            std::string list;
            for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
            return fail(pricing_error(origin, pricing_key(path, key), fmt::format("unknown key (allowed here: {})", list)));
        }
    }
    return success();
}

Result<const PricingJson *> pricing_member(const PricingJson &obj, std::string_view origin, std::string_view path, const char *key,
                                    bool required) {
    auto it = obj.find(key);
    if (it == obj.end()) {
        if (required) return fail(pricing_error(origin, pricing_key(path, key), "missing"));
        return static_cast<const PricingJson *>(nullptr);
    }
    return &*it;
}

Result<const PricingJson *> pricing_object(const PricingJson &obj, std::string_view origin, std::string_view path, const char *key,
                                    bool required) {
    HSDK_TRY(const PricingJson *v, pricing_member(obj, origin, path, key, required));
    if (v != nullptr && !v->is_object())
        return fail(pricing_error(origin, pricing_key(path, key), fmt::format("must be an object, got {}", v->type_name())));
    return v;
}

Result<const PricingJson *> pricing_array(const PricingJson &obj, std::string_view origin, std::string_view path, const char *key,
                                   bool required) {
    HSDK_TRY(const PricingJson *v, pricing_member(obj, origin, path, key, required));
    if (v != nullptr && (!v->is_array() || v->empty()))
        return fail(pricing_error(origin, pricing_key(path, key),
                                  v->is_array() ? std::string("must not be empty") : fmt::format("must be an array, got {}", v->type_name())));
    return v;
}

// A price or a quantity: a JSON number, never negative; absent optional ones read as `fallback`.
Result<double> pricing_number(const PricingJson &obj, std::string_view origin, std::string_view path, const char *key,
                              bool required, double fallback = 0) {
    HSDK_TRY(const PricingJson *v, pricing_member(obj, origin, path, key, required));
    if (v == nullptr) return fallback;
    if (!v->is_number()) return fail(pricing_error(origin, pricing_key(path, key), fmt::format("must be a number, got {}", pricing_shown(*v))));
    const double d = v->get<double>();
    if (!std::isfinite(d)) return fail(pricing_error(origin, pricing_key(path, key), "must be a finite number"));
    if (d < 0) return fail(pricing_error(origin, pricing_key(path, key), fmt::format("must not be negative, got {}", pricing_shown(*v))));
    return d;
}

Result<std::string> pricing_string(const PricingJson &obj, std::string_view origin, std::string_view path, const char *key,
                                   bool required) {
    HSDK_TRY(const PricingJson *v, pricing_member(obj, origin, path, key, required));
    if (v == nullptr) return std::string();
    if (!v->is_string()) return fail(pricing_error(origin, pricing_key(path, key), fmt::format("must be a string, got {}", pricing_shown(*v))));
    auto s = v->get<std::string>();
    if (required && s.empty()) return fail(pricing_error(origin, pricing_key(path, key), "must not be empty"));
    return s;
}

bool pricing_is_date(std::string_view s) {
    if (s.size() != 10 || s[4] != '-' || s[7] != '-') return false;
    for (std::size_t i : {0, 1, 2, 3, 5, 6, 8, 9})
        if (s[i] < '0' || s[i] > '9') return false;
    const int month = (s[5] - '0') * 10 + (s[6] - '0');
    const int day = (s[8] - '0') * 10 + (s[9] - '0');
    return month >= 1 && month <= 12 && day >= 1 && day <= 31;
}

bool pricing_is_region(std::string_view s) {
    if (s.empty() || s.size() > 64) return false;
    return std::all_of(s.begin(), s.end(), [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; });
}

// Ascending limits, only the last one open-ended: [{"up_to_gb": 100, "price_per_gb": 0}, ..., {"up_to_gb": null, ...}].
Result<std::vector<PriceTier>> pricing_tiers(const PricingJson &arr, std::string_view origin, std::string_view path) {
    std::vector<PriceTier> tiers;
    double previous = 0;
    for (std::size_t i = 0; i < arr.size(); ++i) {
        const auto here = pricing_index(path, i);
        const auto &t = arr[i];
        if (!t.is_object()) return fail(pricing_error(origin, here, fmt::format("must be an object, got {}", t.type_name())));
        HSDK_TRYV(pricing_only_keys(t, origin, here, {"up_to_gb", "price_per_gb"}));
        PriceTier tier;
        HSDK_TRY(tier.price_per_gb, pricing_number(t, origin, here, "price_per_gb", true));
        const bool last = i + 1 == arr.size();
        auto limit = t.find("up_to_gb");
        if (limit == t.end() || limit->is_null()) {
            if (!last)
                return fail(pricing_error(origin, pricing_key(here, "up_to_gb"), "only the last tier may be open-ended (null)"));
        } else {
            HSDK_TRY(double up_to, pricing_number(t, origin, here, "up_to_gb", true));
            if (up_to <= previous)
                return fail(pricing_error(origin, pricing_key(here, "up_to_gb"),
                                          fmt::format("must be greater than the previous tier's limit ({} GB), got {}", previous, up_to)));
            if (last)
                return fail(pricing_error(origin, pricing_key(here, "up_to_gb"),
                                          "the last tier must be open-ended (\"up_to_gb\": null) so that every GB has a price"));
            tier.up_to_gb = up_to;
            previous = up_to;
        }
        tiers.push_back(tier);
    }
    return tiers;
}

Result<RequestPrice> pricing_request(const PricingJson &requests, std::string_view origin, std::string_view path, const char *key) {
    const auto here = pricing_key(path, key);
    HSDK_TRY(const PricingJson *r, pricing_object(requests, origin, path, key, true));
    HSDK_TRYV(pricing_only_keys(*r, origin, here, {"price", "per"}));
    RequestPrice out;
    HSDK_TRY(out.price, pricing_number(*r, origin, here, "price", true));
    HSDK_TRY(const PricingJson *per, pricing_member(*r, origin, here, "per", true));
    if (!per->is_number_integer() || per->get<std::int64_t>() <= 0)
        return fail(pricing_error(origin, pricing_key(here, "per"),
                                  fmt::format("must be a positive integer (the number of operations the price is for: 1000 or 10000), got {}",
                                              pricing_shown(*per))));
    out.per = per->get<std::uint64_t>();
    return out;
}

Result<StorageClass> pricing_class(const PricingJson &c, std::string_view origin, std::string_view path, const std::string &id) {
    if (!c.is_object()) return fail(pricing_error(origin, path, fmt::format("must be an object, got {}", c.type_name())));
    HSDK_TRYV(pricing_only_keys(c, origin, path,
                                {"name", "storage_gb_month", "storage_tiers", "age_tiers", "monitoring_per_1000_objects_month",
                                 "min_storage_days", "early_deletion", "retrieval_per_gb", "requests"}));
    StorageClass sc;
    sc.id = id;
    HSDK_TRY(sc.name, pricing_string(c, origin, path, "name", false));
    if (sc.name.empty()) sc.name = id;
    HSDK_TRY(sc.storage_gb_month, pricing_number(c, origin, path, "storage_gb_month", true));
    HSDK_TRY(const PricingJson *tiers, pricing_array(c, origin, path, "storage_tiers", false));
    if (tiers != nullptr) {
        HSDK_TRY(sc.storage_tiers, pricing_tiers(*tiers, origin, pricing_key(path, "storage_tiers")));
        if (sc.storage_tiers.front().price_per_gb != sc.storage_gb_month)
            return fail(pricing_error(origin, pricing_key(path, "storage_tiers[0].price_per_gb"),
                                      fmt::format("must equal storage_gb_month ({}), got {}", sc.storage_gb_month,
                                                  sc.storage_tiers.front().price_per_gb)));
    }
    HSDK_TRY(const PricingJson *ages, pricing_array(c, origin, path, "age_tiers", false));
    if (ages != nullptr) {
        const auto ages_path = pricing_key(path, "age_tiers");
        double previous = 0;
        for (std::size_t i = 0; i < ages->size(); ++i) {
            const auto here = pricing_index(ages_path, i);
            const auto &a = (*ages)[i];
            if (!a.is_object()) return fail(pricing_error(origin, here, fmt::format("must be an object, got {}", a.type_name())));
            HSDK_TRYV(pricing_only_keys(a, origin, here, {"after_days", "storage_gb_month", "name"}));
            AgeTier tier;
            HSDK_TRY(tier.after_days, pricing_number(a, origin, here, "after_days", true));
            if (tier.after_days <= previous)
                return fail(pricing_error(origin, pricing_key(here, "after_days"),
                                          fmt::format("must be greater than {} (tiers in ascending order), got {}", previous, tier.after_days)));
            previous = tier.after_days;
            HSDK_TRY(tier.storage_gb_month, pricing_number(a, origin, here, "storage_gb_month", true));
            HSDK_TRY(tier.name, pricing_string(a, origin, here, "name", false));
            if (tier.name.empty()) tier.name = fmt::format("after {} days", tier.after_days);
            sc.age_tiers.push_back(std::move(tier));
        }
    }
    HSDK_TRY(sc.monitoring_per_1000_objects_month, pricing_number(c, origin, path, "monitoring_per_1000_objects_month", false));
    HSDK_TRY(sc.min_storage_days, pricing_number(c, origin, path, "min_storage_days", true));
    if (sc.min_storage_days > 3650)
        return fail(pricing_error(origin, pricing_key(path, "min_storage_days"), fmt::format("must be at most 3650, got {}", sc.min_storage_days)));
    HSDK_TRY(auto rule, pricing_string(c, origin, path, "early_deletion", true));
    if (rule == "none") sc.early_deletion = EarlyDeletion::none;
    else if (rule == "prorated_remaining") sc.early_deletion = EarlyDeletion::prorated_remaining;
    else
        return fail(pricing_error(origin, pricing_key(path, "early_deletion"),
                                  fmt::format("must be \"none\" or \"prorated_remaining\", got \"{}\"", rule)));
    if (sc.min_storage_days > 0 && sc.early_deletion == EarlyDeletion::none)
        return fail(pricing_error(origin, pricing_key(path, "early_deletion"),
                                  fmt::format("is \"none\" but min_storage_days is {}: a minimum duration needs \"prorated_remaining\"",
                                              sc.min_storage_days)));
    if (sc.min_storage_days == 0 && sc.early_deletion != EarlyDeletion::none)
        return fail(pricing_error(origin, pricing_key(path, "early_deletion"),
                                  "is \"prorated_remaining\" but min_storage_days is 0: use \"none\""));
    HSDK_TRY(sc.retrieval_per_gb, pricing_number(c, origin, path, "retrieval_per_gb", true));
    HSDK_TRY(const PricingJson *requests, pricing_object(c, origin, path, "requests", true));
    const auto requests_path = pricing_key(path, "requests");
    HSDK_TRYV(pricing_only_keys(*requests, origin, requests_path, {"put", "get", "restore"}));
    HSDK_TRY(sc.put, pricing_request(*requests, origin, requests_path, "put"));
    HSDK_TRY(sc.get, pricing_request(*requests, origin, requests_path, "get"));
    if (requests->contains("restore")) {
        HSDK_TRY(auto restore, pricing_request(*requests, origin, requests_path, "restore"));
        sc.restore = restore;
    }
    return sc;
}

PricingJson pricing_tiers_json(const std::vector<PriceTier> &tiers) {
    PricingJson out = PricingJson::array();
    for (const auto &t : tiers)
        out.push_back({{"up_to_gb", t.up_to_gb ? PricingJson(*t.up_to_gb) : PricingJson(nullptr)}, {"price_per_gb", t.price_per_gb}});
    return out;
}

PricingJson pricing_request_json(const RequestPrice &r) { return {{"price", r.price}, {"per", r.per}}; }

}  // namespace

std::string_view early_deletion_name(EarlyDeletion rule) noexcept {
    return rule == EarlyDeletion::prorated_remaining ? "prorated_remaining" : "none";
}

const StorageClass *PricingTable::find_class(std::string_view id) const {
    for (const auto &c : classes)
        if (c.id == id) return &c;
    return nullptr;
}

const std::vector<std::string> &known_providers() {
    static const std::vector<std::string> providers{"azure", "gcs", "s3"};
    return providers;
}

const std::vector<std::string> &known_classes(std::string_view provider) {
    static const std::vector<std::string> s3{"standard",   "intelligent-tiering", "standard-ia", "onezone-ia",
                                             "glacier-ir", "glacier-flexible",    "deep-archive"};
    static const std::vector<std::string> azure{"hot", "cool", "cold", "archive"};
    static const std::vector<std::string> gcs{"standard", "nearline", "coldline", "archive"};
    static const std::vector<std::string> none;
    if (provider == "s3") return s3;
    if (provider == "azure") return azure;
    if (provider == "gcs") return gcs;
    return none;
}

Result<PricingTable> parse_pricing(const nlohmann::json &doc, std::string_view origin) {
    if (!doc.is_object()) return fail(Errc::invalid_argument, fmt::format("{}: a price table must be a JSON object, got {}", origin, doc.type_name()));
    HSDK_TRYV(pricing_only_keys(doc, origin, "",
                                {"provider", "region", "currency", "as_of", "source", "notes", "bytes_per_gb", "classes", "egress_tiers"}));
    PricingTable t;
    t.origin = std::string(origin);
    HSDK_TRY(t.provider, pricing_string(doc, origin, "", "provider", true));
    const auto &classes_known = known_classes(t.provider);
    if (classes_known.empty())
        return fail(pricing_error(origin, "provider", fmt::format("unknown provider \"{}\" (known: {})", t.provider, pricing_join(known_providers()))));
    HSDK_TRY(t.region, pricing_string(doc, origin, "", "region", true));
    if (!pricing_is_region(t.region))
        return fail(pricing_error(origin, "region", fmt::format("must be a region id of lower-case letters, digits and '-', got \"{}\"", t.region)));
    HSDK_TRY(t.currency, pricing_string(doc, origin, "", "currency", true));
    if (t.currency != "USD") return fail(pricing_error(origin, "currency", fmt::format("only \"USD\" is supported, got \"{}\"", t.currency)));
    HSDK_TRY(t.as_of, pricing_string(doc, origin, "", "as_of", true));
    if (!pricing_is_date(t.as_of)) return fail(pricing_error(origin, "as_of", fmt::format("must be a date YYYY-MM-DD, got \"{}\"", t.as_of)));
    HSDK_TRY(t.source, pricing_string(doc, origin, "", "source", true));
    if (t.source.rfind("https://", 0) != 0 && t.source.rfind("http://", 0) != 0)
        return fail(pricing_error(origin, "source", fmt::format("must be the URL of the price page, got \"{}\"", t.source)));
    HSDK_TRY(t.notes, pricing_string(doc, origin, "", "notes", false));
    if (auto it = doc.find("bytes_per_gb"); it != doc.end()) {
        if (!it->is_number_integer() || (it->get<std::int64_t>() != 1073741824 && it->get<std::int64_t>() != 1000000000))
            return fail(pricing_error(origin, "bytes_per_gb", fmt::format("must be 1073741824 (2^30) or 1000000000 (10^9), got {}", pricing_shown(*it))));
        t.bytes_per_gb = it->get<std::uint64_t>();
    }

    HSDK_TRY(const PricingJson *classes, pricing_object(doc, origin, "", "classes", true));
    if (classes->empty()) return fail(pricing_error(origin, "classes", "must name at least one storage class"));
    for (const auto &[id, body] : classes->items()) {
        if (std::find(classes_known.begin(), classes_known.end(), id) == classes_known.end())
            return fail(pricing_error(origin, pricing_key("classes", id),
                                      fmt::format("unknown storage class for {} (known: {})", t.provider, pricing_join(classes_known))));
        HSDK_TRY(auto sc, pricing_class(body, origin, pricing_key("classes", id), id));
        t.classes.push_back(std::move(sc));
    }
    std::sort(t.classes.begin(), t.classes.end(), [&](const StorageClass &a, const StorageClass &b) {
        return std::find(classes_known.begin(), classes_known.end(), a.id) < std::find(classes_known.begin(), classes_known.end(), b.id);
    });

    HSDK_TRY(const PricingJson *egress, pricing_array(doc, origin, "", "egress_tiers", true));
    HSDK_TRY(t.egress_tiers, pricing_tiers(*egress, origin, "egress_tiers"));
    return t;
}

Result<PricingTable> parse_pricing_text(std::string_view text, std::string_view origin) {
    PricingJson doc;
    try {
        doc = PricingJson::parse(text.begin(), text.end());
    } catch (const PricingJson::parse_error &e) {
        std::string what = e.what();
        if (auto p = what.find("] "); what.rfind("[json.exception", 0) == 0 && p != std::string::npos) what.erase(0, p + 2);
        return fail(Errc::invalid_argument, fmt::format("{}: not valid JSON: {}", origin, what));
    }
    return parse_pricing(doc, origin);
}

Result<PricingTable> load_pricing_file(const std::filesystem::path &path) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec))
        return fail(Errc::invalid_argument, fmt::format("{}: is a directory, not a price table", path.string()));
    std::ifstream in(path, std::ios::binary);
    if (!in) return fail(Errc::not_found, fmt::format("{}: cannot read the price table: {}", path.string(), std::strerror(errno)));
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) return fail(Errc::io_error, fmt::format("{}: cannot read the price table", path.string()));
    return parse_pricing_text(text.str(), path.string());
}

nlohmann::json to_json(const PricingTable &table) {
    PricingJson classes = PricingJson::object();
    for (const auto &c : table.classes) {
        PricingJson j = {{"name", c.name},
                  {"storage_gb_month", c.storage_gb_month},
                  {"min_storage_days", c.min_storage_days},
                  {"early_deletion", early_deletion_name(c.early_deletion)},
                  {"retrieval_per_gb", c.retrieval_per_gb},
                  {"requests", {{"put", pricing_request_json(c.put)}, {"get", pricing_request_json(c.get)}}}};
        if (!c.storage_tiers.empty()) j["storage_tiers"] = pricing_tiers_json(c.storage_tiers);
        if (!c.age_tiers.empty()) {
            PricingJson ages = PricingJson::array();
            for (const auto &a : c.age_tiers) ages.push_back({{"after_days", a.after_days}, {"storage_gb_month", a.storage_gb_month}, {"name", a.name}});
            j["age_tiers"] = std::move(ages);
        }
        if (c.monitoring_per_1000_objects_month > 0) j["monitoring_per_1000_objects_month"] = c.monitoring_per_1000_objects_month;
        if (c.restore) j["requests"]["restore"] = pricing_request_json(*c.restore);
        classes[c.id] = std::move(j);
    }
    PricingJson out = {{"provider", table.provider},
                {"region", table.region},
                {"currency", table.currency},
                {"as_of", table.as_of},
                {"source", table.source},
                {"bytes_per_gb", table.bytes_per_gb},
                {"classes", std::move(classes)},
                {"egress_tiers", pricing_tiers_json(table.egress_tiers)}};
    if (!table.notes.empty()) out["notes"] = table.notes;
    return out;
}

double apply_tiers(double gb, const std::vector<PriceTier> &tiers) {
    double cost = 0;
    double below = 0;  // GB priced by the tiers before this one
    for (const auto &t : tiers) {
        if (gb <= below) break;
        const double limit = t.up_to_gb.value_or(std::numeric_limits<double>::infinity());
        cost += (std::min(gb, limit) - below) * t.price_per_gb;
        below = limit;
    }
    return cost;
}

Result<PricingCatalog> PricingCatalog::builtin() {
    PricingCatalog catalog;
    for (std::size_t i = 0; i < embedded_pricing_file_count; ++i) {
        const auto &f = embedded_pricing_files[i];
        const auto origin = fmt::format("pricing/{}", f.name);
        HSDK_TRY(auto table, parse_pricing_text(f.text, origin));
        if (fmt::format("{}/{}.json", table.provider, table.region) != f.name)
            return fail(Errc::internal, fmt::format("{}: holds {} {}, so it must be named pricing/{}/{}.json", origin, table.provider,
                                                    table.region, table.provider, table.region));
        for (const auto &t : catalog.tables_)
            if (t.provider == table.provider && t.region == table.region)
                return fail(Errc::internal, fmt::format("{}: a second table for {} {}", origin, table.provider, table.region));
        catalog.tables_.push_back(std::move(table));
    }
    return catalog;
}

void PricingCatalog::put(PricingTable table) {
    std::erase_if(preferred_, [&](const auto &p) { return p.first == table.provider; });
    preferred_.emplace_back(table.provider, table.region);
    for (auto &t : tables_)
        if (t.provider == table.provider && t.region == table.region) {
            t = std::move(table);
            return;
        }
    tables_.push_back(std::move(table));
}

std::vector<std::string> PricingCatalog::providers() const {
    std::vector<std::string> out;
    for (const auto &t : tables_)
        if (std::find(out.begin(), out.end(), t.provider) == out.end()) out.push_back(t.provider);
    std::sort(out.begin(), out.end());
    return out;
}

std::vector<std::string> PricingCatalog::regions(std::string_view provider) const {
    std::vector<std::string> out;
    for (const auto &t : tables_)
        if (t.provider == provider) out.push_back(t.region);
    std::sort(out.begin(), out.end());
    return out;
}

std::string PricingCatalog::default_region(std::string_view provider) const {
    for (const auto &[p, r] : preferred_)
        if (p == provider) return r;
    const auto all = regions(provider);
    const std::string_view usual = provider == "s3" ? "us-east-1" : provider == "azure" ? "eastus" : provider == "gcs" ? "us-central1" : "";
    for (const auto &r : all)
        if (r == usual) return r;
    return all.empty() ? std::string() : all.front();
}

Result<const PricingTable *> PricingCatalog::find(std::string_view provider, std::string_view region) const {
    const auto all = regions(provider);
    if (all.empty()) {
        if (known_classes(provider).empty())
            return fail(Errc::invalid_argument, fmt::format("unknown provider \"{}\" (known: {})", provider, pricing_join(providers())));
        return fail(Errc::invalid_argument, fmt::format("no price table for provider \"{}\"", provider));
    }
    const std::string wanted = region.empty() ? default_region(provider) : std::string(region);
    for (const auto &t : tables_)
        if (t.provider == provider && t.region == wanted) return &t;
    return fail(Errc::invalid_argument,
                fmt::format("no prices for {} in region \"{}\" (known: {}); give a price table for that region (--pricing FILE)",
                            provider, wanted, pricing_join(all)));
}

}  // namespace hypersdk::cost
