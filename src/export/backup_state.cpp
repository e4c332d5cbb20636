#include "export/backup_state.hpp"

#include "io/file.hpp"

#include <fmt/format.h>

#include <ctime>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

namespace hypersdk::backup {
namespace {

using json = nlohmann::json;

template <class T>
Result<T> field(const json &j, const char *key, const std::string &where) {
    if (!j.contains(key)) return fail(Errc::invalid_argument, fmt::format("{}: '{}' is missing", where, key));
    try {
        return j.at(key).get<T>();
    } catch (const std::exception &) {
        return fail(Errc::invalid_argument, fmt::format("{}: '{}' has the wrong type", where, key));
    }
}

Result<BackupDiskResult> disk_from_json(const json &j, const std::string &where) {
    BackupDiskResult d;
    HSDK_TRY(d.disk_id, field<std::string>(j, "disk_id", where));
    HSDK_TRY(d.file, field<std::string>(j, "file", where));
    HSDK_TRY(d.backing_file, field<std::string>(j, "backing_file", where));
    HSDK_TRY(d.change_id, field<std::string>(j, "change_id", where));
    HSDK_TRY(d.full, field<bool>(j, "full", where));
    HSDK_TRY(d.capacity, field<std::uint64_t>(j, "capacity", where));
    HSDK_TRY(d.file_bytes, field<std::uint64_t>(j, "file_bytes", where));
    HSDK_TRY(d.sha256, field<std::string>(j, "sha256", where));
    d.label = j.value("label", "");
    d.notice = j.value("notice", "");
    d.changed_bytes = j.value("changed_bytes", std::uint64_t{0});
    d.bytes_read = j.value("bytes_read", std::uint64_t{0});
    d.bytes_written = j.value("bytes_written", std::uint64_t{0});
    d.whole_disk_transferred = j.value("whole_disk_transferred", false);
    if (auto e = j.find("encryption"); e != j.end() && e->is_object()) {
        EncryptionRecord r;
        r.method = e->value("method", "");
        r.key = e->value("key", "");
        if (auto rc = e->find("recipients"); rc != e->end() && rc->is_array())
            for (const auto &v : *rc)
                if (v.is_string()) r.recipients.push_back(v.get<std::string>());
        d.encryption = std::move(r);
    }
    // A link is named relative to its folder, never a path elsewhere.
    for (const auto *name : {&d.file, &d.backing_file})
        if (name->find('/') != std::string::npos || *name == ".." || (!name->empty() && name->front() == '.'))
            return fail(Errc::invalid_argument, fmt::format("{}: link name '{}' is not a plain file name", where, *name));
    return d;
}

}  // namespace

VmIdentity identity_of(const VirtualMachine &vm) {
    return VmIdentity{vm.provider, vm.id, vm.uuid, vm.instance_uuid, vm.name, vm.inventory_path};
}

Result<void> check_same_vm(const State &state, const VirtualMachine &vm, const std::string &folder) {
    const VmIdentity now = identity_of(vm);
    const auto &was = state.vm;
    auto differs = [](const std::string &a, const std::string &b) { return !a.empty() && !b.empty() && a != b; };
    const bool other = differs(was.instance_uuid, now.instance_uuid) || differs(was.uuid, now.uuid) ||
                       (was.instance_uuid.empty() && was.uuid.empty() && differs(was.id, now.id)) || differs(was.provider, now.provider);
    if (!other) return success();
    return fail(Errc::conflict, fmt::format("'{}' holds backups of another VM ({} {}, UUID {}), not of '{}' (UUID {}): choose another "
                                            "repository, or move that folder away",
                                            folder, was.provider, was.name, was.instance_uuid.empty() ? was.uuid : was.instance_uuid,
                                            vm.name, now.instance_uuid.empty() ? now.uuid : now.instance_uuid));
}

json to_json(const BackupDiskResult &d) {
    json out{{"disk_id", d.disk_id},         {"label", d.label},
                {"file", d.file},               {"backing_file", d.backing_file},
                {"change_id", d.change_id},     {"full", d.full},
                {"notice", d.notice},           {"capacity", d.capacity},
                {"changed_bytes", d.changed_bytes}, {"bytes_read", d.bytes_read},
                {"bytes_written", d.bytes_written}, {"file_bytes", d.file_bytes},
                {"sha256", d.sha256},           {"whole_disk_transferred", d.whole_disk_transferred}};
    if (d.encryption)
        out["encryption"] = json{{"method", d.encryption->method}, {"key", d.encryption->key}, {"recipients", d.encryption->recipients}};
    return out;
}

json to_json(const Point &p) {
    json disks = json::array();
    for (const auto &d : p.disks) disks.push_back(to_json(d));
    return json{{"id", p.id}, {"created", p.created}, {"kind", p.kind}, {"snapshot", p.snapshot}, {"disks", std::move(disks)}};
}

json to_json(const State &s) {
    json points = json::array();
    for (const auto &p : s.points) points.push_back(to_json(p));
    return json{{"format", state_format},
                {"version", state_version},
                {"vm",
                 {{"provider", s.vm.provider},
                  {"id", s.vm.id},
                  {"uuid", s.vm.uuid},
                  {"instance_uuid", s.vm.instance_uuid},
                  {"name", s.vm.name},
                  {"inventory_path", s.vm.inventory_path}}},
                {"description", s.description},
                {"next_point", s.next_point},
                {"points", std::move(points)}};
}

Result<std::optional<State>> load_state(const std::string &folder) {
    const std::string path = folder + "/" + state_file_name;
    std::ifstream in(path);
    if (!in) {
        if (errno == ENOENT) return std::optional<State>();
        return fail(io::errno_error(errno, "cannot read the backup state", path));
    }
    std::stringstream ss;
    ss << in.rdbuf();
    auto j = json::parse(ss.str(), nullptr, false);
    if (j.is_discarded() || !j.is_object())
        return fail(Errc::invalid_argument, fmt::format("'{}' is not a backup state document (not JSON)", path));
    if (j.value("format", "") != state_format)
        return fail(Errc::invalid_argument, fmt::format("'{}' is not a backup state document (format is not '{}')", path, state_format));
    if (j.value("version", 0) != state_version)
        return fail(Errc::unsupported, fmt::format("unsupported: '{}' has state version {}; this build reads version {}", path,
                                                   j.value("version", 0), state_version));
    State s;
    const json vm = j.value("vm", json::object());
    s.vm = VmIdentity{vm.value("provider", ""), vm.value("id", ""), vm.value("uuid", ""), vm.value("instance_uuid", ""),
                      vm.value("name", ""), vm.value("inventory_path", "")};
    s.description = j.value("description", json::object());
    s.next_point = j.value("next_point", 1u);
    if (!j.contains("points") || !j["points"].is_array())
        return fail(Errc::invalid_argument, fmt::format("'{}': 'points' is missing", path));
    for (const auto &pj : j["points"]) {
        Point p;
        const std::string where = fmt::format("{}: point {}", path, pj.value("id", "?"));
        HSDK_TRY(p.id, field<std::string>(pj, "id", where));
        HSDK_TRY(p.created, field<std::string>(pj, "created", where));
        HSDK_TRY(p.kind, field<std::string>(pj, "kind", where));
        p.snapshot = pj.value("snapshot", "");
        if (!pj.contains("disks") || !pj["disks"].is_array()) return fail(Errc::invalid_argument, where + ": 'disks' is missing");
        for (const auto &dj : pj["disks"]) {
            HSDK_TRY(auto d, disk_from_json(dj, where));
            p.disks.push_back(std::move(d));
        }
        s.points.push_back(std::move(p));
    }
    return std::optional<State>(std::move(s));
}

Result<void> save_state(const std::string &folder, const State &state) {
    const std::string path = folder + "/" + state_file_name;
    const std::string tmp = fmt::format("{}/.{}.{}.tmp", folder, state_file_name, ::getpid());
    const std::string text = to_json(state).dump(2) + "\n";
    {
        ::unlink(tmp.c_str());
        HSDK_TRY(auto f, io::File::create_new(tmp, 0644));
        auto written = f.write_all(0, std::as_bytes(std::span(text)));
        if (written) written = f.sync();
        if (written) written = f.close();
        if (!written) {
            ::unlink(tmp.c_str());
            return fail(written.error().with_context("writing the backup state"));
        }
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        return fail(io::errno_error(err, "cannot put the backup state in place", path));
    }
    const int dir = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir >= 0) {
        (void)::fsync(dir);
        ::close(dir);
    }
    return success();
}

Result<const Point *> find_point(const State &state, const std::string &id) {
    if (state.points.empty()) return fail(Errc::not_found, "not found: the repository holds no point of this VM");
    if (id.empty() || id == "latest") return &state.points.back();
    std::string known;
    for (const auto &p : state.points) {
        if (p.id == id) return &p;
        known += (known.empty() ? "" : ", ") + p.id;
    }
    return fail(Errc::not_found, fmt::format("not found: no point '{}' (there are: {})", id, known));
}

Result<std::string> find_vm_folder(const std::string &repo, const std::string &vm) {
    std::error_code ec;
    if (!std::filesystem::is_directory(repo, ec)) return fail(Errc::not_found, fmt::format("not found: no repository at '{}'", repo));
    if (vm.find('/') == std::string::npos && vm != "." && vm != ".." && std::filesystem::exists(repo + "/" + vm + "/" + state_file_name, ec))
        return repo + "/" + vm;
    for (const auto &entry : std::filesystem::directory_iterator(repo, ec)) {
        if (!entry.is_directory(ec)) continue;
        auto st = load_state(entry.path().string());
        if (!st || !st.value()) continue;
        const auto &id = st.value()->vm;
        if (vm == id.name || vm == id.id || vm == id.uuid || vm == id.instance_uuid || vm == id.inventory_path) return entry.path().string();
    }
    return fail(Errc::not_found, fmt::format("not found: the repository '{}' holds no backups of '{}'", repo, vm));
}

std::string utc_now_iso8601() {
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

std::optional<double> parse_iso8601(const std::string &text) {
    std::tm tm{};
    const char *end = strptime(text.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (end == nullptr || *end != '\0') return std::nullopt;
    return static_cast<double>(timegm(&tm));
}

}  // namespace hypersdk::backup
