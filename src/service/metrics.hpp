// The service's Prometheus metrics (text exposition format 0.0.4). Request counters are labelled
// by route template ("/jobs/{id}"), never by raw path, so the number of series stays bounded.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

namespace hypersdk::service {

struct JobGauges {
    std::uint64_t active = 0;
    std::uint64_t queued = 0;
};

class Metrics {
public:
    void count_request(const std::string &method, const std::string &route, int status);
    void job_finished(bool succeeded, double seconds, std::uint64_t bytes);
    void add_bytes(std::uint64_t bytes);
    // Everything, with the gauges and webhook counters given by their owners.
    std::string render(const JobGauges &jobs, std::uint64_t webhooks_delivered, std::uint64_t webhooks_failed) const;

private:
    mutable std::mutex mutex_;
    std::map<std::tuple<std::string, std::string, int>, std::uint64_t> requests_;
    std::uint64_t completed_ = 0, failed_ = 0, bytes_ = 0;
    std::vector<std::uint64_t> duration_buckets_ = std::vector<std::uint64_t>(12, 0);
    double duration_sum_ = 0;
    std::uint64_t duration_count_ = 0;
};

}  // namespace hypersdk::service
