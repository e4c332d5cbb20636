#include "export/download.hpp"

#include "export/receive_pipeline.hpp"
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

// The state advances after each fsync of this much (what a killed download may fetch again). Each
// one waits for the writes in flight, so not too often.
constexpr std::uint64_t sync_every = 128u << 20;

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

    io::File file;
    const bool consuming = static_cast<bool>(rq.consume);
    const bool keep_file = !consuming || rq.keep_partial;
    std::uint64_t have = 0;
    if (!keep_file) {
        result.partial_path.clear();
    } else {
        std::optional<std::uint64_t> vouched;
        if (rq.resume) vouched = read_state(state_path, rq.identity);
        if (vouched) {
            auto f = io::File::open_read_write(result.partial_path);
            if (f) {
                file = std::move(f).value();
                HSDK_TRY(auto size, file.size());
                if (size < *vouched) vouched = 0;  // the state claims more than is there: trust neither
            } else {
                vouched.reset();
            }
        }
        if (!vouched) {
            ::unlink(result.partial_path.c_str());
            HSDK_TRY(file, io::File::create_new(result.partial_path));
            vouched = 0;
        }
        have = *vouched;
        // Only what the state vouches for (synced before it was written) is kept.
        HSDK_TRYV(file.truncate(have));
    }

    ReceivePipelineOptions po;
    po.file = keep_file ? &file : nullptr;
    po.sha256 = rq.sha256;
    ReceivePipeline pipe(po);  // declared after the file: finishes its writes before the file closes

    if (have > 0) {
        std::vector<std::byte> buf(1u << 20);
        for (std::uint64_t pos = 0; pos < have;) {
            HSDK_TRYV(rq.cancel.check());
            const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), have - pos));
            const auto chunk = std::span<const std::byte>(buf).first(n);
            HSDK_TRYV(file.read_exact(pos, std::span(buf).first(n)));
            pipe.absorb_existing(chunk);
            // A consumer (a streamed conversion) starts from byte 0: it gets the kept bytes first.
            if (consuming) HSDK_TRYV(rq.consume(chunk));
            pos += n;
        }
        log(LogLevel::info, fmt::format("export: resuming {} at byte {}", rq.final_path, have));
    }
    pipe.start_at(have);
    std::uint64_t synced = have;
    result.resumed = have;
    if (keep_file) {
        if (have > 0 && rq.on_resumed) rq.on_resumed(have);
        HSDK_TRYV(write_state(state_path, rq.identity, synced));
    }
    // Makes what the pipeline has written durable and vouches for it in the state.
    auto checkpoint = [&](std::uint64_t through) -> Result<void> {
        HSDK_TRYV(file.sync());
        synced = through;
        return write_state(state_path, rq.identity, synced);
    };

    std::optional<std::uint64_t> total;
    unsigned failures = 0;  // consecutive attempts that moved no byte
    for (;;) {
        HSDK_TRYV(rq.cancel.check());
        const std::uint64_t start = pipe.offset();
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
                HSDK_TRYV(pipe.restart());
                if (keep_file) {
                    HSDK_TRYV(file.truncate(0));
                    synced = 0;
                    HSDK_TRYV(write_state(state_path, rq.identity, 0));
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
            HSDK_TRYV(pipe.append(data));
            if (consuming) HSDK_TRYV(rq.consume(data));
            result.received += data.size();
            if (rq.on_bytes) rq.on_bytes(data.size(), false);
            if (keep_file && pipe.offset() - synced >= sync_every) {
                HSDK_TRY(auto through, pipe.written_through());
                if (through > synced) HSDK_TRYV(checkpoint(through));
            }
            return success();
        };
        auto r = rq.stream->read_from(start, on_start, sink);
        if (r) {
            if (total && pipe.offset() != *total)
                r = fail(Errc::network_error, fmt::format("{}: the transfer ended at byte {} of {}", rq.label, pipe.offset(), *total));
            else
                break;
        }
        // Whatever arrived stays: make it durable and vouch for it in the state.
        if (keep_file) {
            if (auto through = pipe.settle()) (void)checkpoint(through.value());
        }
        if (!io::http::is_transient(r.error())) return fail(r.error());
        failures = pipe.offset() > start ? 1 : failures + 1;
        if (failures >= std::max(1u, rq.retry.max_attempts)) return fail(r.error());
        log(LogLevel::warn, fmt::format("export: {} (retrying from byte {})", r.error().message, pipe.offset()));
        HSDK_TRYV(io::http::backoff_sleep(rq.retry, failures, rq.cancel));
    }
    HSDK_TRY(result.size, pipe.settle());
    if (keep_file) {
        HSDK_TRYV(file.sync());
        HSDK_TRYV(file.close());
    }
    result.sha1 = pipe.sha1_hex();
    result.sha256 = pipe.sha256_hex();
    return result;
}

}  // namespace hypersdk::exporter
