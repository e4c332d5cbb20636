// Provider plugins: shared objects with the C entry point of <hypersdk_plugin.h>, wrapped as a
// Provider whose sessions call the plugin's table and whose disks are ByteSources.
#include <hypersdk/log.hpp>
#include <hypersdk_plugin.h>
#include <hypersdk/provider.hpp>

#include <fmt/format.h>

#include <dirent.h>
#include <dlfcn.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace hypersdk {
namespace {

// What a v1 table must hold (members up to free_string).
constexpr std::size_t v1_table_size = offsetof(hsdk_plugin, free_string) + sizeof(void (*)(char *));
constexpr std::uint32_t known_capabilities = (HSDK_CAP_POWER << 1) - 1;

Error plugin_error(int code, const std::array<char, 1024> &message, std::string_view plugin, std::string_view what) {
    Errc errc = Errc::internal;
    if (code > 0 && code <= static_cast<int>(Errc::no_memory)) errc = static_cast<Errc>(code);
    std::string text(message.data(), strnlen(message.data(), message.size()));
    if (text.empty()) text = "failed without a message";
    return Error{errc, fmt::format("provider '{}': {}: {}", plugin, what, text)};
}

// A string the plugin allocated, freed by the plugin.
struct PluginString {
    const hsdk_plugin *table = nullptr;
    char *text = nullptr;
    ~PluginString() {
        if (text != nullptr) table->free_string(text);
    }
};

Result<nlohmann::json> parse_plugin_json(const PluginString &s, std::string_view plugin, std::string_view what) {
    if (s.text == nullptr) return fail(Errc::internal, fmt::format("provider '{}': {} returned nothing", plugin, what));
    auto j = nlohmann::json::parse(s.text, nullptr, false);
    if (j.is_discarded()) return fail(Errc::internal, fmt::format("provider '{}': {} returned invalid JSON", plugin, what));
    return j;
}

class PluginDisk final : public ByteSource {
public:
    PluginDisk(const hsdk_plugin *table, void *disk, std::uint64_t size, std::string name)
        : table_(table), disk_(disk), size_(size), name_(std::move(name)) {}
    ~PluginDisk() override { table_->close_disk(disk_); }
    PluginDisk(const PluginDisk &) = delete;
    PluginDisk &operator=(const PluginDisk &) = delete;

    const std::string &name() const noexcept override { return name_; }
    std::uint64_t size() const noexcept override { return size_; }
    Result<std::size_t> read_some(std::uint64_t offset, std::span<std::byte> buf) const override {
        if (offset >= size_ || buf.empty()) return std::size_t{0};
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), size_ - offset));
        std::array<char, 1024> err{};
        if (int rc = table_->read_disk(disk_, offset, buf.data(), n, err.data(), err.size()); rc != 0)
            return fail(plugin_error(rc, err, table_->name, fmt::format("reading {} bytes at {:#x} of {}", n, offset, name_)));
        return n;
    }

private:
    const hsdk_plugin *table_;
    void *disk_;
    std::uint64_t size_;
    std::string name_;
};

class PluginSession final : public ProviderSession {
public:
    PluginSession(const hsdk_plugin *table, void *session) : table_(table), session_(session) {}
    ~PluginSession() override { table_->disconnect(session_); }
    PluginSession(const PluginSession &) = delete;
    PluginSession &operator=(const PluginSession &) = delete;

    Result<std::vector<VirtualMachine>> list_vms(const VmFilter &filter) override {
        if ((table_->capabilities & HSDK_CAP_LIST) == 0) return fail(Errc::unsupported, fmt::format("provider '{}' cannot list VMs", table_->name));
        const std::string f = nlohmann::json{{"name_contains", filter.name_contains}}.dump();
        PluginString out{table_};
        std::array<char, 1024> err{};
        std::lock_guard lock(mutex_);
        if (int rc = table_->list_vms(session_, f.c_str(), &out.text, err.data(), err.size()); rc != 0)
            return fail(plugin_error(rc, err, table_->name, "listing VMs"));
        HSDK_TRY(auto j, parse_plugin_json(out, table_->name, "list_vms"));
        if (!j.is_array()) return fail(Errc::internal, fmt::format("provider '{}': list_vms did not return an array", table_->name));
        std::vector<VirtualMachine> vms;
        for (const auto &v : j) {
            HSDK_TRY(auto vm, vm_from_json(v));
            if (vm.provider.empty()) vm.provider = table_->name;
            vms.push_back(std::move(vm));
        }
        return vms;
    }

    Result<VirtualMachine> describe(const std::string &vm) override {
        if ((table_->capabilities & HSDK_CAP_DESCRIBE) == 0)
            return fail(Errc::unsupported, fmt::format("provider '{}' cannot describe VMs", table_->name));
        PluginString out{table_};
        std::array<char, 1024> err{};
        std::lock_guard lock(mutex_);
        if (int rc = table_->describe_vm(session_, vm.c_str(), &out.text, err.data(), err.size()); rc != 0)
            return fail(plugin_error(rc, err, table_->name, fmt::format("describing '{}'", vm)));
        HSDK_TRY(auto j, parse_plugin_json(out, table_->name, "describe_vm"));
        HSDK_TRY(auto result, vm_from_json(j));
        if (result.provider.empty()) result.provider = table_->name;
        return result;
    }

    Result<std::shared_ptr<ByteSource>> open_disk(const std::string &vm, std::size_t index) override {
        if ((table_->capabilities & HSDK_CAP_BLOCK_READS) == 0) return ProviderSession::open_disk(vm, index);
        void *disk = nullptr;
        std::uint64_t size = 0;
        std::array<char, 1024> err{};
        std::lock_guard lock(mutex_);
        if (int rc = table_->open_disk(session_, vm.c_str(), static_cast<std::uint32_t>(index), &disk, &size, err.data(), err.size());
            rc != 0)
            return fail(plugin_error(rc, err, table_->name, fmt::format("opening disk {} of '{}'", index, vm)));
        return std::shared_ptr<ByteSource>(
            std::make_shared<PluginDisk>(table_, disk, size, fmt::format("{}:{}/disk{}", table_->name, vm, index)));
    }

private:
    const hsdk_plugin *table_;
    void *session_;
    std::mutex mutex_;  // the plugin sees one call at a time per session
};

class PluginProvider final : public Provider {
public:
    PluginProvider(const hsdk_plugin *table, std::string path, nlohmann::json schema)
        : table_(table), path_(std::move(path)), schema_(std::move(schema)) {}
    std::string name() const override { return table_->name; }
    std::string description() const override { return table_->description != nullptr ? table_->description : ""; }
    std::uint32_t capabilities() const override { return table_->capabilities; }
    nlohmann::json config_schema() const override { return schema_; }
    std::string origin() const override { return path_; }
    Result<std::unique_ptr<ProviderSession>> connect(const nlohmann::json &config, const CancelToken &cancel) const override {
        HSDK_TRYV(cancel.check());
        const std::string text = (config.is_null() ? nlohmann::json::object() : config).dump();
        void *session = nullptr;
        std::array<char, 1024> err{};
        if (int rc = table_->connect(text.c_str(), &session, err.data(), err.size()); rc != 0)
            return fail(plugin_error(rc, err, table_->name, "connecting"));
        return std::unique_ptr<ProviderSession>(new PluginSession(table_, session));
    }

private:
    const hsdk_plugin *table_;
    std::string path_;
    nlohmann::json schema_;
};

bool valid_name(const char *name) {
    if (name == nullptr || *name == '\0' || std::strlen(name) > 64) return false;
    for (const char *c = name; *c != '\0'; ++c)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_' || *c == '-')) return false;
    return true;
}

Result<void> check_table(const hsdk_plugin *t, const std::string &path) {
    auto bad = [&](std::string_view why) { return fail(Errc::unsupported, fmt::format("plugin '{}': {}", path, why)); };
    if (t == nullptr) return bad("hsdk_plugin_init declined to load (returned NULL)");
    if (t->abi_version == 0 || t->abi_version > HSDK_PLUGIN_ABI_VERSION)
        return bad(fmt::format("speaks plugin ABI version {}; this libhypersdk knows versions up to {}", t->abi_version,
                               HSDK_PLUGIN_ABI_VERSION));
    if (t->struct_size < v1_table_size) return bad(fmt::format("its table has {} bytes, version 1 needs {}", t->struct_size, v1_table_size));
    if (!valid_name(t->name)) return bad("its name must be 1 to 64 of a-z, 0-9, _ and -");
    if ((t->capabilities & ~known_capabilities) != 0) return bad(fmt::format("unknown capability bits {:#x}", t->capabilities & ~known_capabilities));
    if (t->connect == nullptr || t->disconnect == nullptr || t->free_string == nullptr)
        return bad("connect, disconnect and free_string are required");
    if ((t->capabilities & HSDK_CAP_LIST) != 0 && t->list_vms == nullptr) return bad("claims list without list_vms");
    if ((t->capabilities & HSDK_CAP_DESCRIBE) != 0 && t->describe_vm == nullptr) return bad("claims describe without describe_vm");
    if ((t->capabilities & HSDK_CAP_BLOCK_READS) != 0 && (t->open_disk == nullptr || t->read_disk == nullptr || t->close_disk == nullptr))
        return bad("claims block_reads without open_disk, read_disk and close_disk");
    return success();
}

Result<std::shared_ptr<const Provider>> load_one(const std::string &path) {
    // Never unloaded: a plugin may keep threads or have handed out function pointers.
    void *handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
        const char *e = ::dlerror();
        return fail(Errc::not_found, fmt::format("cannot load plugin '{}': {}", path, e != nullptr ? e : "unknown error"));
    }
    auto init = reinterpret_cast<hsdk_plugin_init_fn>(::dlsym(handle, HSDK_PLUGIN_INIT_SYMBOL));
    if (init == nullptr) {
        ::dlclose(handle);
        return fail(Errc::unsupported, fmt::format("'{}' is no libhypersdk plugin: it exports no {}", path, HSDK_PLUGIN_INIT_SYMBOL));
    }
    const hsdk_plugin *table = init(HSDK_PLUGIN_ABI_VERSION);
    HSDK_TRYV(check_table(table, path));
    auto schema = nlohmann::json::parse(table->config_schema_json != nullptr ? table->config_schema_json : "{}", nullptr, false);
    if (schema.is_discarded() || !schema.is_object())
        return fail(Errc::unsupported, fmt::format("plugin '{}': its config schema is not a JSON object", path));
    auto provider = std::make_shared<const PluginProvider>(table, path, std::move(schema));
    HSDK_TRYV(register_provider(provider));
    log(LogLevel::debug, fmt::format("loaded provider '{}' from {}", table->name, path));
    return std::shared_ptr<const Provider>(provider);
}

}  // namespace

Result<std::shared_ptr<const Provider>> load_provider_plugin(const std::string &path) {
    load_plugins_from_environment();  // first, so that a name taken twice is always the explicit load's conflict
    return load_one(path);
}

void load_plugins_from_environment() {
    static std::once_flag once;
    std::call_once(once, [] {
        const char *env = std::getenv("HSDK_PLUGIN_PATH");
        if (env == nullptr) return;
        std::vector<std::string> files;
        std::string list(env);
        for (std::size_t start = 0; start <= list.size();) {
            const std::size_t colon = std::min(list.find(':', start), list.size());
            const std::string entry = list.substr(start, colon - start);
            start = colon + 1;
            if (entry.empty()) continue;
            struct stat st {};
            if (::stat(entry.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
                std::vector<std::string> inside;
                if (DIR *d = ::opendir(entry.c_str())) {
                    while (const dirent *e = ::readdir(d)) {
                        const std::string n = e->d_name;
                        if (n.size() > 3 && n.compare(n.size() - 3, 3, ".so") == 0) inside.push_back(entry + "/" + n);
                    }
                    ::closedir(d);
                }
                std::sort(inside.begin(), inside.end());
                files.insert(files.end(), inside.begin(), inside.end());
            } else {
                files.push_back(entry);
            }
        }
        for (const auto &f : files)
            if (auto r = load_one(f); !r) log(LogLevel::warn, fmt::format("HSDK_PLUGIN_PATH: {}", r.error().message));
    });
}

}  // namespace hypersdk
