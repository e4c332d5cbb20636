// hyperctl status: GET /status, laid out as the Go hyperctl's status screen.
#include "api.hpp"
#include "commands.hpp"
#include "console.hpp"

#include <cstdio>

namespace hyperctl {

namespace {

std::string percent(long long part, long long total) {
    const double value = total > 0 ? static_cast<double>(part) / static_cast<double>(total) * 100.0 : 0.0;
    char text[32];
    std::snprintf(text, sizeof text, "%.1f%%", value);
    return text;
}

}  // namespace

int run_status(const std::vector<std::string> &args, GlobalOptions &global) {
    FlagSet flags("status");
    add_connection_flags(flags, global);
    if (!parse_command_flags(flags, args, "hyperctl status")) return exit_ok;

    const DaemonClient client = connect(global);
    const auto status = expect_json(client, client.get("/status"), "GET /status");
    const long long total = json_int(status, "total_jobs");
    const long long running = json_int(status, "running_jobs");
    const long long pending = json_int(status, "pending_jobs");
    const long long completed = json_int(status, "completed_jobs");
    const long long failed = json_int(status, "failed_jobs");

    Console out = Console::for_stream(stdout);
    out.prefixed(Tone::success, "Retrieved daemon status");
    out.line();
    out.prefixed(Tone::info, "🔗 Connected to: " + client.url());
    out.line();

    out.section("📊 Daemon Status");
    out.table({
        {"Property", "Value"},
        {"⚙️  Version", json_string(status, "version")},
        {"⏱️  Uptime", json_string(status, "uptime")},
        {"📍 URL", client.url()},
    });
    out.line();

    out.section("📈 Job Statistics");
    out.table({
        {"Status", "Count", "Percentage"},
        {"📦 Total Jobs", std::to_string(total), "100%"},
        {"🔄 Running", out.paint(std::to_string(running), "96"), percent(running, total)},
        {"✅ Completed", out.paint(std::to_string(completed), "32"), percent(completed, total)},
        {"❌ Failed", out.paint(std::to_string(failed), "31"), percent(failed, total)},
    });
    out.line();

    if (running > 0) {
        out.prefixed(Tone::info, "💡 You have running jobs:");
        out.line("   View them: hyperctl query -status running");
    } else if (pending > 0) {
        // Not in the Go hyperctl (its daemon reported no pending count): jobs waiting to start are
        // not "all completed".
        out.prefixed(Tone::info, "💡 You have pending jobs:");
        out.line("   View them: hyperctl query -status pending");
    } else if (total == 0) {
        out.prefixed(Tone::info, "💡 No jobs yet. Start by:");
        // The Go hyperctl also suggested "hyperctl list", a command this hyperctl does not have.
        out.line("   Submit job: hyperctl submit -vm /data/vm/my-vm -output /tmp/export");
    } else {
        out.prefixed(Tone::success, "✅ All jobs completed!");
    }
    return exit_ok;
}

}  // namespace hyperctl
