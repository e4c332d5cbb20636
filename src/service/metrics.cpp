#include "service/metrics.hpp"

#include <hypersdk/version.hpp>

#include <fmt/format.h>

#include <unistd.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace hypersdk::service {
namespace {

// Seconds: exports take from seconds to hours.
constexpr std::array<double, 11> metrics_duration_bounds{1, 5, 15, 30, 60, 300, 900, 1800, 3600, 7200, 14400};

std::string metrics_label(const std::string &value) {
    std::string out;
    for (char c : value) {
        if (c == '\\' || c == '"') out += '\\';
        if (c == '\n') {
            out += "\\n";
            continue;
        }
        out += c;
    }
    return out;
}

// From /proc/self: what a Go daemon's process collector exports, so existing dashboards work.
void metrics_process(std::string &out) {
    const long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    std::ifstream stat("/proc/self/stat");
    std::string line;
    if (std::getline(stat, line)) {
        const auto close = line.rfind(')');
        std::istringstream rest(line.substr(close + 2));
        std::vector<std::string> f;
        std::string tok;
        while (rest >> tok) f.push_back(tok);
        // Fields after ")" start at field 3 (state): utime is 14, stime 15, starttime 22, vsize 23, rss 24.
        if (f.size() > 21 && ticks > 0) {
            const double cpu = (std::stod(f[11]) + std::stod(f[12])) / static_cast<double>(ticks);
            out += fmt::format("# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
                               "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {}\n", cpu);
            out += fmt::format("# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
                               "# TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes {}\n", f[20]);
            out += fmt::format("# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
                               "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {}\n",
                               std::stoull(f[21]) * static_cast<unsigned long long>(page));
            std::ifstream up("/proc/stat");
            std::string key;
            unsigned long long btime = 0;
            while (up >> key) {
                if (key == "btime") {
                    up >> btime;
                    break;
                }
            }
            if (btime)
                out += fmt::format("# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n"
                                   "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds {}\n",
                                   static_cast<double>(btime) + std::stod(f[19]) / static_cast<double>(ticks));
        }
    }
    std::error_code ec;
    std::size_t fds = 0;
    for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec); !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) ++fds;
    out += fmt::format("# HELP process_open_fds Number of open file descriptors.\n# TYPE process_open_fds gauge\nprocess_open_fds {}\n", fds);
}

}  // namespace

void Metrics::count_request(const std::string &method, const std::string &route, int status) {
    std::lock_guard lock(mutex_);
    ++requests_[{method, route, status}];
}

void Metrics::job_finished(bool succeeded, double seconds, std::uint64_t bytes) {
    std::lock_guard lock(mutex_);
    ++(succeeded ? completed_ : failed_);
    bytes_ += bytes;
    std::size_t i = 0;
    while (i < metrics_duration_bounds.size() && seconds > metrics_duration_bounds[i]) ++i;
    ++duration_buckets_[i];
    duration_sum_ += seconds;
    ++duration_count_;
}

void Metrics::add_bytes(std::uint64_t bytes) {
    std::lock_guard lock(mutex_);
    bytes_ += bytes;
}

std::string Metrics::render(const JobGauges &jobs, std::uint64_t webhooks_delivered, std::uint64_t webhooks_failed) const {
    std::string out;
    std::lock_guard lock(mutex_);
    out += "# HELP hypersdk_http_requests_total HTTP requests answered, by method, route template and status.\n"
           "# TYPE hypersdk_http_requests_total counter\n";
    for (const auto &[key, n] : requests_)
        out += fmt::format("hypersdk_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{}\"}} {}\n", metrics_label(std::get<0>(key)),
                           metrics_label(std::get<1>(key)), std::get<2>(key), n);
    out += fmt::format("# HELP hypersdk_active_jobs Jobs running now.\n# TYPE hypersdk_active_jobs gauge\nhypersdk_active_jobs {}\n", jobs.active);
    out += fmt::format("# HELP hypersdk_queued_jobs Jobs waiting to run.\n# TYPE hypersdk_queued_jobs gauge\nhypersdk_queued_jobs {}\n", jobs.queued);
    out += fmt::format("# HELP hypersdk_jobs_completed_total Jobs that succeeded.\n# TYPE hypersdk_jobs_completed_total counter\n"
                       "hypersdk_jobs_completed_total {}\n", completed_);
    out += fmt::format("# HELP hypersdk_jobs_failed_total Jobs that failed.\n# TYPE hypersdk_jobs_failed_total counter\n"
                       "hypersdk_jobs_failed_total {}\n", failed_);
    out += fmt::format("# HELP hypersdk_bytes_exported_total Bytes received from providers by export jobs.\n"
                       "# TYPE hypersdk_bytes_exported_total counter\nhypersdk_bytes_exported_total {}\n", bytes_);
    out += "# HELP hypersdk_job_duration_seconds How long finished jobs ran.\n# TYPE hypersdk_job_duration_seconds histogram\n";
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < metrics_duration_bounds.size(); ++i) {
        cumulative += duration_buckets_[i];
        out += fmt::format("hypersdk_job_duration_seconds_bucket{{le=\"{}\"}} {}\n", metrics_duration_bounds[i], cumulative);
    }
    cumulative += duration_buckets_.back();
    out += fmt::format("hypersdk_job_duration_seconds_bucket{{le=\"+Inf\"}} {}\n", cumulative);
    out += fmt::format("hypersdk_job_duration_seconds_sum {}\nhypersdk_job_duration_seconds_count {}\n", duration_sum_, duration_count_);
    out += fmt::format("# HELP hypersdk_webhook_deliveries_total Webhook deliveries by result.\n# TYPE hypersdk_webhook_deliveries_total counter\n"
                       "hypersdk_webhook_deliveries_total{{result=\"delivered\"}} {}\nhypersdk_webhook_deliveries_total{{result=\"failed\"}} {}\n",
                       webhooks_delivered, webhooks_failed);
    out += fmt::format("# HELP hypersdk_build_info The library's version.\n# TYPE hypersdk_build_info gauge\n"
                       "hypersdk_build_info{{version=\"{}\"}} 1\n", metrics_label(std::string(hypersdk::version())));
    metrics_process(out);
    return out;
}

}  // namespace hypersdk::service
