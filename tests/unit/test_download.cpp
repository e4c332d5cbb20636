// The generic stream download (export/download.cpp) over an in-memory DiskStream with faults:
// a transfer cut short continues at the byte reached, a source that cannot skip starts again
// from zero, resume state is trusted only for the same identity, and non-transient errors stop.
#include "export/download.hpp"
#include "scratch.hpp"

#include <hypersdk/hash.hpp>

#include <doctest/doctest.h>

#include <cstring>
#include <fstream>
#include <sstream>

using namespace hypersdk;
using hypersdk::test::pattern;

namespace {

std::string sha256_hex(std::span<const std::byte> data) {
    Digest d(DigestAlgorithm::sha256);
    d.update(data);
    return to_hex(d.finish());
}

// Serves `data` in 4 KiB pieces. cut_after: bytes served before the next call fails with a
// network error (once per entry of the list); ignore_offset: always starts at 0, as a server
// ignoring Range; fail_with: every call fails with that error.
class MemoryStream final : public DiskStream {
public:
    explicit MemoryStream(std::vector<std::byte> data) : data_(std::move(data)) {}
    std::vector<std::uint64_t> cut_after;
    bool ignore_offset = false;
    std::optional<Error> fail_with;
    std::vector<std::uint64_t> asked;  // offsets of every call

    Result<void> read_from(std::uint64_t offset, const StartHandler &on_start, const Sink &sink) override {
        asked.push_back(offset);
        if (fail_with) return fail(*fail_with);
        Start st;
        st.offset = ignore_offset ? 0 : offset;
        st.total = data_.size();
        HSDK_TRYV(on_start(st));
        std::uint64_t served = 0;
        for (std::uint64_t pos = st.offset; pos < data_.size();) {
            if (!cut_after.empty() && served >= cut_after.front()) {
                cut_after.erase(cut_after.begin());
                return fail(Errc::network_error, "connection reset by the test");
            }
            const auto n = std::min<std::uint64_t>(4096, data_.size() - pos);
            HSDK_TRYV(sink(std::span<const std::byte>(data_).subspan(pos, n)));
            pos += n;
            served += n;
        }
        return success();
    }

private:
    std::vector<std::byte> data_;
};

exporter::DownloadRequest request(MemoryStream &s, const std::string &name) {
    exporter::DownloadRequest rq;
    rq.stream = &s;
    rq.label = "test stream";
    rq.final_path = test::work(name);
    rq.identity = {{"disk", name}};
    rq.retry.max_attempts = 3;
    rq.retry.initial_delay = std::chrono::milliseconds(1);
    rq.retry.max_delay = std::chrono::milliseconds(2);
    return rq;
}

std::vector<std::byte> read_all(const std::string &path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    const std::string s = ss.str();
    std::vector<std::byte> out(s.size());
    std::memcpy(out.data(), s.data(), s.size());
    return out;
}

}  // namespace

TEST_CASE("download: a cut transfer continues at the byte reached, and the bytes are whole") {
    const auto data = pattern(300 * 1024, 1);
    MemoryStream s(data);
    s.cut_after = {100 * 1024, 48 * 1024};
    auto rq = request(s, "dl-cut");
    exporter::discard_partial(rq.final_path);
    auto r = exporter::download_resumable(rq);
    REQUIRE(r);
    CHECK(r.value().size == data.size());
    CHECK(r.value().received == data.size());
    CHECK_FALSE(r.value().restarted);
    CHECK(r.value().sha256 == sha256_hex(data));
    CHECK(s.asked == std::vector<std::uint64_t>{0, 100 * 1024, 148 * 1024});
    CHECK(read_all(r.value().partial_path) == data);
    exporter::discard_partial(rq.final_path);
}

TEST_CASE("download: a source that cannot skip starts again from zero, never appends") {
    const auto data = pattern(64 * 1024, 2);
    MemoryStream s(data);
    s.cut_after = {20 * 1024};
    s.ignore_offset = true;
    auto rq = request(s, "dl-noskip");
    exporter::discard_partial(rq.final_path);
    bool saw_restart = false;
    rq.on_bytes = [&](std::uint64_t, bool restarted) { saw_restart = saw_restart || restarted; };
    auto r = exporter::download_resumable(rq);
    REQUIRE(r);
    CHECK(r.value().restarted);
    CHECK(saw_restart);
    CHECK(r.value().size == data.size());
    CHECK(read_all(r.value().partial_path) == data);
    exporter::discard_partial(rq.final_path);
}

TEST_CASE("download: streamed into a consumer, a restart restarts the consumer") {
    const auto data = pattern(40 * 1024, 3);
    MemoryStream s(data);
    s.cut_after = {12 * 1024};
    s.ignore_offset = true;
    auto rq = request(s, "dl-consume");
    std::vector<std::byte> got;
    int restarts = 0;
    rq.consume = [&](std::span<const std::byte> d) {
        got.insert(got.end(), d.begin(), d.end());
        return success();
    };
    rq.restart_consumer = [&] {
        got.clear();
        ++restarts;
        return success();
    };
    auto r = exporter::download_resumable(rq);
    REQUIRE(r);
    CHECK(r.value().partial_path.empty());
    CHECK(restarts == 1);
    CHECK(got == data);
}

TEST_CASE("download: resume trusts a state file only for the same identity") {
    const auto data = pattern(3u << 20, 4);
    // A first run cut after 1 MiB with no retries left: what arrived is synced and vouched for.
    MemoryStream broken(data);
    broken.cut_after = {1u << 20};
    auto rq_broken = request(broken, "dl-resume");
    const auto &rq = rq_broken;
    exporter::discard_partial(rq.final_path);
    rq_broken.resume = true;
    rq_broken.retry.max_attempts = 1;
    auto failed = exporter::download_resumable(rq_broken);
    REQUIRE_FALSE(failed);
    CHECK(failed.error().code == Errc::network_error);
    CHECK(test::exists(exporter::state_path_for(rq.final_path)));

    // Same identity: continues at the byte the state vouches for.
    MemoryStream again(data);
    auto rq_again = request(again, "dl-resume");
    rq_again.resume = true;
    auto resumed = exporter::download_resumable(rq_again);
    REQUIRE(resumed);
    CHECK(resumed.value().resumed == (1u << 20));
    CHECK(resumed.value().received == data.size() - (1u << 20));
    CHECK(again.asked == std::vector<std::uint64_t>{1u << 20});
    CHECK(resumed.value().sha256 == sha256_hex(data));
    CHECK(read_all(resumed.value().partial_path) == data);

    // Another identity (another disk, another point in time): starts from zero.
    MemoryStream other(data);
    auto rq_other = request(other, "dl-resume");
    rq_other.resume = true;
    rq_other.identity = {{"disk", "dl-resume"}, {"run", "another"}};
    auto fresh = exporter::download_resumable(rq_other);
    REQUIRE(fresh);
    CHECK(fresh.value().resumed == 0);
    CHECK(other.asked == std::vector<std::uint64_t>{0});
    exporter::discard_partial(rq.final_path);
}

TEST_CASE("download: errors that are not transient stop at once, transient ones after the attempts") {
    MemoryStream denied(pattern(1024, 5));
    denied.fail_with = Error{Errc::auth_failed, "HTTP 401 from the test"};
    auto rq = request(denied, "dl-denied");
    auto r = exporter::download_resumable(rq);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::auth_failed);
    CHECK(denied.asked.size() == 1);
    exporter::discard_partial(rq.final_path);

    MemoryStream down(pattern(1024, 6));
    down.fail_with = Error{Errc::network_error, "connection refused by the test"};
    auto rq2 = request(down, "dl-down");
    auto r2 = exporter::download_resumable(rq2);
    REQUIRE_FALSE(r2);
    CHECK(r2.error().code == Errc::network_error);
    CHECK(down.asked.size() == 3);  // max_attempts
    exporter::discard_partial(rq2.final_path);
}
