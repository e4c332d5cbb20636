#include "providers/vsphere/export.hpp"

#include "providers/http_disk_stream.hpp"
#include "providers/vsphere/lease.hpp"

#include <hypersdk/log.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <map>
#include <cstring>
#include <fcntl.h>
#include <random>
#include <unistd.h>

namespace hypersdk::vsphere {
namespace {

bool is_missing_method(const Error &e) {
    return e.message.find("MethodNotFound") != std::string::npos || e.message.find("fault NotSupported") != std::string::npos ||
           e.message.find("fault NotImplemented") != std::string::npos;
}

class VsphereExport final : public PreparedExport {
public:
    VsphereExport(std::shared_ptr<Session> session, FoundVm found, ExportPlan plan)
        : session_(std::move(session)), found_(std::move(found)), plan_(std::move(plan)) {}

    ~VsphereExport() override {
        if (!lease_.empty() || !snapshot_.empty()) (void)abort("the export was abandoned");
    }

    Result<void> start() {
        const bool powered_off = found_.vm.power_state == "poweredOff";
        const std::string transport = plan_.transport.empty() ? "auto" : plan_.transport;
        if (transport != "auto" && transport != "nfc" && transport != "datastore")
            return fail(Errc::invalid_argument, fmt::format("unknown vSphere transport '{}' (auto, nfc, datastore)", transport));
        if (transport == "datastore") return from_datastore(powered_off);

        if (!powered_off) HSDK_TRYV(take_snapshot());
        auto leased = powered_off ? export_vm(*session_, found_.ref) : export_snapshot(*session_, snapshot_);
        if (!leased) {
            if (transport == "auto" && is_missing_method(leased.error())) {
                log(LogLevel::warn, "export: the server cannot export through a lease; downloading from the datastore");
                return from_datastore(powered_off);
            }
            return fail(leased.error());
        }
        lease_ = leased.value();
        read_layout();
        method_ = powered_off ? "ExportVm" : "ExportSnapshot";
        HSDK_TRY(auto info, wait_lease_ready(*session_, lease_));
        lease_timeout_ = info.timeout_seconds;
        for (const auto &dev : info.devices) {
            if (!dev.disk) continue;
            const std::size_t n = disks_.size();
            if (n >= found_.vm.disks.size()) return fail(Errc::remote_error, "the lease offers more disks than the VM has");
            HSDK_TRY(auto client, client_for(dev));
            ExportDisk d;
            d.stream = std::make_shared<streams::HttpDiskStream>(*client, dev.url, std::vector<std::string>{}, client);
            d.format = "vmdk";
            d.streamable = true;  // the lease serves stream-optimized VMDKs
            d.expected_bytes = dev.file_size;
            d.identity = identity(found_.vm.disks[n], powered_off, "nfc");
            d.data_bytes = data_bytes(found_.vm.disks[n]);
            d.label = fmt::format("disk {} ({})", n + 1, io::http::redact_url(dev.url));
            with_retry_policy(d);
            disks_.push_back(std::move(d));
            device_keys_.push_back(dev.key);
        }
        if (disks_.size() != found_.vm.disks.size())
            return fail(Errc::remote_error,
                        fmt::format("the lease offers {} disks but the VM has {}", disks_.size(), found_.vm.disks.size()));
        // No HttpNfcLeaseProgress here: a fresh lease does not need one (the keep-alive sends them
        // during long downloads), and each call is a round trip to a possibly distant server.
        return success();
    }

    const VirtualMachine &vm() const override { return found_.vm; }
    std::vector<ExportDisk> &disks() override { return disks_; }
    std::string method() const override { return method_; }
    bool snapshot_used() const override { return snapshot_taken_; }

    // HttpNfcLeaseProgress at least every 60 s (sooner for short lease timeouts) keeps the lease
    // from expiring during long downloads.
    std::chrono::seconds keepalive_interval() const override {
        if (lease_.empty()) return std::chrono::seconds(0);
        return lease_keepalive_interval(lease_timeout_);
    }
    void keepalive(int percent) override {
        if (!lease_.empty()) (void)lease_progress(*session_, lease_, percent);
    }

    Result<void> verify(const std::vector<ReceivedDisk> &received) override {
        if (lease_.empty()) {
            for (std::size_t i = 0; i < received.size(); ++i) HSDK_TRYV(check_single_file_vmdk(i, received[i]));
            return success();
        }
        HSDK_TRY(auto manifest, lease_manifest(*session_, lease_));
        if (manifest.empty()) {
            log(LogLevel::info, "export: the server keeps no manifest for this lease; nothing to check the bytes against");
            return success();
        }
        for (std::size_t i = 0; i < received.size() && i < device_keys_.size(); ++i) {
            auto it = std::find_if(manifest.begin(), manifest.end(), [&](const LeaseManifestEntry &m) { return m.key == device_keys_[i]; });
            if (it == manifest.end()) continue;
            if (it->size != received[i].size || it->sha1 != received[i].sha1)
                return fail(Errc::checksum_mismatch,
                            fmt::format("checksum mismatch: disk {} ({}): received {} bytes with SHA-1 {}, the server's manifest "
                                        "says {} bytes with SHA-1 {}",
                                        i + 1, device_keys_[i], received[i].size, received[i].sha1, it->size, it->sha1));
        }
        return success();
    }

    Result<void> complete() override {
        if (!lease_.empty()) {
            HSDK_TRYV(plan_.cancel.check());
            HSDK_TRYV(lease_complete(*session_, lease_));  // implies 100%: no progress call first
            lease_ = {};
        }
        if (!snapshot_.empty()) {
            auto removed = remove_snapshot(*session_, snapshot_);
            if (!removed) return fail(removed.error().with_context("removing the export snapshot"));
            snapshot_ = {};
        }
        return success();
    }

    std::vector<std::string> abort(const std::string &reason) noexcept override {
        std::vector<std::string> notes;
        if (!lease_.empty()) {
            if (auto a = lease_abort(*session_, lease_, reason); !a) notes.push_back("could not abort the lease: " + a.error().message);
            lease_ = {};
        }
        if (!snapshot_.empty()) {
            if (auto r = remove_snapshot(*session_, snapshot_); !r)
                notes.push_back(fmt::format("could not remove snapshot {}: {}", snapshot_.value, r.error().message));
            snapshot_ = {};
        }
        return notes;
    }

private:
    Result<void> take_snapshot() {
        if (plan_.phase) plan_.phase("snapshot");
        static thread_local std::mt19937_64 rng{std::random_device{}()};
        const std::string name = fmt::format("hypersdk-export-{:08x}", rng() & 0xffffffffU);
        auto snap = create_snapshot(*session_, found_.ref, name, plan_.quiesce);
        if (!snap) return fail(snap.error().with_context("creating the export snapshot"));
        snapshot_ = snap.value();
        snapshot_taken_ = true;
        return success();
    }

    // The base disks of a running VM stop changing once a snapshot sits on top of them.
    Result<void> from_datastore(bool powered_off) {
        method_ = "datastore";
        read_layout();
        if (!powered_off && snapshot_.empty()) HSDK_TRYV(take_snapshot());
        auto co = session_->http().options();
        co.request_timeout = std::chrono::seconds(0);
        std::shared_ptr<io::http::Client> client = session_->http().derive(co);
        for (std::size_t i = 0; i < found_.vm.disks.size(); ++i) {
            const VmDisk &vd = found_.vm.disks[i];
            auto [ds, path] = split_datastore_path(vd.backing_file);
            if (ds.empty() || path.empty())
                return fail(Errc::unsupported, fmt::format("unsupported: disk '{}' has no datastore path to download", vd.label));
            const std::string url = fmt::format("{}/folder/{}?dcPath={}&dsName={}", session_->server(),
                                                io::http::percent_encode(path, true),
                                                io::http::percent_encode(found_.datacenter_path, true),
                                                io::http::percent_encode(ds, false));
            ExportDisk d;
            d.stream = std::make_shared<streams::HttpDiskStream>(*client, url, std::vector<std::string>{}, client);
            d.format = "vmdk";
            d.streamable = false;  // the datastore file itself: received whole, then converted
            d.identity = identity(vd, powered_off, "datastore");
            d.data_bytes = data_bytes(vd);
            d.label = fmt::format("disk {} ({})", i + 1, vd.backing_file);
            with_retry_policy(d);
            disks_.push_back(std::move(d));
        }
        return success();
    }

    // The VM's files and which of them make up each disk (layoutEx): the disks' bytes on the
    // datastore, for the free-space pre-flight. Nothing is lost when the server does not say.
    void read_layout() {
        if (!found_.layout) return;
        const xml::Element *layout = &*found_.layout;
        std::map<std::string, std::uint64_t> file_size;
        for (const xml::Element *f : layout->children_named("file"))
            file_size[f->child_text("key")] = std::strtoull(f->child_text("size").c_str(), nullptr, 10);
        for (const xml::Element *d : layout->children_named("disk")) {
            std::uint64_t total = 0;
            for (const xml::Element *unit : d->children_named("chain"))
                for (const xml::Element *key : unit->children_named("fileKey")) total += file_size[key->text];
            disk_bytes_[d->child_text("key")] = total;
        }
    }

    std::uint64_t data_bytes(const VmDisk &disk) const {
        auto it = disk_bytes_.find(disk.id);
        return it == disk_bytes_.end() ? 0 : it->second;
    }

    void with_retry_policy(ExportDisk &d) const {
        const auto policy = session_->retry_policy();
        d.max_attempts = policy.max_attempts;
        d.initial_backoff = policy.initial_delay;
        d.max_backoff = policy.max_delay;
    }

    // A text descriptor names extent files a datastore download would also need: that layout
    // needs the NFC transport.
    Result<void> check_single_file_vmdk(std::size_t i, const ReceivedDisk &r) const {
        std::array<char, 4> magic{};
        bool kdmv = false;
        if (!r.path.empty()) {
            const int fd = ::open(r.path.c_str(), O_RDONLY | O_CLOEXEC);
            if (fd >= 0) {
                kdmv = ::pread(fd, magic.data(), magic.size(), 0) == 4 && std::memcmp(magic.data(), "KDMV", 4) == 0;
                ::close(fd);
            }
        }
        if (kdmv) return success();
        return fail_unsupported(fmt::format("disk {} ({}) is not a single-file (sparse) VMDK on the datastore; descriptor + "
                                            "extent layouts need the NFC transport",
                                            i + 1, found_.vm.disks[i].backing_file));
    }

    // Lease URLs on the server itself use the session's client; another host (vCenter handing
    // out an ESXi URL) gets its own TLS check, pinned to the thumbprint the lease names when it is
    // a SHA-256 one.
    Result<std::shared_ptr<io::http::Client>> client_for(const LeaseDevice &dev) {
        const auto scheme = dev.url.find("://");
        const auto host_start = scheme == std::string::npos ? 0 : scheme + 3;
        const std::string host = dev.url.substr(host_start, dev.url.find('/', host_start) - host_start);
        io::http::ClientOptions co = session_->http().options();
        co.request_timeout = std::chrono::seconds(0);
        if (host != session_->host() && !dev.ssl_thumbprint.empty() && !session_->options().insecure) {
            if (auto t = io::http::normalize_thumbprint(dev.ssl_thumbprint)) {
                co.tls.thumbprint_sha256 = t.value();
                co.tls.ca_file.clear();
            }
        }
        return std::shared_ptr<io::http::Client>(session_->http().derive(co));
    }

    nlohmann::json identity(const VmDisk &disk, bool powered_off, const char *source) const {
        nlohmann::json id = {{"vm", found_.vm.instance_uuid.empty() ? found_.vm.uuid : found_.vm.instance_uuid},
                             {"vm_id", found_.vm.id},
                             {"disk", disk.id},
                             {"backing", disk.backing_file},
                             {"capacity", disk.capacity_bytes},
                             {"change_id", disk.change_id},
                             {"source", source}};
        // A running VM is exported from a new snapshot each time: bytes from an earlier run show
        // another point in time, so its state never matches.
        if (!powered_off) id["run"] = fmt::format("{:016x}", std::random_device{}());
        return id;
    }

    std::shared_ptr<Session> session_;
    FoundVm found_;
    ExportPlan plan_;
    std::string method_;
    MoRef snapshot_, lease_;
    bool snapshot_taken_ = false;
    int lease_timeout_ = 0;
    std::vector<ExportDisk> disks_;
    std::vector<std::string> device_keys_;
    std::map<std::string, std::uint64_t> disk_bytes_;  // by device key
};

}  // namespace

Result<std::unique_ptr<PreparedExport>> prepare_export(std::shared_ptr<Session> session, FoundVm found, const ExportPlan &plan) {
    auto e = std::make_unique<VsphereExport>(std::move(session), std::move(found), plan);
    if (auto started = e->start(); !started) {
        Error err = started.error();
        for (const auto &n : e->abort(err.message)) err.message += "; " + n;
        return fail(err);
    }
    return std::unique_ptr<PreparedExport>(std::move(e));
}

}  // namespace hypersdk::vsphere
