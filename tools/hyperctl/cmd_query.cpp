// hyperctl query: POST /jobs/query, shown as the Go hyperctl's "Jobs" table. hyper2kvm polls
// "query -id ID" and looks for the words completed / failed / cancelled in what it prints
// (hyper2kvm/vmware/transports/hyperctl_common.py, wait_for_job_completion), so the output names
// only the asked-for jobs and no status word other than theirs.
#include "api.hpp"
#include "commands.hpp"
#include "console.hpp"

#include <algorithm>
#include <cstdio>
#include <utility>

namespace hyperctl {

namespace {

std::vector<std::string> split_list(const std::string &text) {
    std::vector<std::string> items;
    std::size_t start = 0;
    while (start <= text.size()) {
        std::size_t comma = text.find(',', start);
        if (comma == std::string::npos) comma = text.size();
        std::string item = text.substr(start, comma - start);
        const auto first = item.find_first_not_of(" \t");
        const auto last = item.find_last_not_of(" \t");
        if (first != std::string::npos) items.push_back(item.substr(first, last - first + 1));
        start = comma + 1;
    }
    return items;
}

std::string join(const std::vector<std::string> &items) {
    std::string text;
    for (const auto &item : items) text += (text.empty() ? "" : ", ") + item;
    return text;
}

const nlohmann::json &definition_of(const nlohmann::json &job) {
    static const nlohmann::json none = nlohmann::json::object();
    auto it = job.find("definition");
    return it != job.end() && it->is_object() ? *it : none;
}

// The job's ID: the definition's, as the Go hyperctl showed it, else the job's own.
std::string job_id(const nlohmann::json &job) {
    std::string id = json_string(definition_of(job), "id");
    return id.empty() ? json_string(job, "id") : id;
}

bool job_has_id(const nlohmann::json &job, const std::string &id) {
    return json_string(job, "id") == id || json_string(definition_of(job), "id") == id;
}

// Cuts at most `limit` bytes from the front (or the back), never inside a UTF-8 sequence.
std::string utf8_prefix(const std::string &text, std::size_t limit) {
    std::size_t end = std::min(limit, text.size());
    while (end > 0 && end < text.size() && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
    return text.substr(0, end);
}
std::string utf8_suffix(const std::string &text, std::size_t limit) {
    std::size_t start = text.size() > limit ? text.size() - limit : 0;
    while (start < text.size() && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) ++start;
    return text.substr(start);
}

// "HH:MM:SS" of an RFC 3339 time, in the offset it was written in (as Go's Format keeps it).
std::string clock_time(const std::string &timestamp) {
    const auto t = timestamp.find('T');
    if (t == std::string::npos || timestamp.size() < t + 9) return timestamp.empty() ? "-" : timestamp;
    return timestamp.substr(t + 1, 8);
}

void print_jobs(Console &out, const std::vector<nlohmann::json> &jobs) {
    std::vector<std::vector<std::string>> rows = {{"Job ID", "Name", "VM Path", "Status", "Progress", "Started"}};
    for (const auto &job : jobs) {
        const auto &definition = definition_of(job);
        std::string id = job_id(job);
        if (id.size() > 8) id = utf8_prefix(id, 8) + "...";
        std::string name = json_string(definition, "name", json_string(job, "name"));
        std::string vm_path = json_string(definition, "vm_path");
        if (vm_path.size() > 30) vm_path = "..." + utf8_suffix(vm_path, 27);

        std::string progress = "-";
        if (auto it = job.find("progress"); it != job.end() && it->is_object()) {
            char pct[32];
            std::snprintf(pct, sizeof pct, "%.1f%%", json_number(*it, "percent_complete"));
            progress = json_string(*it, "phase") + " (" + pct + ")";
        }
        std::string started = json_string(job, "started_at");
        started = started.empty() ? "-" : clock_time(started);

        rows.push_back({id, name, vm_path, out.status_word(json_string(job, "status")), progress, started});
    }
    out.section("Jobs");
    out.table(rows);
}

}  // namespace

int run_query(const std::vector<std::string> &args, GlobalOptions &global) {
    bool all = false;
    std::string ids_text;
    std::string status_text;
    FlagSet flags("query");
    flags.add_bool("all", all, "Query all jobs");
    flags.add_string("id", ids_text, "Query specific job ID (comma-separated for several)", "id");
    flags.add_string("status", status_text, "Filter by status (running,completed,failed)", "list");
    add_connection_flags(flags, global);
    if (!parse_command_flags(flags, args, "hyperctl query -all | -id ID[,ID...] | -status STATUS[,...]")) return exit_ok;

    const std::vector<std::string> ids = split_list(ids_text);
    const std::vector<std::string> statuses = split_list(status_text);
    if (flags.was_set("id") && ids.empty()) throw UsageError("-id needs a job ID");

    nlohmann::json request = {{"all", all}};
    if (!ids.empty()) request["job_ids"] = ids;
    if (!statuses.empty()) request["status"] = statuses;

    const DaemonClient client = connect(global);
    const HttpResponse response = client.post("/jobs/query", "application/json", request.dump());
    if (response.status == 404 && !ids.empty()) {
        // The daemon's own words only when they add something ("job not found: X" does not).
        std::string detail = " (hypervisord at " + client.url() + " answered 404";
        if (std::string text = daemon_error_text(response); !text.empty() && text.find("not found") == std::string::npos)
            detail += ": " + text;
        throw CommandError("job not found: " + join(ids) + detail + ")");
    }
    const auto answer = expect_json(client, response, "POST /jobs/query");

    std::vector<nlohmann::json> jobs;
    if (auto it = answer.find("jobs"); it != answer.end() && it->is_array()) {
        for (const auto &job : *it)
            if (job.is_object()) jobs.push_back(job);
    }
    long long total = json_int(answer, "total", static_cast<long long>(jobs.size()));

    // With -id only the jobs asked for, whatever else comes back; the others are "not found".
    std::vector<std::string> missing;
    if (!ids.empty()) {
        std::vector<nlohmann::json> wanted;
        for (const auto &id : ids) {
            auto it = std::find_if(jobs.begin(), jobs.end(),
                                   [&id](const nlohmann::json &job) { return job_has_id(job, id); });
            if (it == jobs.end()) {
                missing.push_back(id);
            } else if (std::none_of(wanted.begin(), wanted.end(),
                                    [&it](const nlohmann::json &w) { return job_id(w) == job_id(*it); })) {
                wanted.push_back(*it);
            }
        }
        jobs = std::move(wanted);
        total = static_cast<long long>(jobs.size());
        if (jobs.empty()) throw CommandError("job not found: " + join(missing));
    }

    Console out = Console::for_stream(stdout);
    out.prefixed(Tone::success, "Found " + std::to_string(total) + " job(s)");
    if (total == 0) {
        out.prefixed(Tone::info, "No jobs found");
        return exit_ok;
    }
    print_jobs(out, jobs);
    if (!missing.empty()) {
        std::fflush(stdout);
        throw CommandError("job not found: " + join(missing));
    }
    return exit_ok;
}

}  // namespace hyperctl
