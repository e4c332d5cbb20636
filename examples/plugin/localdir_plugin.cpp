// localdir: a provider plugin whose VMs are folders. Each folder under the configured root that
// holds a vm.json (libhypersdk's VM model) is a VM; its disks are the files that vm.json names
// (disks[].file, inside the folder; disks[].file_format says their format, raw when absent). A
// root holding a file `.token` requires the config's "token" to match it (auth_failed otherwise).
// "throttle_bytes_per_sec" slows disk reads down, to rehearse a slow link.
//
// It shows the whole plugin ABI of <hypersdk_plugin.h>: a C entry point and table, errors as
// libhypersdk's codes with messages, JSON in and out, and thread-safe disk reads.
#include <hypersdk_plugin.h>

#include <nlohmann/json.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#ifndef LOCALDIR_ABI_VERSION
#define LOCALDIR_ABI_VERSION HSDK_PLUGIN_ABI_VERSION
#endif
#ifndef LOCALDIR_NAME
#define LOCALDIR_NAME "localdir"
#endif

namespace {

// libhypersdk's error codes (HSDK_E_* of <hypersdk.h>).
constexpr int e_invalid_argument = 1, e_not_found = 2, e_io_error = 5, e_auth_failed = 9, e_permission_denied = 10;

int error(char *err, std::size_t len, int code, const std::string &message) {
    if (len > 0) std::snprintf(err, len, "%s", message.c_str());
    return code;
}

char *copy(const std::string &s) {
    char *out = static_cast<char *>(std::malloc(s.size() + 1));
    if (out != nullptr) std::memcpy(out, s.c_str(), s.size() + 1);
    return out;
}

bool read_text(const std::string &path, std::string &out) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return false;
    std::ostringstream s;
    s << in.rdbuf();
    out = s.str();
    return true;
}

struct Session {
    std::string root;
    std::uint64_t throttle = 0;  // bytes per second, 0: unlimited
};

struct Disk {
    int fd = -1;
    std::uint64_t throttle = 0;
};

// The VM folders under the root, sorted.
std::vector<std::string> vm_folders(const std::string &root) {
    std::vector<std::string> out;
    if (DIR *d = ::opendir(root.c_str())) {
        while (const dirent *e = ::readdir(d)) {
            const std::string name = e->d_name;
            if (name.empty() || name[0] == '.') continue;
            struct stat st {};
            if (::stat((root + "/" + name + "/vm.json").c_str(), &st) == 0) out.push_back(name);
        }
        ::closedir(d);
    }
    std::sort(out.begin(), out.end());
    return out;
}

// vm.json of a folder, with provider, id and inventory path filled in.
int load_vm(const Session &s, const std::string &folder, nlohmann::json &vm, char *err, std::size_t len) {
    std::string text;
    if (!read_text(s.root + "/" + folder + "/vm.json", text)) return error(err, len, e_io_error, "cannot read " + folder + "/vm.json");
    vm = nlohmann::json::parse(text, nullptr, false);
    if (!vm.is_object()) return error(err, len, e_invalid_argument, folder + "/vm.json is not a JSON object");
    vm["provider"] = LOCALDIR_NAME;
    vm["id"] = folder;
    if (!vm.contains("name")) vm["name"] = folder;
    vm["inventory_path"] = "/" + folder;
    return 0;
}

// The folder of a VM given by folder name, "/folder" or its name.
int find_vm(const Session &s, const std::string &which, std::string &folder, nlohmann::json &vm, char *err, std::size_t len) {
    const std::string key = !which.empty() && which[0] == '/' ? which.substr(1) : which;
    for (const auto &f : vm_folders(s.root)) {
        nlohmann::json candidate;
        if (load_vm(s, f, candidate, err, len) != 0) continue;
        if (f == key || candidate.value("name", "") == which) {
            folder = f;
            vm = std::move(candidate);
            return 0;
        }
    }
    return error(err, len, e_not_found, "no VM '" + which + "' under the root");
}

int do_connect(const char *config_json, void **session, char *err, std::size_t len) {
    const auto config = nlohmann::json::parse(config_json != nullptr ? config_json : "{}", nullptr, false);
    if (!config.is_object() || !config.contains("root") || !config["root"].is_string())
        return error(err, len, e_invalid_argument, "config needs \"root\": the folder holding the VM folders");
    auto s = new Session{config["root"].get<std::string>(), config.value("throttle_bytes_per_sec", std::uint64_t{0})};
    struct stat st {};
    if (::stat(s->root.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
        delete s;
        return error(err, len, e_not_found, "root is not a folder");
    }
    std::string token;
    if (read_text(s->root + "/.token", token)) {
        while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.pop_back();
        if (config.value("token", "") != token) {
            delete s;
            return error(err, len, e_auth_failed, "the token does not match");  // never the token itself
        }
    }
    *session = s;
    return 0;
}

void do_disconnect(void *session) { delete static_cast<Session *>(session); }

int do_list(void *session, const char *filter_json, char **out, char *err, std::size_t len) {
    const auto &s = *static_cast<Session *>(session);
    const auto filter = nlohmann::json::parse(filter_json != nullptr ? filter_json : "{}", nullptr, false);
    const std::string contains = filter.is_object() ? filter.value("name_contains", "") : "";
    nlohmann::json vms = nlohmann::json::array();
    for (const auto &f : vm_folders(s.root)) {
        nlohmann::json vm;
        if (int rc = load_vm(s, f, vm, err, len); rc != 0) return rc;
        if (!contains.empty() && vm.value("name", "").find(contains) == std::string::npos &&
            vm.value("inventory_path", "").find(contains) == std::string::npos)
            continue;
        vms.push_back(std::move(vm));
    }
    *out = copy(vms.dump());
    return 0;
}

int do_describe(void *session, const char *which, char **out, char *err, std::size_t len) {
    std::string folder;
    nlohmann::json vm;
    if (int rc = find_vm(*static_cast<Session *>(session), which != nullptr ? which : "", folder, vm, err, len); rc != 0) return rc;
    *out = copy(vm.dump());
    return 0;
}

int do_open_disk(void *session, const char *which, std::uint32_t index, void **disk, std::uint64_t *size, char *err, std::size_t len) {
    const auto &s = *static_cast<Session *>(session);
    std::string folder;
    nlohmann::json vm;
    if (int rc = find_vm(s, which != nullptr ? which : "", folder, vm, err, len); rc != 0) return rc;
    const auto disks = vm.value("disks", nlohmann::json::array());
    if (index >= disks.size()) return error(err, len, e_not_found, "the VM has no disk " + std::to_string(index));
    const std::string file = disks[index].value("file", "");
    if (file.empty() || file[0] == '/' || file.find("..") != std::string::npos)
        return error(err, len, e_permission_denied, "disk files must be plain names inside the VM's folder");
    const std::string path = s.root + "/" + folder + "/" + file;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return error(err, len, errno == ENOENT ? e_not_found : e_io_error, "cannot open disk file " + file);
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        ::close(fd);
        return error(err, len, e_io_error, "cannot stat disk file " + file);
    }
    *disk = new Disk{fd, s.throttle};
    *size = static_cast<std::uint64_t>(st.st_size);
    return 0;
}

// pread is safe from several threads at once.
int do_read(void *disk, std::uint64_t offset, void *buf, std::size_t length, char *err, std::size_t len) {
    const int fd = static_cast<Disk *>(disk)->fd;
    if (const std::uint64_t t = static_cast<Disk *>(disk)->throttle; t > 0) ::usleep(static_cast<useconds_t>(length * 1000000ULL / t));
    std::size_t done = 0;
    while (done < length) {
        const ssize_t n = ::pread(fd, static_cast<char *>(buf) + done, length - done, static_cast<off_t>(offset + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return error(err, len, e_io_error, "short read at offset " + std::to_string(offset + done));
        done += static_cast<std::size_t>(n);
    }
    return 0;
}

void do_close_disk(void *disk) {
    ::close(static_cast<Disk *>(disk)->fd);
    delete static_cast<Disk *>(disk);
}

void do_free(char *s) { std::free(s); }

const char config_schema[] = R"schema({
  "type": "object",
  "properties": {
    "root": {"type": "string", "description": "the folder holding one folder per VM (each with a vm.json)"},
    "token": {"type": "string", "writeOnly": true, "description": "must match the root's .token file, when it has one"},
    "throttle_bytes_per_sec": {"type": "integer", "minimum": 0, "description": "slow disk reads down to this rate (0: no limit)"}
  },
  "required": ["root"],
  "additionalProperties": false
})schema";

const hsdk_plugin table = {
    sizeof(hsdk_plugin),
    LOCALDIR_ABI_VERSION,
    LOCALDIR_NAME,
    "VMs kept as folders of a local directory (vm.json and disk files); the example plugin",
    HSDK_CAP_LIST | HSDK_CAP_DESCRIBE | HSDK_CAP_BLOCK_READS,
    config_schema,
    do_connect,
    do_disconnect,
    do_list,
    do_describe,
    do_open_disk,
    do_read,
    do_close_disk,
    do_free,
};

}  // namespace

extern "C" __attribute__((visibility("default"))) const hsdk_plugin *hsdk_plugin_init(std::uint32_t host_abi_version) {
    // A host older than the ABI this table follows could not read it.
    if (host_abi_version < 1) return nullptr;
    return &table;
}
