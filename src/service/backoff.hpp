// Retry delays for failed scheduled jobs: exponential growth, a ceiling, and jitter so that jobs
// which failed together do not retry together.
#pragma once

#include <chrono>
#include <cstdint>

namespace hypersdk::service {

// base * 2^(attempt-1), capped at `cap`, then drawn uniformly from [delay * (1 - jitter), delay].
// attempt is 1-based (0 counts as 1); jitter is clamped to [0, 1]; the draw depends only on
// (seed, attempt), so a job can reproduce its own schedule. Never overflows, whatever the
// attempt; a negative base or cap gives 0.
std::chrono::milliseconds retry_delay(unsigned attempt, std::chrono::milliseconds base, std::chrono::milliseconds cap,
                                      double jitter, std::uint64_t seed);

}  // namespace hypersdk::service
