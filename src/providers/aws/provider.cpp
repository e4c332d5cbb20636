// The "aws" provider: EC2 instances as VMs, their EBS volumes as disks read through the EBS direct
// APIs from snapshots of ours; discovery, snapshots and the connection config.
#include "providers/aws/session.hpp"

#include "providers/builtin.hpp"
#include "providers/config_secret.hpp"
#include "core/json_fields.hpp"

#include <hypersdk/log.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <thread>

namespace hypersdk::aws {
namespace {

using json = nlohmann::json;
using namespace cloud::aws;

constexpr std::uint64_t GiB = 1ull << 30;

using json_fields::str;


std::string power_state(const std::string &ec2_state) {
    if (ec2_state == "running") return "poweredOn";
    if (ec2_state == "stopped") return "poweredOff";
    return ec2_state;
}

// Xen-based families see block devices through Xen's PV driver; Nitro families through NVMe.
bool xen_family(const std::string &type) {
    static const char *xen[] = {"t1.", "t2.", "m1.", "m2.", "m3.", "m4.", "c1.", "c3.", "c4.", "r3.", "r4.", "i2.", "d2.", "x1.", "x1e.", "p2.", "g3.", "h1."};
    return std::any_of(std::begin(xen), std::end(xen), [&](const char *p) { return type.rfind(p, 0) == 0; });
}

}  // namespace

Result<Ec2Instance> AwsSession::find_instance(const std::string &vm) {
    Ec2 ec2(*client_);
    if (vm.rfind("i-", 0) == 0) {
        auto found = ec2.describe_instances({vm});
        if (!found) {
            if (found.error().code == Errc::not_found || found.error().code == Errc::invalid_argument)
                return fail(Errc::not_found, fmt::format("no EC2 instance '{}' in {} ({})", vm, client_->config().region, found.error().message));
            return fail(found.error());
        }
        if (!found.value().empty()) return found.value().front();
        return fail(Errc::not_found, fmt::format("no EC2 instance '{}' in {}", vm, client_->config().region));
    }
    HSDK_TRY(auto all, ec2.describe_instances());
    std::vector<Ec2Instance> named;
    for (auto &i : all)
        if (i.name == vm && i.state != "terminated") named.push_back(std::move(i));
    if (named.empty()) return fail(Errc::not_found, fmt::format("no EC2 instance named '{}' in {}", vm, client_->config().region));
    if (named.size() > 1) {
        std::string ids;
        for (const auto &i : named) ids += (ids.empty() ? "" : ", ") + i.id;
        return fail(Errc::conflict, fmt::format("{} instances are named '{}' ({}): name one by its id", named.size(), vm, ids));
    }
    return std::move(named.front());
}

Result<VirtualMachine> AwsSession::to_vm(const Ec2Instance &i) {
    VirtualMachine vm;
    vm.provider = "aws";
    vm.id = i.id;
    vm.name = i.name.empty() ? i.id : i.name;
    vm.inventory_path = fmt::format("/{}/{}/{}", client_->config().region, i.availability_zone, i.id);
    vm.power_state = power_state(i.state);
    vm.guest_os_description = i.platform.empty() ? i.architecture : fmt::format("{} ({})", i.platform, i.architecture);
    if (i.platform.find("Windows") != std::string::npos) vm.guest_id = "windows2019srv_64Guest";
    else if (i.architecture == "arm64") vm.guest_id = "arm-other-64";
    else vm.guest_id = "otherLinux64Guest";
    auto [cpus, mib] = known_instance_size(i.type);
    if (cpus == 0) {
        Ec2 ec2(*client_);
        if (auto asked = ec2.instance_type_size(i.type)) std::tie(cpus, mib) = asked.value();
        else log(LogLevel::warn, fmt::format("{}: size of instance type '{}' unknown: {}", i.id, i.type, asked.error().message));
    }
    vm.cpus = std::max(1, cpus);
    vm.memory_mib = mib;
    vm.hardware_version = "ec2-" + i.type;
    // Graviton instances boot UEFI only; others as the instance says (legacy-bios when unsaid).
    vm.firmware = i.boot_mode.find("uefi") != std::string::npos || i.architecture == "arm64" ? Firmware::efi : Firmware::bios;

    std::vector<std::string> volume_ids;
    for (const auto &d : i.block_devices) volume_ids.push_back(d.volume_id);
    std::vector<Ec2Volume> volumes;
    if (!volume_ids.empty()) {
        Ec2 ec2(*client_);
        HSDK_TRY(volumes, ec2.describe_volumes(volume_ids));
    }
    auto devices = i.block_devices;
    // The root device first, then by device name.
    std::stable_sort(devices.begin(), devices.end(), [&](const Ec2BlockDevice &a, const Ec2BlockDevice &b) {
        const bool ra = a.device == i.root_device_name, rb = b.device == i.root_device_name;
        if (ra != rb) return ra;
        return a.device < b.device;
    });
    int unit = 0;
    for (const auto &d : devices) {
        VmDisk disk;
        disk.id = d.volume_id;
        disk.label = d.device;
        for (const auto &v : volumes)
            if (v.id == d.volume_id) {
                disk.capacity_bytes = v.size_gib * GiB;
                disk.datastore = v.availability_zone;
                disk.thin = true;
            }
        disk.backing_file = d.volume_id;
        disk.controller = xen_family(i.type) ? "" : "nvme";
        disk.unit = unit++;
        disk.file_format = "raw";
        if (d.device == i.root_device_name) disk.boot_order = 1;
        vm.disks.push_back(std::move(disk));
    }
    auto nics = i.interfaces;
    std::sort(nics.begin(), nics.end(), [](const auto &a, const auto &b) { return a.device_index < b.device_index; });
    for (const auto &n : nics) {
        VmNic nic;
        nic.id = n.id;
        nic.mac = n.mac;
        std::transform(nic.mac.begin(), nic.mac.end(), nic.mac.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        nic.network = n.subnet_id.empty() ? n.vpc_id : fmt::format("{}/{}", n.vpc_id, n.subnet_id);
        nic.adapter_type = "ena";
        vm.nics.push_back(std::move(nic));
    }
    return vm;
}

Result<std::vector<VirtualMachine>> AwsSession::list_vms(const VmFilter &filter) {
    Ec2 ec2(*client_);
    HSDK_TRY(auto instances, ec2.describe_instances());
    std::vector<VirtualMachine> out;
    for (const auto &i : instances) {
        if (i.state == "terminated") continue;
        if (!filter.name_contains.empty() && i.name.find(filter.name_contains) == std::string::npos &&
            i.id.find(filter.name_contains) == std::string::npos)
            continue;
        HSDK_TRY(auto vm, to_vm(i));
        out.push_back(std::move(vm));
    }
    return out;
}

Result<VirtualMachine> AwsSession::describe(const std::string &vm) {
    HSDK_TRY(auto instance, find_instance(vm));
    return to_vm(instance);
}

Result<std::shared_ptr<ByteSource>> AwsSession::open_disk(const std::string &, std::size_t) {
    return fail(Errc::unsupported, "unsupported: an EBS volume is read from a snapshot: export or back up the instance, or read "
                                   "ebs://SNAPSHOT_ID");
}

std::vector<std::string> AwsSession::delete_snapshots(const std::vector<std::string> &ids) noexcept {
    std::vector<std::string> notes;
    // Clean-up runs after a cancel too: on a client of its own, not bound to the job's token.
    ClientSettings s = client_->settings();
    s.cancel = CancelToken{};
    s.max_attempts = std::min(s.max_attempts, 5u);
    Client cleanup(client_->config(), s);
    Ec2 ec2(cleanup);
    for (const auto &id : ids) {
        if (id.empty()) continue;
        if (auto r = ec2.delete_snapshot(id); !r && r.error().code != Errc::not_found)
            notes.push_back(fmt::format("snapshot {} could not be deleted ({}); delete it yourself", id, r.error().message));
    }
    return notes;
}

Result<std::vector<Ec2Snapshot>> AwsSession::snapshot_instance(const VirtualMachine &vm, const std::string &purpose,
                                                               const std::string &name, const CancelToken &cancel,
                                                               const std::function<void(const std::string &)> &phase) {
    if (phase) phase("snapshot");
    Ec2 ec2(*client_);
    std::map<std::string, std::string> tags{{created_by_tag, "libhypersdk"}, {instance_tag, vm.id}, {purpose_tag, purpose}};
    if (!name.empty()) tags["Name"] = name;
    HSDK_TRY(auto created, ec2.create_snapshots(vm.id, fmt::format("libhypersdk {} of {}", purpose, vm.id), tags));
    std::vector<std::string> ids;
    for (const auto &s : created) ids.push_back(s.id);
    auto give_up = [&](Error e) -> Result<std::vector<Ec2Snapshot>> {
        for (const auto &n : delete_snapshots(ids)) e.message += "; " + n;
        return fail(std::move(e));
    };
    // In the order of the described disks; a disk the call did not snapshot is an error.
    std::vector<Ec2Snapshot> ordered;
    for (const auto &d : vm.disks) {
        auto it = std::find_if(created.begin(), created.end(), [&](const Ec2Snapshot &s) { return s.volume_id == d.id; });
        if (it == created.end())
            return give_up(Error{Errc::remote_error, fmt::format("EC2 CreateSnapshots of {} made no snapshot of volume {} ({})", vm.id, d.id, d.label)});
        ordered.push_back(*it);
    }
    const auto deadline = std::chrono::steady_clock::now() + settings_.snapshot_timeout;
    auto interval = std::min<std::chrono::milliseconds>(settings_.poll_interval, std::chrono::milliseconds(500));
    for (;;) {
        auto states = ec2.describe_snapshots(ids);
        if (!states) return give_up(states.error());
        std::string pending;
        for (auto &o : ordered)
            for (const auto &s : states.value())
                if (s.id == o.id) {
                    o.state = s.state;
                    o.progress = s.progress;
                    o.state_message = s.state_message;
                }
        for (const auto &o : ordered) {
            if (o.state == "error")
                return give_up(Error{Errc::remote_error, fmt::format("EBS snapshot {} of volume {} failed: {}", o.id, o.volume_id,
                                                                     o.state_message.empty() ? "state error" : o.state_message)});
            if (o.state != "completed") pending += fmt::format("{}{} {} ({})", pending.empty() ? "" : ", ", o.id, o.state, o.progress.empty() ? "?" : o.progress);
        }
        if (pending.empty()) break;
        if (std::chrono::steady_clock::now() >= deadline)
            return give_up(Error{Errc::timeout, fmt::format("EBS snapshots of {} not completed after {} s: {}", vm.id,
                                                            settings_.snapshot_timeout.count(), pending)});
        if (phase) phase("snapshot: waiting for " + pending);
        const auto until = std::chrono::steady_clock::now() + interval;
        while (std::chrono::steady_clock::now() < until) {
            if (auto c = cancel.check(); !c) return give_up(c.error());
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        interval = std::min<std::chrono::milliseconds>(interval * 2, std::max(settings_.poll_interval, std::chrono::milliseconds(500)) * 8);
    }
    return ordered;
}

Result<std::vector<SnapshotInfo>> AwsSession::list_snapshots(const std::string &vm) {
    HSDK_TRY(auto instance, find_instance(vm));
    Ec2 ec2(*client_);
    HSDK_TRY(auto snapshots, ec2.describe_snapshots({}, {instance_tag, instance.id}));
    std::vector<SnapshotInfo> out;
    for (const auto &s : snapshots) {
        SnapshotInfo info;
        info.id = s.id;
        auto name = s.tags.find("Name");
        info.name = fmt::format("{} ({})", name != s.tags.end() ? name->second : s.description, s.volume_id);
        info.created = s.start_time;
        out.push_back(std::move(info));
    }
    std::sort(out.begin(), out.end(), [](const auto &a, const auto &b) { return a.created < b.created; });
    return out;
}

Result<std::string> AwsSession::create_snapshot(const std::string &vm, const std::string &name, bool) {
    HSDK_TRY(auto described, describe(vm));
    HSDK_TRY(auto snapshots, snapshot_instance(described, "snapshot", name, client_->settings().cancel, {}));
    std::string ids;
    for (const auto &s : snapshots) ids += (ids.empty() ? "" : ",") + s.id;
    return ids;
}

Result<void> AwsSession::remove_snapshot(const std::string &vm, const std::string &snapshot_id) {
    HSDK_TRY(auto instance, find_instance(vm));
    std::vector<std::string> ids;
    std::size_t i = 0;
    while (i <= snapshot_id.size()) {
        const auto comma = snapshot_id.find(',', i);
        ids.push_back(snapshot_id.substr(i, comma == std::string::npos ? std::string::npos : comma - i));
        if (comma == std::string::npos) break;
        i = comma + 1;
    }
    Ec2 ec2(*client_);
    HSDK_TRY(auto found, ec2.describe_snapshots(ids));
    for (const auto &id : ids) {
        auto it = std::find_if(found.begin(), found.end(), [&](const Ec2Snapshot &s) { return s.id == id; });
        if (it == found.end()) return fail(Errc::not_found, fmt::format("no snapshot {}", id));
        auto tag = it->tags.find(instance_tag);
        if (tag == it->tags.end() || tag->second != instance.id)
            return fail(Errc::permission_denied, fmt::format("snapshot {} is not one of ours of {}: not deleted", id, instance.id));
    }
    for (const auto &id : ids) HSDK_TRYV(ec2.delete_snapshot(id));
    return success();
}

Result<TrackingStatus> AwsSession::tracking_status(const std::string &vm) {
    HSDK_TRY(auto described, describe(vm));
    TrackingStatus st;
    st.enabled = true;  // EBS compares any two snapshots of one volume: nothing to switch on
    for (const auto &d : described.disks) st.disks.push_back(DiskTracking{d.id, d.label, ""});
    return st;
}

Result<TrackingStatus> AwsSession::enable_tracking(const std::string &vm, bool enabled) {
    if (!enabled)
        return fail(Errc::unsupported, "unsupported: EBS changed blocks come from snapshot lineage and cannot be switched off");
    return tracking_status(vm);
}

namespace {

class AwsProvider final : public Provider {
public:
    std::string name() const override { return "aws"; }
    std::string description() const override {
        return "Amazon EC2: instances exported block by block from EBS snapshots (EBS direct APIs), incrementals from "
               "ListChangedBlocks, or through an EC2 export task to S3";
    }
    std::uint32_t capabilities() const override {
        using C = ProviderCapability;
        return static_cast<std::uint32_t>(C::list) | static_cast<std::uint32_t>(C::describe) | static_cast<std::uint32_t>(C::snapshot) |
               static_cast<std::uint32_t>(C::native_export) | static_cast<std::uint32_t>(C::changed_extents);
    }
    json config_schema() const override { return {{"$ref", "common.json#/definitions/aws_connection"}}; }

    Result<std::unique_ptr<ProviderSession>> connect(const json &config, const CancelToken &cancel) const override {
        ConfigInput in;
        in.profile = str(config, "profile");
        in.region = str(config, "region");
        in.endpoint_url = str(config, "endpoint_url");
        for (const char *s : {"ec2", "ebs", "s3"})
            if (auto u = str(config, (std::string(s) + "_endpoint").c_str()); !u.empty()) in.service_endpoints[s] = u;
        in.credentials.access_key_id = str(config, "access_key_id");
        HSDK_TRY(in.credentials.secret_access_key, config_secret(config, "secret_access_key"));
        HSDK_TRY(in.credentials.session_token, config_secret(config, "session_token"));
        if (in.credentials.access_key_id.empty() != in.credentials.secret_access_key.empty())
            return fail(Errc::invalid_argument, "access_key_id and a secret_access_key (_env or _file) go together");
        HSDK_TRY(auto resolved, resolve_config(in));
        ClientSettings s;
        s.insecure = config.value("insecure", false);
        s.ca_file = str(config, "ca_file");
        s.max_attempts = config.value("max_attempts", 10u);
        s.timeout = std::chrono::seconds(config.value("timeout", 60u));
        s.cancel = cancel;
        s.account_rate = config.value("account_rate", 5000.0);
        Settings settings;
        settings.blocks.requests_in_flight = config.value("requests_in_flight", 64u);
        settings.blocks.rate = config.value("rate", 1000.0);
        settings.keep_snapshots = config.value("keep_snapshots", false);
        settings.snapshot_timeout = std::chrono::seconds(config.value("snapshot_timeout", 3600u));
        settings.poll_interval = std::chrono::milliseconds(config.value("poll_interval_ms", 2000u));
        settings.export_bucket = str(config, "export_bucket");
        settings.export_prefix = str(config, "export_prefix");
        if (auto f = str(config, "export_format"); !f.empty()) settings.export_format = f;
        if (auto t = str(config, "target_environment"); !t.empty()) settings.target_environment = t;
        settings.http.insecure = s.insecure;
        settings.http.ca_file = s.ca_file;
        settings.http.timeout_seconds = static_cast<unsigned>(s.timeout.count());
        settings.http.cancel = cancel;
        log(LogLevel::debug, fmt::format("aws: region {}, credentials from {}, EC2 at {}", resolved.region, resolved.credentials_source,
                                         resolved.endpoint("ec2")));
        auto client = std::make_shared<Client>(std::move(resolved), s);
        return std::unique_ptr<ProviderSession>(new AwsSession(std::move(client), std::move(settings)));
    }
};

}  // namespace

std::shared_ptr<const Provider> aws_provider() { return std::make_shared<AwsProvider>(); }

}  // namespace hypersdk::aws
