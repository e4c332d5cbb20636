// The operation model through the shared library's C ABI: the registry, jobs with callbacks, wait
// and cancel, bad requests, versioned structs from newer callers, the executor.
#include <hypersdk.h>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

using json = nlohmann::json;

namespace {

std::string work(const std::string &name) { return std::string(HSDK_TEST_WORK_DIR) + "/" + name; }

std::string raw_file(const std::string &name, std::size_t size) {
    const auto path = work(name);
    FILE *f = std::fopen(path.c_str(), "wb");
    REQUIRE(f);
    std::vector<unsigned char> data(size, 0);
    for (std::size_t i = 0; i < size; i += 4096) data[i] = static_cast<unsigned char>(i / 4096 + 1);
    std::fwrite(data.data(), 1, data.size(), f);
    std::fclose(f);
    return path;
}

json take_json(char *text) {
    REQUIRE(text != nullptr);
    json j = json::parse(text);
    hsdk_string_free(text);
    return j;
}

struct Seen {
    std::mutex m;
    std::vector<std::string> progress_ids, log_lines;
    std::atomic<int> finished{0};
    int finished_state = -1;
    std::string finished_id;
};

int on_progress(const hsdk_progress *p, void *ud) {
    auto *s = static_cast<Seen *>(ud);
    CHECK(p->struct_size == sizeof(hsdk_progress));
    std::lock_guard lock(s->m);
    s->progress_ids.emplace_back(p->job_id);
    return 0;
}

void on_log(hsdk_log_level, const char *job_id, const char *message, void *ud) {
    auto *s = static_cast<Seen *>(ud);
    std::lock_guard lock(s->m);
    s->log_lines.push_back(std::string(job_id) + " " + message);
}

void on_finished(int state, const char *job_id, void *ud) {
    auto *s = static_cast<Seen *>(ud);
    {
        std::lock_guard lock(s->m);
        s->finished_state = state;
        s->finished_id = job_id;
    }
    ++s->finished;
}

int hold(const hsdk_progress *, void *ud) {
    auto *flag = static_cast<std::atomic<int> *>(ud);
    flag->store(1);
    while (flag->load() != 2) {
    }
    return 0;
}

}  // namespace

TEST_CASE("hsdk_ops_json lists every operation with its schemas") {
    char *text = nullptr;
    REQUIRE(hsdk_ops_json(&text) == HSDK_OK);
    const json j = take_json(text);
    CHECK(j["version"] == hsdk_version());
    bool convert = false;
    for (const auto &op : j["operations"]) {
        CHECK(op["request"].is_object());
        if (op["name"] == "image.convert") {
            convert = true;
            CHECK(op["long_running"] == true);
            CHECK(op["request"]["required"] == json::array({"source", "destination", "output_format"}));
        }
    }
    CHECK(convert);
    CHECK(hsdk_ops_json(nullptr) == HSDK_E_INVALID);
}

TEST_CASE("a job through the C ABI: callbacks with its id, wait, result, info") {
    const auto src = raw_file("capi-job.raw", 4 << 20);
    const auto dst = work("capi-job.qcow2");
    std::remove(dst.c_str());
    Seen seen;
    hsdk_job_callbacks cb = HSDK_JOB_CALLBACKS_INIT;
    cb.progress = on_progress;
    cb.log = on_log;
    cb.finished = on_finished;
    cb.user_data = &seen;
    const json request{{"source", src}, {"source_format", "raw"}, {"destination", dst}, {"output_format", "qcow2"}};
    hsdk_job *job = nullptr;
    REQUIRE(hsdk_job_start(&job, "image.convert", request.dump().c_str(), &cb) == HSDK_OK);
    const std::string id = hsdk_job_id(job);
    CHECK(id.size() == 36);
    REQUIRE(hsdk_job_wait(job, -1) == HSDK_OK);
    CHECK(hsdk_job_state(job) == HSDK_JOB_SUCCEEDED);
    CHECK(std::string(hsdk_job_state_name(hsdk_job_state(job))) == "succeeded");
    char *text = nullptr;
    REQUIRE(hsdk_job_result_json(&text, job) == HSDK_OK);
    const json result = take_json(text);
    CHECK(result["virtual_size"] == 4 << 20);
    REQUIRE(hsdk_job_info_json(&text, job) == HSDK_OK);
    const json info = take_json(text);
    CHECK(info["id"] == id);
    CHECK(info["state"] == "succeeded");
    CHECK(info["request"]["output_format"] == "qcow2");
    CHECK(info["request"]["cache"] == "none");  // defaults filled in
    hsdk_job_free(job);  // returns only once the finished callback has run
    CHECK(seen.finished.load() == 1);
    CHECK(seen.finished_state == HSDK_JOB_SUCCEEDED);
    CHECK(seen.finished_id == id);
    REQUIRE_FALSE(seen.progress_ids.empty());
    for (const auto &p : seen.progress_ids) CHECK(p == id);
    CHECK(std::find(seen.log_lines.begin(), seen.log_lines.end(), id + " image.convert started") != seen.log_lines.end());
    CHECK(std::string(hsdk_job_state_name(42)) == "unknown");
    CHECK(hsdk_job_state(nullptr) == HSDK_E_INVALID);
    hsdk_job_free(nullptr);
    std::remove(dst.c_str());
}

TEST_CASE("hsdk_run_json runs an operation in one call, and bad requests fail before any job") {
    const auto src = raw_file("capi-run.raw", 1 << 20);
    char *text = nullptr;
    REQUIRE(hsdk_run_json(&text, "image.info", json{{"path", src}, {"format", "raw"}}.dump().c_str(), nullptr) == HSDK_OK);
    CHECK(take_json(text)["virtual-size"] == 1 << 20);

    hsdk_job *job = nullptr;
    CHECK(hsdk_job_start(&job, "image.nope", "{}", nullptr) == HSDK_E_INVALID);
    CHECK(job == nullptr);
    CHECK(std::string(hsdk_last_error()->message).find("unknown operation 'image.nope'") != std::string::npos);
    CHECK(hsdk_job_start(&job, "image.convert", R"({"source":"a","destination":"b","output_format":"qcow2","options":{"cluster_size":"64k"}})",
                         nullptr) == HSDK_E_INVALID);
    CHECK(std::string(hsdk_last_error()->message).find("/options/cluster_size: expected integer, got string") != std::string::npos);
    CHECK(hsdk_job_start(&job, "image.info", "{not json", nullptr) == HSDK_E_INVALID);
    CHECK(hsdk_run_json(&text, "image.info", "{}", nullptr) == HSDK_E_INVALID);
    CHECK(std::string(hsdk_last_error()->message).find("/path: missing required field") != std::string::npos);
    CHECK(text == nullptr);
    // A failing operation: its own status and message.
    CHECK(hsdk_run_json(&text, "image.info", json{{"path", work("capi-run-missing.raw")}}.dump().c_str(), nullptr) == HSDK_E_NOT_FOUND);
    CHECK(std::string(hsdk_last_error()->message).find("capi-run-missing.raw") != std::string::npos);
}

TEST_CASE("versioned structs: older are fine, newer with unknown fields set are refused") {
    const auto src = raw_file("capi-struct.raw", 1 << 20);
    const auto dst = work("capi-struct.raw.out");
    struct Newer {
        hsdk_convert_options known;
        uint64_t future_field;
    } newer{};
    newer.known = HSDK_CONVERT_OPTIONS_INIT;
    newer.known.struct_size = sizeof newer;
    newer.known.output_format = "raw";
    hsdk_open_options so = HSDK_OPEN_OPTIONS_INIT;
    so.format = "raw";
    newer.future_field = 0;  // unset: the library can ignore it
    CHECK(hsdk_convert(nullptr, src.c_str(), &so, dst.c_str(), &newer.known) == HSDK_OK);
    newer.future_field = 7;  // set: silently dropping it would do something else than asked
    CHECK(hsdk_convert(nullptr, src.c_str(), &so, dst.c_str(), &newer.known) == HSDK_E_INVALID);
    CHECK(std::string(hsdk_last_error()->message).find("hsdk_convert_options") != std::string::npos);
    CHECK(std::string(hsdk_last_error()->message).find("newer libhypersdk") != std::string::npos);
    // An older caller's struct (it ends before `cache`): the rest keeps its defaults.
    hsdk_convert_options older = HSDK_CONVERT_OPTIONS_INIT;
    older.struct_size = offsetof(hsdk_convert_options, cache);
    older.output_format = "raw";
    CHECK(hsdk_convert(nullptr, src.c_str(), &so, dst.c_str(), &older) == HSDK_OK);
    hsdk_job_callbacks cb = HSDK_JOB_CALLBACKS_INIT;
    cb.struct_size = 2;
    hsdk_job *job = nullptr;
    CHECK(hsdk_job_start(&job, "image.formats", "{}", &cb) == HSDK_E_INVALID);
    std::remove(dst.c_str());
}

TEST_CASE("cancel and free of running and queued jobs; wait with a timeout") {
    char *text = nullptr;
    REQUIRE(hsdk_executor_stats_json(&text) == HSDK_OK);
    const json before = take_json(text);
    hsdk_executor_options one = HSDK_EXECUTOR_OPTIONS_INIT;
    one.max_jobs = 1;
    REQUIRE(hsdk_executor_configure(&one) == HSDK_OK);
    const auto src = raw_file("capi-cancel.raw", 32 << 20);
    std::atomic<int> flag{0};
    hsdk_job_callbacks holding = HSDK_JOB_CALLBACKS_INIT;
    holding.progress = hold;
    holding.user_data = &flag;
    hsdk_job *running = nullptr, *queued = nullptr;
    REQUIRE(hsdk_job_start(&running, "image.convert",
                           json{{"source", src}, {"source_format", "raw"}, {"destination", work("capi-cancel-1.qcow2")}, {"output_format", "qcow2"}}
                               .dump()
                               .c_str(),
                           &holding) == HSDK_OK);
    while (flag.load() == 0) {
    }
    REQUIRE(hsdk_job_start(&queued, "image.convert",
                           json{{"source", src}, {"source_format", "raw"}, {"destination", work("capi-cancel-2.qcow2")}, {"output_format", "qcow2"}}
                               .dump()
                               .c_str(),
                           nullptr) == HSDK_OK);
    CHECK(hsdk_job_state(queued) == HSDK_JOB_QUEUED);
    CHECK(hsdk_job_wait(queued, 10) == HSDK_E_TIMEOUT);
    CHECK(hsdk_job_result_json(&text, queued) == HSDK_E_CONFLICT);
    CHECK(hsdk_job_cancel(queued) == HSDK_OK);
    CHECK(hsdk_job_state(queued) == HSDK_JOB_CANCELLED);
    CHECK(hsdk_job_wait(queued, 0) == HSDK_OK);
    CHECK(hsdk_job_result_json(&text, queued) == HSDK_E_CANCELLED);
    hsdk_job_free(queued);
    CHECK(hsdk_job_cancel(running) == HSDK_OK);
    flag.store(2);
    hsdk_job_free(running);  // waits for it: no callback after this
    FILE *f = std::fopen(work("capi-cancel-1.qcow2").c_str(), "rb");
    CHECK(f == nullptr);
    if (f) std::fclose(f);
    hsdk_executor_options restore = HSDK_EXECUTOR_OPTIONS_INIT;
    restore.max_jobs = before["jobs"]["limit"];
    REQUIRE(hsdk_executor_configure(&restore) == HSDK_OK);
    REQUIRE(hsdk_executor_stats_json(&text) == HSDK_OK);
    CHECK(take_json(text)["jobs"]["peak_threads"] <= 1);
    CHECK(hsdk_executor_configure(nullptr) == HSDK_E_INVALID);
}
