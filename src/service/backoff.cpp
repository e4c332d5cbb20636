#include "service/backoff.hpp"

#include <algorithm>
#include <cmath>

namespace hypersdk::service {

namespace backoff_detail {

// SplitMix64 step: a tiny, well-mixed generator; plenty for spreading retries.
std::uint64_t backoff_mix(std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

// Uniform in [0, bound] without modulo bias: reject the short top slice of the 64-bit range.
std::uint64_t backoff_uniform(std::uint64_t bound, std::uint64_t state) {
    if (bound == ~std::uint64_t{0}) return backoff_mix(state);
    const std::uint64_t range = bound + 1;
    const std::uint64_t limit = ~std::uint64_t{0} - (~std::uint64_t{0} % range);
    for (;;) {
        state = backoff_mix(state);
        if (state < limit) return state % range;
    }
}

}  // namespace backoff_detail

std::chrono::milliseconds retry_delay(unsigned attempt, std::chrono::milliseconds base, std::chrono::milliseconds cap,
                                      double jitter, std::uint64_t seed) {
    using namespace backoff_detail;
    using Rep = std::chrono::milliseconds::rep;
    const Rep ceiling = std::max<Rep>(cap.count(), 0);
    Rep delay = std::min<Rep>(std::max<Rep>(base.count(), 0), ceiling);
    // Doubling stops at the cap, so at most ~63 rounds run however large the attempt is.
    for (unsigned i = 1; i < attempt && delay > 0 && delay < ceiling; ++i)
        delay = delay > ceiling / 2 ? ceiling : delay * 2;

    if (!(jitter > 0)) return std::chrono::milliseconds{delay};  // also catches NaN
    jitter = std::min(jitter, 1.0);
    // Near the top of the range delay * jitter can round up past what Rep holds: clamp in double first.
    const double wanted = std::floor(static_cast<double>(delay) * jitter);
    const Rep spread = wanted >= static_cast<double>(delay) ? delay : std::max<Rep>(0, static_cast<Rep>(wanted));
    // Mixing the attempt in keeps one job's successive retries from drawing the same fraction.
    const std::uint64_t state = backoff_mix(seed) ^ (static_cast<std::uint64_t>(attempt) * 0xd1b54a32d192ed03ull);
    const auto offset = static_cast<Rep>(backoff_uniform(static_cast<std::uint64_t>(spread), state));
    return std::chrono::milliseconds{delay - spread + offset};
}

}  // namespace hypersdk::service
