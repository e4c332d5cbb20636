// The operation registry and jobs: schemas, validation messages, defaults, redaction, handlers held
// to their result schemas, cancel of queued and running jobs, callbacks that throw, per-job logs,
// and fifty jobs on an executor whose thread limit is counted.
#include <hypersdk/executor.hpp>
#include <hypersdk/job.hpp>
#include <hypersdk/log.hpp>
#include <hypersdk/ops.hpp>

#include "ops/registry.hpp"
#include "scratch.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <condition_variable>
#include <dirent.h>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

using namespace hypersdk;
using json = nlohmann::json;
using test::work;

namespace {

std::string make_raw(const std::string &name, std::size_t size = 4u << 20) {
    const auto path = work(name);
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    std::string block(64 * 1024, '\0');
    for (std::size_t off = 0; off < size; off += block.size()) {
        // Data in every other 64 KiB, zeros between: something to convert, something to skip.
        if ((off / block.size()) % 2 == 0)
            for (std::size_t i = 0; i < block.size(); ++i) block[i] = static_cast<char>((off + i * 7) & 0xff);
        else
            std::fill(block.begin(), block.end(), '\0');
        f.write(block.data(), static_cast<std::streamsize>(block.size()));
    }
    return path;
}

std::string error_of(std::string_view op, const json &request) {
    auto r = prepare_request(op, request);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::invalid_argument);
    return r.error().message;
}

int thread_count() {
    int n = 0;
    DIR *d = ::opendir("/proc/self/task");
    if (d == nullptr) return -1;
    while (auto *e = ::readdir(d))
        if (e->d_name[0] != '.') ++n;
    ::closedir(d);
    return n;
}

}  // namespace

TEST_CASE("the registry holds every operation of api/, each with a handler and schemas") {
    REQUIRE(ops::registry_status());
    std::set<std::string> names;
    for (const auto &op : operations()) names.insert(op.name);
    for (const char *expected : {"image.info", "image.probe", "image.formats", "image.convert", "image.compare", "image.check",
                                 "image.map", "file.sha256", "vm.load", "ovf.parse", "ovf.write", "ova.list", "ova.verify",
                                 "ova.pack", "kvm.domain", "kvm.manifest", "kvm.import", "vsphere.vms.list", "export.run"})
        CHECK_MESSAGE(names.count(expected) == 1, expected);
    const auto j = operations_json();
    CHECK(j["version"] == std::string(HSDK_VERSION_STRING_FOR_TESTS));
    for (const auto &op : j["operations"]) {
        CHECK(op["request"]["$schema"] == "http://json-schema.org/draft-07/schema#");
        CHECK(op["result"].is_object());
        CHECK_FALSE(op["summary"].get<std::string>().empty());
        // Self-contained: no reference into another file is left.
        CHECK(op.dump().find("common.json#") == std::string::npos);
    }
    CHECK(find_operation("image.convert")->long_running);
    CHECK_FALSE(find_operation("kvm.domain")->long_running);
    CHECK(find_operation("nope") == nullptr);
}

TEST_CASE("bad requests name the field by JSON pointer") {
    CHECK(error_of("image.nope", json::object()).find("unknown operation 'image.nope'") != std::string::npos);
    const json base{{"source", "a"}, {"destination", "b"}, {"output_format", "qcow2"}};
    json r = base;
    r["options"] = {{"cluster_size", "64k"}};
    CHECK(error_of("image.convert", r) == "invalid request of image.convert: /options/cluster_size: expected integer, got string");
    r = base;
    r["options"] = {{"cluster_sise", 65536}};
    CHECK(error_of("image.convert", r).find("/options/cluster_sise: unknown field") != std::string::npos);
    r = base;
    r["threads"] = "4";
    CHECK(error_of("image.convert", r).find("/threads: expected integer, got string") != std::string::npos);
    r = base;
    r.erase("destination");
    CHECK(error_of("image.convert", r).find("/destination: missing required field") != std::string::npos);
    r = base;
    r["sourse"] = "typo";
    CHECK(error_of("image.convert", r).find("/sourse: unknown field") != std::string::npos);
    r = base;
    r["output_format"] = "qed";
    CHECK(error_of("image.convert", r).find("/output_format: expected one of raw, qcow2, vmdk, vhd, vpc, vhdx or vdi, got 'qed'") !=
          std::string::npos);
    CHECK(error_of("image.convert", json::array()).find("request: expected object, got array") != std::string::npos);
    CHECK(error_of("kvm.domain", json::object()).find("request: give exactly one of vm or from") != std::string::npos);
    CHECK(error_of("kvm.domain", json{{"vm", json::object()}, {"from", "x.ovf"}}).find("give exactly one of vm or from") !=
          std::string::npos);
    CHECK(error_of("ova.pack", json{{"destination", "x.ova"}, {"members", json::array({{{"name", "a.ovf"}}})}})
              .find("/members/0/path: missing required field") != std::string::npos);
    CHECK(error_of("export.run", json{{"vm", "/DC0/vm/x"}, {"output_dir", "o"}, {"connection", {{"max_attempts", 0}}}})
              .find("/connection/max_attempts: expected number greater than or equal to 1") != std::string::npos);
}

TEST_CASE("requests get the schema's defaults; secrets are redacted") {
    auto r = prepare_request("image.convert", {{"source", "a"}, {"destination", "b"}, {"output_format", "raw"}});
    REQUIRE(r);
    CHECK(r.value()["cache"] == "none");
    CHECK(r.value()["overwrite"] == true);
    CHECK(r.value()["threads"] == 0);
    CHECK_FALSE(r.value().contains("source_format"));
    auto e = prepare_request("export.run", {{"vm", "/DC0/vm/x"}, {"output_dir", "o"}, {"connection", {{"password", "hunter2"}}}});
    REQUIRE(e);
    CHECK(e.value()["connection"]["max_attempts"] == 5);
    CHECK(e.value()["format"] == "ova");
    const json red = redact_request("export.run", e.value());
    CHECK(red["connection"]["password"] == "********");
    CHECK(red.dump().find("hunter2") == std::string::npos);
    CHECK(red["vm"] == "/DC0/vm/x");
    auto h = prepare_request("image.info", {{"path", "https://example.invalid/d.qcow2"}, {"headers", {"Authorization: Bearer t0ken"}}});
    REQUIRE(h);
    const json red_h = redact_request("image.info", h.value());
    CHECK(red_h["headers"] == "********");
    CHECK(red_h.dump().find("t0ken") == std::string::npos);
    CHECK(error_of("image.info", {{"path", "x"}, {"headers", {"no colon here"}}}).find("/headers/0") != std::string::npos);
    // A provider's config may hold anything secret: stored and returned only as a whole, redacted.
    for (const char *op : {"vms.list", "export.run"}) {
        json req{{"provider", "localdir"}, {"config", {{"root", "/srv"}, {"token", "t0ken"}}}};
        if (std::string(op) == "export.run") req.update({{"vm", "x"}, {"output_dir", "o"}});
        auto p = prepare_request(op, req);
        REQUIRE(p);
        const json red_p = redact_request(op, p.value());
        CHECK(red_p["config"] == "********");
        CHECK(red_p.dump().find("t0ken") == std::string::npos);
    }
}

TEST_CASE("handlers keep to their result schemas") {
    const auto raw = make_raw("ops-schema.raw");
    const auto qcow = work("ops-schema.qcow2");
    const auto ovf = std::string(HSDK_TEST_DATA_DIR) + "/ovf/linux-uefi-secureboot.ovf";
    std::ofstream(work("ops-schema-disk.vmdk")) << "not really a disk";
    const std::vector<std::pair<std::string, json>> calls = {
        {"image.formats", json::object()},
        {"image.convert", {{"source", raw}, {"source_format", "raw"}, {"destination", qcow}, {"output_format", "qcow2"},
                           {"options", {{"cluster_size", 65536}}}}},
        {"image.info", {{"path", qcow}, {"backing_chain", true}}},
        {"image.probe", {{"path", qcow}}},
        {"image.check", {{"path", qcow}}},
        {"image.map", {{"path", qcow}}},
        {"image.compare", {{"a", raw}, {"a_format", "raw"}, {"b", qcow}}},
        {"file.sha256", {{"path", raw}}},
        {"vm.load", {{"path", ovf}}},
        {"ovf.parse", {{"path", ovf}}},
        {"kvm.domain", {{"from", ovf}}},
        {"ova.pack", {{"destination", work("ops-schema.ova")}, {"overwrite", true},
                      {"members", json::array({{{"name", "vm.ovf"}, {"path", ovf}}, {{"name", "disk.vmdk"}, {"path", work("ops-schema-disk.vmdk")}}})}}},
        {"ova.list", {{"path", work("ops-schema.ova")}}},
        {"ova.verify", {{"path", work("ops-schema.ova")}}},
    };
    for (const auto &call : calls) {
        const std::string &op = call.first;
        const json &request = call.second;
        CAPTURE(op);
        auto r = run_operation(op, request);
        REQUIRE_MESSAGE(r, (r ? std::string() : r.error().message));
        auto v = validate_result(op, r.value());
        CHECK_MESSAGE(v, (v ? std::string() : v.error().message));
    }
    auto vm = run_operation("vm.load", {{"path", ovf}});
    REQUIRE(vm);
    for (const auto &call : std::vector<std::pair<std::string, json>>{
             {"ovf.write", {{"vm", vm.value()}, {"disk_files", json::array({{{"href", "disk1.vmdk"}, {"size", 1024}}})}}},
             {"kvm.domain", {{"vm", vm.value()}, {"network_map", {{"VM Network", "default"}}}}}}) {
        const std::string &op = call.first;
        const json &request = call.second;
        CAPTURE(op);
        auto r = run_operation(op, request);
        REQUIRE_MESSAGE(r, (r ? std::string() : r.error().message));
        CHECK(validate_result(op, r.value()));
    }
    auto cmp = run_operation("image.compare", {{"a", raw}, {"a_format", "raw"}, {"b", qcow}});
    CHECK(cmp.value()["identical"] == true);
    CHECK(cmp.value()["first_difference"].is_null());
}

TEST_CASE("a failed job leaves no output and reports its error") {
    auto job = start_job("image.convert", {{"source", work("ops-missing.raw")}, {"source_format", "raw"},
                                           {"destination", work("ops-missing.qcow2")}, {"output_format", "qcow2"}});
    REQUIRE(job);
    job.value()->wait();
    CHECK(job.value()->state() == JobState::failed);
    auto r = job.value()->result();
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::not_found);
    const auto info = job.value()->info();
    CHECK(info["state"] == "failed");
    CHECK(info["error"]["code"] == "not_found");
    CHECK(info.contains("finished"));
    CHECK_FALSE(test::exists(work("ops-missing.qcow2")));
    CHECK(test::leftover_temporaries("ops-missing") == 0);
}

TEST_CASE("a queued job is cancelled at once, without running; a running one stops and cleans up") {
    const auto before = executor_limits();
    configure_executor(ExecutorLimits{1, 0, 0});
    const auto raw = make_raw("ops-cancel.raw", 64u << 20);
    std::mutex m;
    std::condition_variable cv;
    bool first_reported = false, release = false;
    JobCallbacks holding;
    holding.progress = [&](const ProgressInfo &) {
        std::unique_lock lock(m);
        first_reported = true;
        cv.notify_all();
        cv.wait(lock, [&] { return release; });
        return ProgressAction::proceed;
    };
    auto running = start_job("image.convert", {{"source", raw}, {"source_format", "raw"}, {"destination", work("ops-cancel-1.qcow2")},
                                               {"output_format", "qcow2"}},
                             holding);
    REQUIRE(running);
    {
        std::unique_lock lock(m);
        cv.wait(lock, [&] { return first_reported; });
    }
    std::atomic<int> ran{0}, finished_calls{0};
    JobCallbacks queued_cb;
    queued_cb.progress = [&](const ProgressInfo &) {
        ++ran;
        return ProgressAction::proceed;
    };
    queued_cb.finished = [&](const Job &j) {
        CHECK(j.state() == JobState::cancelled);
        ++finished_calls;
    };
    auto queued = start_job("image.convert", {{"source", raw}, {"source_format", "raw"}, {"destination", work("ops-cancel-2.qcow2")},
                                              {"output_format", "qcow2"}},
                            queued_cb);
    REQUIRE(queued);
    CHECK(queued.value()->state() == JobState::queued);
    queued.value()->cancel();
    CHECK(queued.value()->state() == JobState::cancelled);
    CHECK(finished_calls.load() == 1);
    CHECK(queued.value()->result().error().code == Errc::cancelled);

    running.value()->cancel();
    {
        std::lock_guard lock(m);
        release = true;
    }
    cv.notify_all();
    running.value()->wait();
    CHECK(running.value()->state() == JobState::cancelled);
    CHECK(ran.load() == 0);
    CHECK_FALSE(test::exists(work("ops-cancel-1.qcow2")));
    CHECK_FALSE(test::exists(work("ops-cancel-2.qcow2")));
    CHECK(test::leftover_temporaries("ops-cancel") == 0);
    configure_executor(before);
}

TEST_CASE("a progress callback that throws cancels the job and the exception reaches the caller") {
    const auto raw = make_raw("ops-throw.raw", 16u << 20);
    JobCallbacks cb;
    cb.progress = [](const ProgressInfo &) -> ProgressAction { throw std::runtime_error("callback exploded"); };
    CHECK_THROWS_WITH_AS(
        (void)run_operation("image.convert", {{"source", raw}, {"source_format", "raw"}, {"destination", work("ops-throw.qcow2")},
                                              {"output_format", "qcow2"}},
                            cb),
        "callback exploded", std::runtime_error);
    CHECK_FALSE(test::exists(work("ops-throw.qcow2")));
    CHECK(test::leftover_temporaries("ops-throw") == 0);
}

TEST_CASE("fifty jobs at once stay within the executor's threads, and each job's log lines carry its id") {
    configure_executor(ExecutorLimits{3, 2, 2});
    const int baseline = thread_count();
    std::atomic<bool> sampling{true};
    std::atomic<int> peak{0};
    std::thread sampler([&] {
        while (sampling.load()) {
            const int n = thread_count();
            int p = peak.load();
            while (n > p && !peak.compare_exchange_weak(p, n)) {
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    });
    std::mutex m;
    std::map<std::string, std::vector<std::string>> job_lines;  // from each job's own callback
    std::vector<std::string> global;                            // from the process-wide sink
    set_log_sink([&](LogLevel, std::string_view msg) {
        std::lock_guard lock(m);
        global.emplace_back(msg);
    }, LogLevel::info);
    const auto raw = make_raw("ops-fifty.raw", 2u << 20);
    std::vector<std::shared_ptr<Job>> jobs;
    for (int i = 0; i < 50; ++i) {
        JobCallbacks cb;
        cb.log = [&](LogLevel, std::string_view id, std::string_view message) {
            std::lock_guard lock(m);
            job_lines[std::string(id)].emplace_back(message);
        };
        auto j = start_job("image.convert", {{"source", raw}, {"source_format", "raw"}, {"destination", work("ops-fifty-" + std::to_string(i) + ".qcow2")},
                                             {"output_format", i % 2 ? "qcow2" : "vhdx"}},
                           cb);
        REQUIRE(j);
        jobs.push_back(j.value());
    }
    for (auto &j : jobs) j->wait();
    sampling = false;
    sampler.join();
    set_log_sink({});
    // The sampler itself, plus the three pools at their limits and the timer thread at most.
    CHECK(peak.load() <= baseline + 1 + 3 + 2 + 2 + 1);
    const auto stats = executor_stats();
    CHECK(stats.jobs.peak_threads <= 3);
    CHECK(stats.workers.peak_threads <= 2);
    CHECK(stats.io.peak_threads <= 2);
    std::set<std::string> ids;
    for (auto &j : jobs) {
        CHECK(j->state() == JobState::succeeded);
        ids.insert(j->id());
        std::lock_guard lock(m);
        const auto &lines = job_lines[j->id()];
        CHECK(std::find(lines.begin(), lines.end(), "image.convert started") != lines.end());
        CHECK(std::find(lines.begin(), lines.end(), "image.convert succeeded") != lines.end());
        CHECK(std::find(global.begin(), global.end(), "job " + j->id() + ": image.convert started") != global.end());
        bool stored = false;
        for (const auto &l : j->logs()) stored = stored || l.message == "image.convert succeeded";
        CHECK(stored);
    }
    CHECK(ids.size() == 50);
    CHECK(job_lines.size() == 50);
    for (int i = 0; i < 50; ++i) std::remove(work("ops-fifty-" + std::to_string(i) + ".qcow2").c_str());
}

TEST_CASE("job ids are UUIDs and progress events carry them") {
    const auto raw = make_raw("ops-progress.raw", 8u << 20);
    std::mutex m;
    std::vector<ProgressInfo> seen;
    JobCallbacks cb;
    cb.progress = [&](const ProgressInfo &p) {
        std::lock_guard lock(m);
        seen.push_back(p);
        return ProgressAction::proceed;
    };
    auto job = start_job("image.convert", {{"source", raw}, {"source_format", "raw"}, {"destination", work("ops-progress.vdi")},
                                           {"output_format", "vdi"}},
                         cb);
    REQUIRE(job);
    job.value()->wait();
    REQUIRE(job.value()->result());
    const std::string id = job.value()->id();
    REQUIRE(id.size() == 36);
    CHECK(id[14] == '4');
    CHECK(id[8] == '-');
    std::lock_guard lock(m);
    REQUIRE_FALSE(seen.empty());
    for (const auto &p : seen) CHECK(p.job_id == id);
    CHECK(seen.back().bytes_done == seen.back().bytes_total);
    CHECK(job.value()->info()["progress"]["job_id"].is_null());  // the JSON form leaves the id to the job
    std::remove(work("ops-progress.vdi").c_str());
}
