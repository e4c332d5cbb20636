// hyperctl submit: POST /jobs/submit with one job built from -vm/-output, or a job file (-file).
// Prints "  - Job ID: <id>" per accepted job: hyper2kvm takes the text after the last ":" of the
// line containing "job id:" (hyper2kvm/vmware/transports/hyperctl_common.py, submit_export_job).
#include "api.hpp"
#include "commands.hpp"
#include "console.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace hyperctl {

namespace {

// The last element of a slash-separated path, as Go's filepath.Base gives it.
std::string base_name(std::string path) {
    while (path.size() > 1 && path.back() == '/') path.pop_back();
    if (path.empty()) return ".";
    if (path == "/") return path;
    return path.substr(path.find_last_of('/') + 1);
}

bool ends_with(const std::string &text, const std::string &suffix) {
    return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The output directory as an absolute path: the daemon does not run in hyperctl's directory.
std::string absolute_dir(const std::string &dir) {
    std::error_code ec;
    auto path = std::filesystem::absolute(dir, ec);
    if (ec) return dir;
    std::string text = path.lexically_normal().string();
    while (text.size() > 1 && text.back() == '/') text.pop_back();
    return text;
}

std::string read_file(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw CommandError("cannot read job file " + path + ": " + std::strerror(errno));
    std::ostringstream data;
    data << in.rdbuf();
    return data.str();
}

// One entry of the answer's errors[]: a sentence, or an object with one.
std::string error_entry(const nlohmann::json &entry) {
    if (entry.is_string()) return entry.get<std::string>();
    std::string text = json_string(entry, "error", json_string(entry, "message"));
    if (text.empty()) return entry.dump();
    std::string who = json_string(entry, "name", json_string(entry, "vm_path"));
    if (who.empty() && entry.contains("index")) who = "job " + entry["index"].dump();
    return who.empty() ? text : who + ": " + text;
}

// Prints the rejections on stderr, as the Go hyperctl's warning and error lines.
void report_rejections(long long rejected, const nlohmann::json &errors) {
    Console err = Console::for_stream(stderr);
    err.prefixed(Tone::warning, "Rejected Jobs: " + std::to_string(rejected));
    if (errors.is_array()) {
        for (const auto &entry : errors) err.prefixed(Tone::error, "  - " + error_entry(entry));
    }
}

}  // namespace

int run_submit(const std::vector<std::string> &args, GlobalOptions &global) {
    std::string file;
    std::string vm;
    std::string output;
    FlagSet flags("submit");
    flags.add_string("file", file, "Job file (JSON/YAML)", "path");
    flags.add_string("vm", vm, "VM path", "path");
    flags.add_string("output", output, "Output directory (default ./export-<vm name>)", "dir");
    add_connection_flags(flags, global);
    if (!parse_command_flags(flags, args, "hyperctl submit -vm PATH [-output DIR] | -file JOBS.yaml")) return exit_ok;

    std::string body;
    std::string content_type = "application/json";
    if (!file.empty() && !vm.empty()) throw UsageError("give either -file or -vm, not both");
    if (!file.empty()) {
        body = read_file(file);
        if (ends_with(file, ".yaml") || ends_with(file, ".yml")) content_type = "application/x-yaml";
    } else if (!vm.empty()) {
        if (output.empty()) output = "./export-" + base_name(vm);
        const nlohmann::json job = {
            {"name", base_name(vm)},
            {"vm_path", vm},
            {"output_path", absolute_dir(output)},
        };
        body = job.dump();
    } else {
        throw UsageError("either -file or -vm must be specified");
    }

    const DaemonClient client = connect(global);
    const HttpResponse response = client.post("/jobs/submit", content_type, body);

    // A refusal of every job may come as a 4xx carrying the usual answer (accepted 0, errors[]).
    if (response.status >= 400 && response.status < 500) {
        auto refused = nlohmann::json::parse(response.body, nullptr, false);
        if (refused.is_object() && refused.contains("errors") && refused["errors"].is_array() &&
            !refused["errors"].empty()) {
            report_rejections(json_int(refused, "rejected", static_cast<long long>(refused["errors"].size())),
                              refused["errors"]);
            throw CommandError("hypervisord at " + client.url() + " rejected the job (HTTP " +
                               std::to_string(response.status) + ")");
        }
    }
    const auto answer = expect_json(client, response, "POST /jobs/submit");

    std::vector<std::string> ids;
    if (auto it = answer.find("job_ids"); it != answer.end() && it->is_array()) {
        for (const auto &id : *it)
            if (id.is_string()) ids.push_back(id.get<std::string>());
    }
    if (ids.empty()) {
        if (std::string id = json_string(answer, "job_id"); !id.empty()) ids.push_back(id);
    }
    const long long accepted = json_int(answer, "accepted", static_cast<long long>(ids.size()));
    const long long rejected = json_int(answer, "rejected");

    Console out = Console::for_stream(stdout);
    if (accepted > 0) {
        out.prefixed(Tone::success, "Submitted " + std::to_string(accepted) + " job(s)");
        out.prefixed(Tone::success, "Accepted Jobs: " + std::to_string(accepted));
        for (const auto &id : ids) out.prefixed(Tone::info, "  - Job ID: " + id);
    }
    std::fflush(stdout);
    if (rejected > 0) {
        report_rejections(rejected, answer.contains("errors") ? answer["errors"] : nlohmann::json());
        throw CommandError(std::to_string(rejected) + " of " + std::to_string(accepted + rejected) +
                           " job(s) rejected by hypervisord at " + client.url());
    }
    if (accepted == 0 || ids.empty()) throw CommandError("hypervisord at " + client.url() + " accepted no job");
    return exit_ok;
}

}  // namespace hyperctl
