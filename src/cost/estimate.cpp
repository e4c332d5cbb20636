#include "cost/estimate.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

namespace hypersdk::cost {
namespace {

using CostJson = nlohmann::json;

constexpr double cost_unbounded = std::numeric_limits<double>::infinity();

// "1,234.5": at most `decimals` decimals, trailing zeros dropped, thousands separated.
std::string cost_num(double v, int decimals = 2) {
    std::string s = fmt::format("{:.{}f}", v, decimals);
    if (s.find('.') != std::string::npos) {
        while (s.back() == '0') s.pop_back();
        if (s.back() == '.') s.pop_back();
    }
    if (s == "-0") s = "0";
    const std::size_t sign = s[0] == '-' ? 1 : 0;
    const std::size_t dot = std::min(s.find('.'), s.size());
    std::string out = s.substr(0, sign);
    const std::string digits = s.substr(sign, dot - sign);
    for (std::size_t i = 0; i < digits.size(); ++i) {
        if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return out + s.substr(dot);
}

std::string cost_count(std::uint64_t n) { return cost_num(static_cast<double>(n), 0); }

// "$11.50", "$1,783.00"; amounts under a cent keep two significant digits ("$0.00055").
std::string cost_money(double v) {
    if (v == 0) return "$0.00";
    if (std::fabs(v) >= 0.01) {
        auto s = cost_num(v, 2);
        const auto dot = s.find('.');
        if (dot == std::string::npos) s += ".00";
        else if (s.size() - dot == 2) s += '0';
        return "$" + s;
    }
    const int decimals = 1 - static_cast<int>(std::floor(std::log10(std::fabs(v))));
    return "$" + cost_num(v, std::min(decimals, 12));
}

// A unit price as written in the table: "$0.023", "$0.00099", "$5".
std::string cost_price(double p) {
    auto s = fmt::format("{}", p);
    if (s.find('e') != std::string::npos) s = cost_num(p, 12);
    return "$" + s;
}

std::string cost_months(double days) {
    if (days == days_per_month) return "1 month";
    return fmt::format("{} months", cost_num(days / days_per_month, 2));
}

std::string cost_plural(std::uint64_t n, std::string_view one, std::string_view many) {
    return fmt::format("{} {}", cost_count(n), n == 1 ? one : many);
}

struct CostLabels {
    const char *write;
    const char *read;
    const char *restore;
};

// The providers' own words for the two request classes.
CostLabels cost_labels(std::string_view provider) {
    if (provider == "azure") return {"write operations", "read operations", "rehydrate requests"};
    if (provider == "gcs") return {"Class A operations", "Class B operations", "restore requests"};
    return {"PUT requests", "GET requests", "restore requests"};
}

// "100 GB x $0 + 900 GB x $0.09": how a tiered price splits `gb`.
std::string cost_tier_breakdown(double gb, const std::vector<PriceTier> &tiers) {
    std::string out;
    double below = 0;
    for (const auto &t : tiers) {
        if (gb <= below) break;
        const double limit = t.up_to_gb.value_or(cost_unbounded);
        const double part = std::min(gb, limit) - below;
        out += fmt::format("{}{} GB x {}", out.empty() ? "" : " + ", cost_num(part), cost_price(t.price_per_gb));
        below = limit;
    }
    return out.empty() ? "0 GB" : out;
}

double cost_overlap(double t0, double t1, double a, double b) { return std::max(0.0, std::min(t1, b) - std::max(t0, a)); }

// Days x (days of growth): over times t in [t0, t1), the measure of the write times s in [0, t]
// whose data is between a and b days old at t. The integrand is piecewise linear in t with kinks at
// a and b, so the trapezoid rule on the pieces is exact.
double cost_cohort_days(double t0, double t1, double a, double b) {
    if (t1 <= t0) return 0;
    const auto f = [&](double t) { return std::max(0.0, (t - a) - std::max(0.0, t - b)); };
    double points[4] = {t0, t1, a, b};
    std::sort(std::begin(points), std::end(points));
    double sum = 0;
    double x = t0;
    for (double p : points) {
        if (p <= x || p > t1) continue;
        sum += (f(x) + f(p)) / 2 * (p - x);
        x = p;
    }
    return sum;
}

double cost_round(double usd) { return std::round(usd * 1e6) / 1e6; }

std::string cost_join(const std::vector<std::string> &names) {
    std::string out;
    for (const auto &n : names) out += (out.empty() ? "" : ", ") + n;
    return out;
}

Error cost_invalid(std::string message) { return Error{Errc::invalid_argument, std::move(message)}; }

// A band of the storage price by age: [from, to) days since written.
struct CostBand {
    double from = 0;
    double to = cost_unbounded;
    double price = 0;
    std::string name;
};

Result<std::uint64_t> cost_json_u64(const CostJson &v, std::string_view key) {
    if (v.is_number_unsigned()) return v.get<std::uint64_t>();
    if (v.is_number_integer()) {
        if (v.get<std::int64_t>() < 0) return fail(cost_invalid(fmt::format("{} must not be negative, got {}", key, v.dump())));
        return static_cast<std::uint64_t>(v.get<std::int64_t>());
    }
    if (v.is_number_float()) {
        const double d = v.get<double>();
        if (d < 0) return fail(cost_invalid(fmt::format("{} must not be negative, got {}", key, v.dump())));
        if (d == std::floor(d) && d < 18446744073709551616.0) return static_cast<std::uint64_t>(d);
        return fail(cost_invalid(fmt::format("{} must be a whole number, got {}", key, v.dump())));
    }
    return fail(cost_invalid(fmt::format("{} must be a number, got {}", key, v.dump())));
}

Result<std::uint64_t> cost_json_size(const CostJson &v, std::string_view key) {
    if (v.is_string()) {
        auto r = parse_size(v.get<std::string>());
        if (!r) return fail(r.error().with_context(key));
        return r.value();
    }
    return cost_json_u64(v, key);
}

Result<std::string> cost_json_string(const CostJson &v, std::string_view key) {
    if (!v.is_string()) return fail(cost_invalid(fmt::format("{} must be a string, got {}", key, v.dump())));
    return v.get<std::string>();
}

}  // namespace

Result<std::uint64_t> parse_size(std::string_view text) {
    std::string_view s = text;
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    if (s.empty()) return fail(cost_invalid("size is empty"));
    if (s.front() == '-') return fail(cost_invalid(fmt::format("size must not be negative: \"{}\"", text)));
    if (s.front() == '+') s.remove_prefix(1);
    std::size_t i = 0;
    std::uint64_t whole = 0;
    bool digits = false;
    bool overflow = false;
    for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) {
        digits = true;
        const auto d = static_cast<std::uint64_t>(s[i] - '0');
        if (whole > (std::numeric_limits<std::uint64_t>::max() - d) / 10) overflow = true;
        else whole = whole * 10 + d;
    }
    double fraction = 0;
    if (i < s.size() && s[i] == '.') {
        double scale = 0.1;
        for (++i; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i, scale /= 10) {
            digits = true;
            fraction += (s[i] - '0') * scale;
        }
    }
    if (!digits) return fail(cost_invalid(fmt::format("size \"{}\" is not a number with an optional unit (500G, 1.5T, 123456)", text)));
    std::string unit(s.substr(i));
    while (!unit.empty() && unit.front() == ' ') unit.erase(0, 1);
    for (auto &c : unit) c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
    int power = -1;
    if (unit.empty() || unit == "B") power = 0;
    else {
        static constexpr std::string_view prefixes = "KMGTP";
        const auto p = prefixes.find(unit[0]);
        const std::string rest = unit.substr(1);
        if (p != std::string_view::npos && (rest.empty() || rest == "B" || rest == "IB")) power = static_cast<int>(p) + 1;
    }
    if (power < 0)
        return fail(cost_invalid(fmt::format("size \"{}\": unknown unit \"{}\" (use K, M, G, T or P: powers of 1024)", text, s.substr(i))));
    const double multiplier = std::pow(1024.0, power);
    const double bytes = (static_cast<double>(whole) + fraction) * multiplier;
    if (overflow || bytes >= 18446744073709551616.0)
        return fail(cost_invalid(fmt::format("size \"{}\" is too large (at most 2^64 - 1 bytes)", text)));
    if (fraction == 0 && !overflow) {
        // Exact for whole numbers: no rounding through double.
        const std::uint64_t m = std::uint64_t{1} << (10 * power);
        if (whole <= std::numeric_limits<std::uint64_t>::max() / m) return whole * m;
    }
    return static_cast<std::uint64_t>(std::ceil(bytes));
}

Result<CostEstimate> estimate(const PricingCatalog &catalog, const CostInput &input) {
    if (input.provider.empty())
        return fail(cost_invalid(fmt::format("provider is required (known: {})", cost_join(catalog.providers()))));
    std::string region = input.region;
    if (region.empty())
        if (auto it = input.regions.find(input.provider); it != input.regions.end()) region = it->second;
    HSDK_TRY(const PricingTable *table, catalog.find(input.provider, region));
    std::vector<std::string> priced;
    for (const auto &c : table->classes) priced.push_back(c.id);
    if (input.storage_class.empty())
        return fail(cost_invalid(fmt::format("storage class is required (known for {}: {})", input.provider, cost_join(priced))));
    const StorageClass *sc = table->find_class(input.storage_class);
    if (sc == nullptr) {
        const auto &known = known_classes(input.provider);
        if (std::find(known.begin(), known.end(), input.storage_class) == known.end())
            return fail(cost_invalid(fmt::format("unknown storage class \"{}\" for {} (known: {})", input.storage_class, input.provider,
                                                 cost_join(known))));
        return fail(cost_invalid(fmt::format("{} has no price for {} class \"{}\" (priced there: {})", table->origin, input.provider,
                                             input.storage_class, cost_join(priced))));
    }
    if (input.stored_bytes == 0) return fail(cost_invalid("size must be greater than 0 bytes"));
    if (!std::isfinite(input.days) || input.days < 0)
        return fail(cost_invalid(fmt::format("days must be a number of days, 0 or more, got {}", input.days)));
    if (input.days > max_days) return fail(cost_invalid(fmt::format("days must be at most {} (100 years), got {}", max_days, input.days)));
    if (input.days == 0 && sc->min_storage_days > 0)
        return fail(cost_invalid(fmt::format("days is 0, but {} {} ({}) has a minimum storage duration of {} days: "
                                             "anything stored is charged at least {} days; give the days it will be kept",
                                             input.provider, sc->id, sc->name, sc->min_storage_days, sc->min_storage_days)));
    if (input.restores > max_restores)
        return fail(cost_invalid(fmt::format("restores must be at most {}, got {}", max_restores, input.restores)));

    CostEstimate e;
    e.provider = input.provider;
    e.storage_class = sc->id;
    e.class_name = sc->name;
    e.region = table->region;
    e.currency = table->currency;
    e.pricing_as_of = table->as_of;
    e.pricing_source = table->source;
    e.pricing_origin = table->origin;
    e.bytes_per_gb = table->bytes_per_gb;
    e.days = input.days;
    e.restores = input.restores;
    e.delete_at_end = input.delete_at_end;
    e.stored_bytes = input.stored_bytes;
    e.monthly_growth_bytes = input.monthly_growth_bytes;

    const double per_gb = static_cast<double>(table->bytes_per_gb);
    const double days = input.days;
    const double base_gb = static_cast<double>(input.stored_bytes) / per_gb;
    const double growth_gb = static_cast<double>(input.monthly_growth_bytes) / per_gb;  // per 30 days
    const double growth_per_day = growth_gb / days_per_month;
    const unsigned restores = input.restores;
    e.stored_gb = base_gb;
    e.final_gb = base_gb + growth_gb * days / days_per_month;

    e.objects_defaulted = input.objects == 0;
    e.objects = e.objects_defaulted ? input.stored_bytes / default_part_size + (input.stored_bytes % default_part_size != 0 ? 1 : 0)
                                    : input.objects;
    const double growth_bytes = static_cast<double>(input.monthly_growth_bytes) * days / days_per_month;
    const auto growth_objects = static_cast<std::uint64_t>(std::ceil(growth_bytes / static_cast<double>(default_part_size)));
    e.write_requests = e.objects + growth_objects;
    e.read_requests = e.write_requests;
    const auto labels = cost_labels(input.provider);

    // ---- storage: per 30-day billing month, per age band -----------------------------------
    std::vector<CostBand> bands;
    bands.push_back({0, sc->age_tiers.empty() ? cost_unbounded : sc->age_tiers.front().after_days, sc->storage_gb_month, ""});
    for (std::size_t k = 0; k < sc->age_tiers.size(); ++k) {
        const auto &a = sc->age_tiers[k];
        bands.push_back({a.after_days, k + 1 < sc->age_tiers.size() ? sc->age_tiers[k + 1].after_days : cost_unbounded,
                         a.storage_gb_month, a.name});
    }
    std::vector<double> band_gb_months(bands.size(), 0.0);
    double storage_usd = 0;
    bool volume_discount = false;
    const auto months = static_cast<std::uint64_t>(std::ceil(days / days_per_month));
    for (std::uint64_t m = 0; m < months; ++m) {
        const double t0 = static_cast<double>(m) * days_per_month;
        const double t1 = std::min(t0 + days_per_month, days);
        for (std::size_t k = 0; k < bands.size(); ++k) {
            const double gb_days = base_gb * cost_overlap(t0, t1, bands[k].from, bands[k].to) +
                                   growth_per_day * cost_cohort_days(t0, t1, bands[k].from, bands[k].to);
            const double gb_months = gb_days / days_per_month;
            band_gb_months[k] += gb_months;
            if (k == 0 && !sc->storage_tiers.empty()) {
                const double tiered = apply_tiers(gb_months, sc->storage_tiers);
                if (tiered < gb_months * bands[0].price) volume_discount = true;
                storage_usd += tiered;
            } else {
                storage_usd += gb_months * bands[k].price;
            }
        }
    }
    for (double g : band_gb_months) e.gb_months += g;

    std::string storage_detail = growth_gb == 0
                                     ? fmt::format("{} GB x {}", cost_num(base_gb), cost_months(days))
                                     : fmt::format("({} GB + {} GB/month growth) over {} days = {} GB-months", cost_num(base_gb),
                                                   cost_num(growth_gb), cost_num(days), cost_num(e.gb_months));
    if (bands.size() == 1) {
        if (volume_discount) {
            std::string steps;
            for (const auto &t : sc->storage_tiers)
                steps += fmt::format("{}{}{}", steps.empty() ? "" : ", ", cost_price(t.price_per_gb),
                                     t.up_to_gb ? fmt::format(" up to {} GB", cost_num(*t.up_to_gb)) : std::string(" above"));
            storage_detail += fmt::format(" at the monthly volume tiers ({})", steps);
        } else {
            storage_detail += fmt::format(" x {}", cost_price(bands[0].price));
        }
    } else {
        storage_detail += ":";
        for (std::size_t k = 0; k < bands.size(); ++k) {
            const auto where = k == 0 ? fmt::format("in the first {} days", cost_num(bands[0].to))
                                      : fmt::format("in the {} (after {} days)", bands[k].name, cost_num(bands[k].from));
            storage_detail += fmt::format("{} {} GB-months {} x {}", k == 0 ? "" : " +", cost_num(band_gb_months[k]), where,
                                          cost_price(bands[k].price));
        }
        if (volume_discount) storage_detail += " (the first band at its monthly volume tiers)";
    }
    if (sc->monitoring_per_1000_objects_month > 0) {
        const double objects_per_month = static_cast<double>(input.monthly_growth_bytes) / static_cast<double>(default_part_size);
        const double object_months =
            (static_cast<double>(e.objects) * days + objects_per_month / days_per_month * days * days / 2) / days_per_month;
        const double monitoring = object_months / 1000 * sc->monitoring_per_1000_objects_month;
        storage_usd += monitoring;
        storage_detail += fmt::format(" + {} object-months x {}/1,000 monitoring", cost_num(object_months),
                                      cost_price(sc->monitoring_per_1000_objects_month));
    }
    e.items.push_back({"storage", storage_usd, storage_detail});

    // ---- requests: one write per object, one read per object and restore ---------------------
    const double put_usd = static_cast<double>(e.write_requests) / static_cast<double>(sc->put.per) * sc->put.price;
    const double get_usd = static_cast<double>(restores) * static_cast<double>(e.read_requests) / static_cast<double>(sc->get.per) * sc->get.price;
    std::string writes = growth_objects == 0 ? cost_count(e.write_requests)
                                             : fmt::format("({} + {} for growth)", cost_count(e.objects), cost_count(growth_objects));
    std::string requests_detail = fmt::format("{} {} x {}/{}", writes, labels.write, cost_price(sc->put.price), cost_count(sc->put.per));
    if (e.objects_defaulted) requests_detail += " (one per 64 MiB object)";
    if (restores > 0)
        requests_detail += fmt::format(" + {} x {} {} x {}/{}", cost_plural(restores, "restore", "restores"), cost_count(e.read_requests),
                                       labels.read, cost_price(sc->get.price), cost_count(sc->get.per));
    e.items.push_back({"requests", put_usd + get_usd, requests_detail});

    // ---- retrieval: per GB read back, and the archive classes' restore requests --------------
    const double retrieval_gb_usd = static_cast<double>(restores) * e.final_gb * sc->retrieval_per_gb;
    const double restore_requests_usd = sc->restore ? static_cast<double>(restores) * static_cast<double>(e.read_requests) /
                                                          static_cast<double>(sc->restore->per) * sc->restore->price
                                                    : 0;
    std::string retrieval_detail;
    if (restores == 0) {
        retrieval_detail = "no restores";
    } else if (sc->retrieval_per_gb == 0 && !sc->restore) {
        retrieval_detail = fmt::format("none: {} has no retrieval fee", sc->name);
    } else {
        retrieval_detail = fmt::format("{} x {} GB x {}/GB", cost_plural(restores, "restore", "restores"), cost_num(e.final_gb),
                                       cost_price(sc->retrieval_per_gb));
        if (sc->restore)
            retrieval_detail += fmt::format(" + {} x {} {} x {}/{}", cost_plural(restores, "restore", "restores"),
                                            cost_count(e.read_requests), labels.restore, cost_price(sc->restore->price),
                                            cost_count(sc->restore->per));
    }
    e.items.push_back({"retrieval", retrieval_gb_usd + restore_requests_usd, retrieval_detail});

    // ---- egress: restores spread over the billing months, tiers per month --------------------
    const std::uint64_t egress_months = std::max<std::uint64_t>(1, months);
    std::vector<std::uint64_t> restores_in_month(egress_months, 0);
    for (std::uint64_t i = 0; i < restores; ++i) ++restores_in_month[i * egress_months / restores];
    double egress_usd = 0;
    for (auto n : restores_in_month) egress_usd += apply_tiers(static_cast<double>(n) * e.final_gb, table->egress_tiers);
    std::string egress_detail;
    if (restores == 0) {
        egress_detail = "no restores";
    } else {
        // Months with the same number of restores cost the same: "2 months x 1 restore x 500 GB: ...".
        std::vector<std::pair<std::uint64_t, std::uint64_t>> groups;  // restores in a month -> months
        for (auto n : restores_in_month) {
            if (n == 0) continue;
            auto it = std::find_if(groups.begin(), groups.end(), [&](const auto &g) { return g.first == n; });
            if (it == groups.end()) groups.emplace_back(n, 1);
            else ++it->second;
        }
        for (const auto &[n, count] : groups) {
            const double gb = static_cast<double>(n) * e.final_gb;
            egress_detail += fmt::format("{}{}{} x {} GB to the internet = {} GB: {}", egress_detail.empty() ? "" : "; ",
                                         count > 1 || groups.size() > 1 ? fmt::format("{} with ", cost_plural(count, "month", "months"))
                                                                        : std::string(),
                                         cost_plural(n, "restore", "restores"), cost_num(e.final_gb), cost_num(gb),
                                         cost_tier_breakdown(gb, table->egress_tiers));
        }
    }
    e.items.push_back({"egress", egress_usd, egress_detail});

    // ---- early deletion: the rest of the minimum duration, once, pro rata ---------------------
    double early_usd = 0;
    std::string early_detail;
    if (sc->min_storage_days <= 0) {
        early_detail = fmt::format("none: {} has no minimum storage duration", sc->name);
    } else if (!input.delete_at_end) {
        early_detail = "none: the data stays after the period (delete_at_end is false)";
    } else {
        const double minimum = sc->min_storage_days;
        const double base_days = std::max(0.0, minimum - days);
        const double window = std::min(days, minimum);  // growth written this close to the end is deleted early
        const double growth_gb_days = growth_per_day * window * (2 * minimum - window) / 2;
        const double gb_months = (base_gb * base_days + growth_gb_days) / days_per_month;
        early_usd = gb_months * sc->storage_gb_month;
        if (gb_months == 0) {
            early_detail = fmt::format("none: kept {} days, at least the {}-day minimum", cost_num(days), cost_num(minimum));
        } else {
            if (base_days > 0)
                early_detail = fmt::format("{} GB x ({} - {}) = {} days of the {}-day minimum / 30 x {}, charged once", cost_num(base_gb),
                                           cost_num(minimum), cost_num(days), cost_num(base_days), cost_num(minimum),
                                           cost_price(sc->storage_gb_month));
            if (growth_gb_days > 0)
                early_detail += fmt::format("{}growth written in the last {} days: {} GB-months of its {}-day minimum x {}, charged once",
                                            early_detail.empty() ? "" : " + ", cost_num(window), cost_num(growth_gb_days / days_per_month),
                                            cost_num(minimum), cost_price(sc->storage_gb_month));
        }
    }
    e.items.push_back({"early_deletion", early_usd, early_detail});

    for (const auto &item : e.items) e.total_usd += item.amount_usd;

    // ---- the model's choices, in words ---------------------------------------------------------
    e.assumptions.push_back(fmt::format("a month is 30 days and a GB is {} bytes{}", cost_count(table->bytes_per_gb),
                                        table->bytes_per_gb == 1073741824 ? " (2^30), as the provider bills" : ""));
    e.assumptions.push_back(e.objects_defaulted
                                ? fmt::format("the data is stored as {} objects of 64 MiB (ceil(stored bytes / 64 MiB)), one write each", cost_count(e.objects))
                                : fmt::format("the data is stored as {} objects, one write each", cost_count(e.objects)));
    if (input.monthly_growth_bytes > 0)
        e.assumptions.push_back(fmt::format("{} GB/month of growth arrives evenly, in 64 MiB objects ({} over the period)", cost_num(growth_gb),
                                            cost_plural(growth_objects, "object", "objects")));
    if (restores > 0) {
        e.assumptions.push_back(fmt::format("a restore reads back everything stored at the end of the period ({} GB, one read per object) "
                                            "and sends it to the internet",
                                            cost_num(e.final_gb)));
        if (restores > 1 && egress_months > 1)
            e.assumptions.push_back(fmt::format("{} are spread evenly over {} billing months; the egress tiers apply to each month's total",
                                                cost_plural(restores, "restore", "restores"), cost_count(egress_months)));
    }
    if (!sc->age_tiers.empty())
        e.assumptions.push_back(fmt::format("{} moves data that is not read to cheaper tiers by age; restores are not counted as moving it back",
                                            sc->name));
    if (sc->min_storage_days > 0)
        e.assumptions.push_back(input.delete_at_end ? fmt::format("everything is deleted after {} days", cost_num(days))
                                                    : std::string("the data is kept after the period (no early deletion)"));
    e.assumptions.push_back(fmt::format("prices: {} ({}), as of {}", table->origin, table->source, table->as_of));
    return e;
}

Result<std::vector<CostEstimate>> compare(const PricingCatalog &catalog, const CostInput &input) {
    if (input.days == 0)
        return fail(cost_invalid("days is 0, but a comparison includes classes with a minimum storage duration; give the days the data will be kept"));
    for (const auto &[provider, region] : input.regions) {
        (void)region;
        if (catalog.regions(provider).empty())
            return fail(cost_invalid(fmt::format("regions: unknown provider \"{}\" (known: {})", provider, cost_join(catalog.providers()))));
    }
    std::vector<CostEstimate> out;
    for (const auto &provider : catalog.providers()) {
        const auto wanted = input.regions.find(provider);
        HSDK_TRY(const PricingTable *table, catalog.find(provider, wanted != input.regions.end() ? wanted->second : std::string()));
        CostInput one = input;
        one.provider = provider;
        one.region = table->region;
        for (const auto &c : table->classes) {
            one.storage_class = c.id;
            HSDK_TRY(auto e, estimate(catalog, one));
            out.push_back(std::move(e));
        }
    }
    const auto rank = [](const CostEstimate &e) {
        const auto &known = known_classes(e.provider);
        return std::find(known.begin(), known.end(), e.storage_class) - known.begin();
    };
    std::stable_sort(out.begin(), out.end(), [&](const CostEstimate &a, const CostEstimate &b) {
        if (a.total_usd != b.total_usd) return a.total_usd < b.total_usd;
        if (a.provider != b.provider) return a.provider < b.provider;
        return rank(a) < rank(b);
    });
    return out;
}

Result<CostInput> cost_input_from_json(const nlohmann::json &request) {
    if (!request.is_object()) return fail(cost_invalid(fmt::format("a cost request must be a JSON object, got {}", request.type_name())));
    static constexpr std::string_view allowed[] = {"provider", "storage_class",        "region",         "regions",      "stored_bytes",
                                                   "size",     "days",                 "restores",       "objects",      "monthly_growth_bytes",
                                                   "monthly_growth", "delete_at_end"};
    for (const auto &[key, value] : request.items()) {
        (void)value;
        if (std::find(std::begin(allowed), std::end(allowed), key) == std::end(allowed)) {
            std::string list;
            for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
            return fail(cost_invalid(fmt::format("unknown key \"{}\" (known: {})", key, list)));
        }
    }
    CostInput in;
    if (auto it = request.find("provider"); it != request.end()) { HSDK_TRY(in.provider, cost_json_string(*it, "provider")); }
    if (auto it = request.find("storage_class"); it != request.end()) { HSDK_TRY(in.storage_class, cost_json_string(*it, "storage_class")); }
    if (auto it = request.find("region"); it != request.end()) { HSDK_TRY(in.region, cost_json_string(*it, "region")); }
    if (auto it = request.find("regions"); it != request.end()) {
        if (!it->is_object()) return fail(cost_invalid(fmt::format("regions must be an object of provider: region, got {}", it->dump())));
        for (const auto &[provider, region] : it->items()) {
            HSDK_TRY(auto r, cost_json_string(region, fmt::format("regions.{}", provider)));
            in.regions[provider] = r;
        }
    }
    if (request.contains("stored_bytes") && request.contains("size")) return fail(cost_invalid("give either stored_bytes or size, not both"));
    if (auto it = request.find("stored_bytes"); it != request.end()) { HSDK_TRY(in.stored_bytes, cost_json_u64(*it, "stored_bytes")); }
    if (auto it = request.find("size"); it != request.end()) { HSDK_TRY(in.stored_bytes, cost_json_size(*it, "size")); }
    if (auto it = request.find("days"); it != request.end()) {
        if (!it->is_number()) return fail(cost_invalid(fmt::format("days must be a number, got {}", it->dump())));
        in.days = it->get<double>();
        if (in.days < 0) return fail(cost_invalid(fmt::format("days must not be negative, got {}", it->dump())));
    }
    if (auto it = request.find("restores"); it != request.end()) {
        HSDK_TRY(auto n, cost_json_u64(*it, "restores"));
        if (n > max_restores) return fail(cost_invalid(fmt::format("restores must be at most {}, got {}", max_restores, n)));
        in.restores = static_cast<unsigned>(n);
    }
    if (auto it = request.find("objects"); it != request.end()) { HSDK_TRY(in.objects, cost_json_u64(*it, "objects")); }
    if (request.contains("monthly_growth_bytes") && request.contains("monthly_growth"))
        return fail(cost_invalid("give either monthly_growth_bytes or monthly_growth, not both"));
    if (auto it = request.find("monthly_growth_bytes"); it != request.end()) {
        HSDK_TRY(in.monthly_growth_bytes, cost_json_u64(*it, "monthly_growth_bytes"));
    }
    if (auto it = request.find("monthly_growth"); it != request.end()) {
        HSDK_TRY(in.monthly_growth_bytes, cost_json_size(*it, "monthly_growth"));
    }
    if (auto it = request.find("delete_at_end"); it != request.end()) {
        if (!it->is_boolean()) return fail(cost_invalid(fmt::format("delete_at_end must be true or false, got {}", it->dump())));
        in.delete_at_end = it->get<bool>();
    }
    return in;
}

nlohmann::json to_json(const CostItem &item) {
    return {{"item", item.item}, {"amount_usd", cost_round(item.amount_usd)}, {"detail", item.detail}};
}

nlohmann::json to_json(const CostEstimate &e) {
    CostJson items = CostJson::array();
    for (const auto &i : e.items) items.push_back(to_json(i));
    return {{"provider", e.provider},
            {"storage_class", e.storage_class},
            {"class_name", e.class_name},
            {"region", e.region},
            {"currency", e.currency},
            {"pricing", {{"as_of", e.pricing_as_of}, {"source", e.pricing_source}, {"origin", e.pricing_origin}}},
            {"input",
             {{"stored_bytes", e.stored_bytes},
              {"monthly_growth_bytes", e.monthly_growth_bytes},
              {"days", e.days},
              {"restores", e.restores},
              {"delete_at_end", e.delete_at_end}}},
            {"bytes_per_gb", e.bytes_per_gb},
            {"stored_gb", e.stored_gb},
            {"final_gb", e.final_gb},
            {"gb_months", e.gb_months},
            {"objects", e.objects},
            {"objects_defaulted", e.objects_defaulted},
            {"write_requests", e.write_requests},
            {"read_requests", e.read_requests},
            {"items", std::move(items)},
            {"total_usd", cost_round(e.total_usd)},
            {"assumptions", e.assumptions}};
}

nlohmann::json to_json(const std::vector<CostEstimate> &comparison) {
    CostJson list = CostJson::array();
    for (const auto &e : comparison) list.push_back(to_json(e));
    return {{"estimates", std::move(list)}};
}

std::string format_estimate(const CostEstimate &e) {
    std::string out = fmt::format("{} {} ({}) in {}: {} GB", e.provider, e.storage_class, e.class_name, e.region, cost_num(e.stored_gb));
    if (e.monthly_growth_bytes > 0) out += fmt::format(" + {} GB/month", cost_num(static_cast<double>(e.monthly_growth_bytes) / static_cast<double>(e.bytes_per_gb)));
    out += fmt::format(" for {} days, {}\n", cost_num(e.days), cost_plural(e.restores, "restore", "restores"));
    for (const auto &i : e.items) out += fmt::format("  {:<15}{:>14}  {}\n", i.item, cost_money(i.amount_usd), i.detail);
    out += fmt::format("  {:<15}{:>14}\n", "total", cost_money(e.total_usd));
    for (const auto &a : e.assumptions) out += fmt::format("  - {}\n", a);
    return out;
}

std::string format_comparison(const std::vector<CostEstimate> &comparison) {
    std::string out = fmt::format("{:>3}  {:<6} {:<20} {:<13}{:>12}{:>12}{:>12}{:>12}{:>15}{:>13}\n", "#", "cloud", "class", "region", "storage",
                                  "requests", "retrieval", "egress", "early_deletion", "total");
    std::size_t n = 0;
    for (const auto &e : comparison) {
        const auto amount = [&](std::string_view item) {
            for (const auto &i : e.items)
                if (i.item == item) return cost_money(i.amount_usd);
            return std::string("-");
        };
        out += fmt::format("{:>3}  {:<6} {:<20} {:<13}{:>12}{:>12}{:>12}{:>12}{:>15}{:>13}\n", ++n, e.provider, e.storage_class, e.region,
                           amount("storage"), amount("requests"), amount("retrieval"), amount("egress"), amount("early_deletion"),
                           cost_money(e.total_usd));
    }
    if (!comparison.empty()) {
        const auto &first = comparison.front();
        const auto growth = first.monthly_growth_bytes > 0
                                ? fmt::format(" + {} GB/month", cost_num(static_cast<double>(first.monthly_growth_bytes) /
                                                                         static_cast<double>(first.bytes_per_gb)))
                                : std::string();
        out += fmt::format("{} GB{} for {} days, {}; each row in its region's list prices (`hsdk cost estimate` shows the arithmetic)\n",
                           cost_num(first.stored_gb), growth, cost_num(first.days), cost_plural(first.restores, "restore", "restores"));
    }
    return out;
}

}  // namespace hypersdk::cost
