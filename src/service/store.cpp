#include "service/store.hpp"

#include <sqlite3.h>

#include <string_view>

namespace hypersdk::service {
namespace {

Error store_error(sqlite3 *db, std::string_view what) {
    return Error{Errc::io_error, std::string("database: ") + std::string(what) + ": " + (db ? sqlite3_errmsg(db) : "out of memory")};
}

// Finalizes the statement on every path out of a function.
struct Statement {
    sqlite3_stmt *stmt = nullptr;
    ~Statement() { sqlite3_finalize(stmt); }
};

bool known_table(std::string_view t) { return t == "jobs" || t == "schedules" || t == "webhooks"; }

}  // namespace

Result<std::unique_ptr<Store>> Store::open(const std::string &path) {
    std::unique_ptr<Store> s(new Store());
    s->path_ = path;
    const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX;
    if (sqlite3_open_v2(path.empty() ? ":memory:" : path.c_str(), &s->db_, flags, nullptr) != SQLITE_OK)
        return fail(store_error(s->db_, "cannot open " + path));
    sqlite3_busy_timeout(s->db_, 5000);
    // WAL lets readers (and `.backup`) work while we write; FULL sync makes a committed submit
    // survive a power cut, not only a crash of the daemon.
    if (!path.empty()) HSDK_TRYV(s->exec("PRAGMA journal_mode=WAL"));
    HSDK_TRYV(s->exec("PRAGMA synchronous=FULL"));
    HSDK_TRYV(s->exec(
        "CREATE TABLE IF NOT EXISTS jobs(id TEXT PRIMARY KEY, doc TEXT NOT NULL, sealed TEXT NOT NULL DEFAULT '');"
        "CREATE TABLE IF NOT EXISTS schedules(id TEXT PRIMARY KEY, doc TEXT NOT NULL, sealed TEXT NOT NULL DEFAULT '');"
        "CREATE TABLE IF NOT EXISTS webhooks(id TEXT PRIMARY KEY, doc TEXT NOT NULL, sealed TEXT NOT NULL DEFAULT '');"
        "CREATE TABLE IF NOT EXISTS job_logs(seq INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT NOT NULL, time TEXT, "
        "level TEXT, message TEXT);"
        "CREATE INDEX IF NOT EXISTS job_logs_by_job ON job_logs(job_id, seq);"
        "CREATE TABLE IF NOT EXISTS settings(key TEXT PRIMARY KEY, value TEXT NOT NULL);"));
    return s;
}

Store::~Store() {
    if (db_) sqlite3_close_v2(db_);
}

Result<void> Store::exec(const char *sql) {
    char *message = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &message) != SQLITE_OK) {
        std::string m = message ? message : "unknown error";
        sqlite3_free(message);
        return fail(Errc::io_error, "database: " + m);
    }
    return success();
}

Result<void> Store::put(const char *table, const StoredRow &row) {
    if (!known_table(table)) return fail(Errc::internal, "database: unknown table");
    std::lock_guard lock(mutex_);
    const std::string sql = std::string("INSERT OR REPLACE INTO ") + table + "(id, doc, sealed) VALUES(?, ?, ?)";
    Statement st;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st.stmt, nullptr) != SQLITE_OK) return fail(store_error(db_, "prepare"));
    const std::string doc = row.doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    sqlite3_bind_text(st.stmt, 1, row.id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st.stmt, 2, doc.c_str(), static_cast<int>(doc.size()), SQLITE_TRANSIENT);
    sqlite3_bind_text(st.stmt, 3, row.sealed.c_str(), static_cast<int>(row.sealed.size()), SQLITE_TRANSIENT);
    if (sqlite3_step(st.stmt) != SQLITE_DONE) return fail(store_error(db_, std::string("write to ") + table));
    return success();
}

Result<void> Store::remove(const char *table, const std::string &id) {
    if (!known_table(table)) return fail(Errc::internal, "database: unknown table");
    std::lock_guard lock(mutex_);
    const std::string sql = std::string("DELETE FROM ") + table + " WHERE id = ?";
    Statement st;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st.stmt, nullptr) != SQLITE_OK) return fail(store_error(db_, "prepare"));
    sqlite3_bind_text(st.stmt, 1, id.c_str(), -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st.stmt) != SQLITE_DONE) return fail(store_error(db_, std::string("delete from ") + table));
    return success();
}

Result<std::vector<StoredRow>> Store::load(const char *table) {
    if (!known_table(table)) return fail(Errc::internal, "database: unknown table");
    std::lock_guard lock(mutex_);
    const std::string sql = std::string("SELECT id, doc, sealed FROM ") + table + " ORDER BY rowid";
    Statement st;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st.stmt, nullptr) != SQLITE_OK) return fail(store_error(db_, "prepare"));
    std::vector<StoredRow> rows;
    int rc;
    while ((rc = sqlite3_step(st.stmt)) == SQLITE_ROW) {
        StoredRow r;
        r.id = reinterpret_cast<const char *>(sqlite3_column_text(st.stmt, 0));
        auto doc = nlohmann::json::parse(reinterpret_cast<const char *>(sqlite3_column_text(st.stmt, 1)), nullptr, false);
        if (doc.is_discarded()) return fail(Errc::corrupt_image, std::string("database: unreadable row ") + r.id + " in " + table);
        r.doc = std::move(doc);
        r.sealed = reinterpret_cast<const char *>(sqlite3_column_text(st.stmt, 2));
        rows.push_back(std::move(r));
    }
    if (rc != SQLITE_DONE) return fail(store_error(db_, std::string("read ") + table));
    return rows;
}

Result<void> Store::append_log(const std::string &job_id, const StoredLog &line) {
    std::lock_guard lock(mutex_);
    Statement st;
    if (sqlite3_prepare_v2(db_, "INSERT INTO job_logs(job_id, time, level, message) VALUES(?, ?, ?, ?)", -1, &st.stmt, nullptr) != SQLITE_OK)
        return fail(store_error(db_, "prepare"));
    sqlite3_bind_text(st.stmt, 1, job_id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st.stmt, 2, line.time.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st.stmt, 3, line.level.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st.stmt, 4, line.message.c_str(), static_cast<int>(line.message.size()), SQLITE_TRANSIENT);
    if (sqlite3_step(st.stmt) != SQLITE_DONE) return fail(store_error(db_, "write job log"));
    return success();
}

Result<std::vector<StoredLog>> Store::logs(const std::string &job_id, std::size_t limit) {
    std::lock_guard lock(mutex_);
    Statement st;
    // The newest `limit` lines, oldest first.
    if (sqlite3_prepare_v2(db_,
                           "SELECT time, level, message FROM (SELECT seq, time, level, message FROM job_logs WHERE job_id = ? "
                           "ORDER BY seq DESC LIMIT ?) ORDER BY seq",
                           -1, &st.stmt, nullptr) != SQLITE_OK)
        return fail(store_error(db_, "prepare"));
    sqlite3_bind_text(st.stmt, 1, job_id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st.stmt, 2, static_cast<sqlite3_int64>(limit));
    std::vector<StoredLog> out;
    int rc;
    while ((rc = sqlite3_step(st.stmt)) == SQLITE_ROW) {
        auto text = [&](int i) {
            const auto *p = sqlite3_column_text(st.stmt, i);
            return p ? std::string(reinterpret_cast<const char *>(p)) : std::string();
        };
        out.push_back({text(0), text(1), text(2)});
    }
    if (rc != SQLITE_DONE) return fail(store_error(db_, "read job log"));
    return out;
}

Result<std::optional<std::string>> Store::setting(const std::string &key) {
    std::lock_guard lock(mutex_);
    Statement st;
    if (sqlite3_prepare_v2(db_, "SELECT value FROM settings WHERE key = ?", -1, &st.stmt, nullptr) != SQLITE_OK)
        return fail(store_error(db_, "prepare"));
    sqlite3_bind_text(st.stmt, 1, key.c_str(), -1, SQLITE_TRANSIENT);
    const int rc = sqlite3_step(st.stmt);
    if (rc == SQLITE_ROW) return std::optional<std::string>(reinterpret_cast<const char *>(sqlite3_column_text(st.stmt, 0)));
    if (rc != SQLITE_DONE) return fail(store_error(db_, "read setting"));
    return std::optional<std::string>();
}

Result<void> Store::set_setting(const std::string &key, const std::string &value) {
    std::lock_guard lock(mutex_);
    Statement st;
    if (sqlite3_prepare_v2(db_, "INSERT OR REPLACE INTO settings(key, value) VALUES(?, ?)", -1, &st.stmt, nullptr) != SQLITE_OK)
        return fail(store_error(db_, "prepare"));
    sqlite3_bind_text(st.stmt, 1, key.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st.stmt, 2, value.c_str(), -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st.stmt) != SQLITE_DONE) return fail(store_error(db_, "write setting"));
    return success();
}

}  // namespace hypersdk::service
