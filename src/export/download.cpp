#include "export/download.hpp"

#include "io/file.hpp"

#include <hypersdk/hash.hpp>
#include <hypersdk/log.hpp>

#include <fmt/format.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <unistd.h>
#include <vector>

namespace hypersdk::exporter {
namespace {

constexpr std::uint64_t sync_every = 32u << 20;  // state advances after each fsync of this much

Result<void> write_state(const std::string &path, const nlohmann::json &identity, std::uint64_t bytes) {
    nlohmann::json j = {{"format", "hypersdk-export-resume"}, {"version", 1}, {"identity", identity}, {"bytes", bytes}};
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::trunc);
        out << j.dump(2) << '\n';
        out.flush();
        if (!out) return fail(io::errno_error(errno, "cannot write resume state", tmp));
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) return fail(io::errno_error(errno, "cannot write resume state", path));
    return success();
}

// Bytes a matching state file vouches for, or nothing.
std::optional<std::uint64_t> read_state(const std::string &path, const nlohmann::json &identity) {
    std::ifstream in(path);
    if (!in) return std::nullopt;
    std::stringstream ss;
    ss << in.rdbuf();
    auto j = nlohmann::json::parse(ss.str(), nullptr, false);
    if (j.is_discarded() || !j.is_object() || j.value("format", "") != "hypersdk-export-resume" || j.value("version", 0) != 1)
        return std::nullopt;
    if (!j.contains("identity") || j["identity"] != identity || !j.contains("bytes") || !j["bytes"].is_number_unsigned())
        return std::nullopt;
    return j["bytes"].get<std::uint64_t>();
}

struct Writer {
    io::File file;
    std::uint64_t offset = 0;
    std::uint64_t synced = 0;
    Digest sha1{DigestAlgorithm::sha1};
    Digest sha256{DigestAlgorithm::sha256};

    Result<void> restart() {
        HSDK_TRYV(file.truncate(0));
        offset = synced = 0;
        sha1.reset();
        sha256.reset();
        return success();
    }
};

}  // namespace

std::string partial_path_for(const std::string &final_path) { return final_path + ".hsdk-partial"; }
std::string state_path_for(const std::string &final_path) { return final_path + ".hsdk-resume"; }

void discard_partial(const std::string &final_path) noexcept {
    ::unlink(partial_path_for(final_path).c_str());
    ::unlink(state_path_for(final_path).c_str());
    ::unlink((state_path_for(final_path) + ".tmp").c_str());
}

Result<DownloadResult> download_resumable(const DownloadRequest &rq) {
    DownloadResult result;
    result.partial_path = partial_path_for(rq.final_path);
    const std::string state_path = state_path_for(rq.final_path);

    Writer w;
    const bool consuming = static_cast<bool>(rq.consume);
    const bool keep_file = !consuming || rq.keep_partial;
    if (!keep_file) {
        result.partial_path.clear();
    } else {
        std::optional<std::uint64_t> have;
        if (rq.resume) have = read_state(state_path, rq.identity);
        if (have) {
            auto f = io::File::open_read_write(result.partial_path);
            if (f) {
                w.file = std::move(f).value();
                HSDK_TRY(auto size, w.file.size());
                if (size < *have) have = 0;  // the state claims more than is there: trust neither
            } else {
                have.reset();
            }
        }
        if (!have) {
            ::unlink(result.partial_path.c_str());
            HSDK_TRY(w.file, io::File::create_new(result.partial_path));
            have = 0;
        }
        // Only what the state vouches for (synced before it was written) is kept.
        HSDK_TRYV(w.file.truncate(*have));
        if (*have > 0) {
            std::vector<std::byte> buf(1u << 20);
            for (std::uint64_t pos = 0; pos < *have;) {
                HSDK_TRYV(rq.cancel.check());
                const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), *have - pos));
                HSDK_TRYV(w.file.read_exact(pos, std::span(buf).first(n)));
                w.sha1.update(std::span<const std::byte>(buf).first(n));
                w.sha256.update(std::span<const std::byte>(buf).first(n));
                // A consumer (a streamed conversion) starts from byte 0: it gets the kept bytes first.
                if (consuming) HSDK_TRYV(rq.consume(std::span<const std::byte>(buf).first(n)));
                pos += n;
            }
            log(LogLevel::info, fmt::format("export: resuming {} at byte {}", rq.final_path, *have));
        }
        w.offset = w.synced = *have;
        result.resumed = *have;
        if (*have > 0 && rq.on_resumed) rq.on_resumed(*have);
        HSDK_TRYV(write_state(state_path, rq.identity, w.synced));
    }

    std::optional<std::uint64_t> total;
    unsigned failures = 0;  // consecutive attempts that moved no byte
    for (;;) {
        HSDK_TRYV(rq.cancel.check());
        const std::uint64_t start = w.offset;
        // Everything arrived before the connection broke: nothing left to ask for.
        if (total && start == *total && start > 0) break;
        auto on_start = [&](const DiskStream::Start &st) -> Result<void> {
            if (st.offset != start) {
                if (st.offset != 0)
                    return fail(Errc::remote_error, fmt::format("{}: asked for the bytes from {} on, the source sent them from {}",
                                                                rq.label, start, st.offset));
                // The source cannot skip: the bytes start at 0 again.
                log(LogLevel::warn, fmt::format("export: the source of {} cannot continue at byte {} (Range ignored); starting it "
                                                "again from zero",
                                                rq.final_path, start));
                if (consuming && rq.restart_consumer) HSDK_TRYV(rq.restart_consumer());
                if (keep_file) {
                    HSDK_TRYV(w.restart());
                    HSDK_TRYV(write_state(state_path, rq.identity, 0));
                } else {
                    w.offset = w.synced = 0;
                    w.sha1.reset();
                    w.sha256.reset();
                }
                result.restarted = true;
                result.resumed = 0;
                if (rq.on_bytes) rq.on_bytes(0, true);
            }
            if (st.total) total = st.total;
            if (total && rq.on_total) rq.on_total(*total);
            return success();
        };
        auto sink = [&](std::span<const std::byte> data) -> Result<void> {
            if (keep_file) HSDK_TRYV(w.file.write_all(w.offset, data));
            if (consuming) HSDK_TRYV(rq.consume(data));
            w.sha1.update(data);
            w.sha256.update(data);
            w.offset += data.size();
            result.received += data.size();
            if (rq.on_bytes) rq.on_bytes(data.size(), false);
            if (keep_file && w.offset - w.synced >= sync_every) {
                HSDK_TRYV(w.file.sync());
                w.synced = w.offset;
                HSDK_TRYV(write_state(state_path, rq.identity, w.synced));
            }
            return success();
        };
        auto r = rq.stream->read_from(start, on_start, sink);
        if (r) {
            if (total && w.offset != *total)
                r = fail(Errc::network_error, fmt::format("{}: the transfer ended at byte {} of {}", rq.label, w.offset, *total));
            else
                break;
        }
        // Whatever arrived stays: make it durable and vouch for it in the state.
        if (keep_file) {
            (void)w.file.sync();
            w.synced = w.offset;
            (void)write_state(state_path, rq.identity, w.synced);
        }
        if (!io::http::is_transient(r.error())) return fail(r.error());
        failures = w.offset > start ? 1 : failures + 1;
        if (failures >= std::max(1u, rq.retry.max_attempts)) return fail(r.error());
        log(LogLevel::warn, fmt::format("export: {} (retrying from byte {})", r.error().message, w.offset));
        HSDK_TRYV(io::http::backoff_sleep(rq.retry, failures, rq.cancel));
    }
    if (keep_file) {
        HSDK_TRYV(w.file.sync());
        HSDK_TRYV(w.file.close());
    }
    result.size = w.offset;
    result.sha1 = to_hex(w.sha1.finish());
    result.sha256 = to_hex(w.sha256.finish());
    return result;
}

}  // namespace hypersdk::exporter
