// What the service keeps across restarts, in one SQLite database in WAL mode (so `sqlite3 DB
// ".backup ..."` works while the daemon runs): jobs and their log lines, schedules, webhooks and a
// few settings. Every write is committed before the caller answers its request. Secrets never go
// into the documents: they travel sealed (secret_box.hpp) in a column of their own.
#pragma once

#include <hypersdk/error.hpp>

#include <nlohmann/json.hpp>

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

struct sqlite3;

namespace hypersdk::service {

struct StoredRow {
    std::string id;
    nlohmann::json doc;
    std::string sealed;  // sealed secrets ("" = none)
};

struct StoredLog {
    std::string time;
    std::string level;
    std::string message;
};

class Store {
public:
    // path "" = an in-memory database (the in-process client).
    static Result<std::unique_ptr<Store>> open(const std::string &path);
    ~Store();
    Store(const Store &) = delete;
    Store &operator=(const Store &) = delete;

    // table: "jobs", "schedules" or "webhooks".
    Result<void> put(const char *table, const StoredRow &row);
    Result<void> remove(const char *table, const std::string &id);
    Result<std::vector<StoredRow>> load(const char *table);

    Result<void> append_log(const std::string &job_id, const StoredLog &line);
    Result<std::vector<StoredLog>> logs(const std::string &job_id, std::size_t limit);

    Result<std::optional<std::string>> setting(const std::string &key);
    Result<void> set_setting(const std::string &key, const std::string &value);

    [[nodiscard]] const std::string &path() const noexcept { return path_; }

private:
    Store() = default;
    Result<void> exec(const char *sql);
    sqlite3 *db_ = nullptr;
    std::string path_;
    std::mutex mutex_;
};

}  // namespace hypersdk::service
