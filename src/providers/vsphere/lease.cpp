#include "providers/vsphere/lease.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <thread>

namespace hypersdk::vsphere {

std::string resolve_device_url(const std::string &url, const std::string &host) {
    const auto scheme = url.find("://");
    if (scheme == std::string::npos) return url;
    const auto start = scheme + 3;
    if (url.compare(start, 1, "*") != 0) return url;
    std::size_t end = start + 1;  // keep the URL's own port, if it names one
    if (url.compare(end, 1, ":") == 0) {
        const std::string host_only = host.substr(0, host.rfind(':') == std::string::npos || host.back() == ']' ? host.size() : host.rfind(':'));
        return url.substr(0, start) + host_only + url.substr(end);
    }
    return url.substr(0, start) + host + url.substr(end);
}

Result<MoRef> export_vm(Session &s, const MoRef &vm) {
    HSDK_TRY(auto resp, s.invoke(SoapCall("ExportVm", vm), CallKind::action));
    const xml::Element *rv = resp.child("returnval");
    if (rv == nullptr) return fail(Errc::remote_error, "ExportVm returned no lease");
    return moref_of(*rv);
}

Result<MoRef> export_snapshot(Session &s, const MoRef &snapshot) {
    HSDK_TRY(auto resp, s.invoke(SoapCall("ExportSnapshot", snapshot), CallKind::action));
    const xml::Element *rv = resp.child("returnval");
    if (rv == nullptr) return fail(Errc::remote_error, "ExportSnapshot returned no lease");
    return moref_of(*rv);
}

Result<LeaseInfo> wait_lease_ready(Session &s, const MoRef &lease) {
    auto delay = std::chrono::milliseconds(50);
    for (;;) {
        HSDK_TRY(auto o, retrieve_one(s, lease, {"state", "error", "info"}));
        const std::string state = o.text("state");
        if (state == "ready") {
            LeaseInfo info;
            if (const xml::Element *i = o.prop("info")) {
                info.total_disk_capacity_kb = static_cast<std::uint64_t>(std::strtoull(i->child_text("totalDiskCapacityInKB").c_str(), nullptr, 10));
                info.timeout_seconds = std::atoi(i->child_text("leaseTimeout").c_str());
                for (const xml::Element *d : i->children_named("deviceUrl")) {
                    LeaseDevice dev;
                    dev.key = d->child_text("key");
                    dev.url = resolve_device_url(d->child_text("url"), s.host());
                    dev.target_id = d->child_text("targetId");
                    dev.ssl_thumbprint = d->child_text("sslThumbprint");
                    dev.disk = d->child_text("disk") == "true";
                    dev.file_size = static_cast<std::uint64_t>(std::strtoull(d->child_text("fileSize").c_str(), nullptr, 10));
                    info.devices.push_back(std::move(dev));
                }
            }
            return info;
        }
        if (state == "error") {
            const xml::Element *err = o.prop("error");
            const SoapFault f = err ? fault_of(*err) : SoapFault{"HttpNfcLeaseError", "the export lease failed"};
            return fail(fault_error(f, "HttpNfcLease"));
        }
        if (state == "done") return fail(Errc::remote_error, "the export lease ended before it was used");
        const auto until = std::chrono::steady_clock::now() + delay;
        while (std::chrono::steady_clock::now() < until) {
            HSDK_TRYV(s.options().cancel.check());
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        delay = std::min<std::chrono::milliseconds>(delay * 2, std::chrono::milliseconds(1000));
    }
}

Result<void> lease_progress(Session &s, const MoRef &lease, int percent) {
    SoapCall call("HttpNfcLeaseProgress", lease);
    call.integer("percent", std::clamp(percent, 0, 100));
    HSDK_TRYV(s.invoke(call, CallKind::cleanup));
    return success();
}

std::chrono::seconds lease_keepalive_interval(int lease_timeout_seconds) {
    return std::chrono::seconds(std::clamp(lease_timeout_seconds > 0 ? lease_timeout_seconds / 3 : 60, 1, 60));
}

Result<void> lease_complete(Session &s, const MoRef &lease) {
    HSDK_TRYV(s.invoke(SoapCall("HttpNfcLeaseComplete", lease), CallKind::action));
    return success();
}

Result<void> lease_abort(Session &s, const MoRef &lease, const std::string &reason) {
    SoapCall call("HttpNfcLeaseAbort", lease);
    auto escaped = xml::escape_strict(reason);
    call.raw("<fault xsi:type=\"LocalizedMethodFault\"><fault xsi:type=\"SystemError\"><reason>" +
             (escaped ? escaped.value() : std::string("export failed")) +
             "</reason></fault><localizedMessage>" + (escaped ? escaped.value() : std::string("export failed")) +
             "</localizedMessage></fault>");
    HSDK_TRYV(s.invoke(call, CallKind::cleanup));
    return success();
}

Result<std::vector<LeaseManifestEntry>> lease_manifest(Session &s, const MoRef &lease) {
    auto resp = s.invoke(SoapCall("HttpNfcLeaseGetManifest", lease));
    if (!resp) {
        // Servers older than vSphere 5.0 lack the method: no manifest to check against.
        if (resp.error().message.find("MethodNotFound") != std::string::npos) return std::vector<LeaseManifestEntry>{};
        return fail(resp.error());
    }
    std::vector<LeaseManifestEntry> out;
    for (const xml::Element *e : resp.value().children_named("returnval")) {
        LeaseManifestEntry m;
        m.key = e->child_text("key");
        m.sha1 = e->child_text("sha1");
        for (auto &c : m.sha1) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        m.size = static_cast<std::uint64_t>(std::strtoull(e->child_text("size").c_str(), nullptr, 10));
        out.push_back(std::move(m));
    }
    return out;
}

Result<MoRef> create_snapshot(Session &s, const MoRef &vm, const std::string &name, bool quiesce) {
    SoapCall call("CreateSnapshot_Task", vm);
    call.text("name", name)
        .text("description", "Temporary snapshot for an export by libhypersdk; removed when the export ends")
        .boolean("memory", false)
        .boolean("quiesce", quiesce);
    HSDK_TRY(auto resp, s.invoke(call, CallKind::action));
    const xml::Element *task = resp.child("returnval");
    if (task == nullptr) return fail(Errc::remote_error, "CreateSnapshot_Task returned no task");
    // Waited for even after a cancel: a snapshot being made must be known so it can be removed.
    HSDK_TRY(auto result, wait_for_task(s, moref_of(*task), true));
    MoRef snap = moref_of(result);
    if (snap.empty()) return fail(Errc::remote_error, "CreateSnapshot_Task finished without naming the snapshot");
    if (snap.type.empty()) snap.type = "VirtualMachineSnapshot";
    return snap;
}

Result<void> remove_snapshot(Session &s, const MoRef &snapshot) {
    SoapCall call("RemoveSnapshot_Task", snapshot);
    call.boolean("removeChildren", false).boolean("consolidate", true);
    HSDK_TRY(auto resp, s.invoke(call, CallKind::cleanup));
    const xml::Element *task = resp.child("returnval");
    if (task == nullptr) return fail(Errc::remote_error, "RemoveSnapshot_Task returned no task");
    HSDK_TRYV(wait_for_task(s, moref_of(*task), true));
    return success();
}

namespace {
// Walks VirtualMachineSnapshotTree nodes (rootSnapshotList, childSnapshotList) depth first.
void collect_snapshots(const xml::Element &tree, const std::string &parent, std::vector<SnapshotInfo> &out) {
    SnapshotInfo s;
    if (const xml::Element *ref = tree.child("snapshot")) s.id = moref_of(*ref).value;
    s.name = tree.child_text("name");
    s.created = tree.child_text("createTime");
    s.parent = parent;
    const std::string id = s.id;
    out.push_back(std::move(s));
    for (const xml::Element *c : tree.children_named("childSnapshotList")) collect_snapshots(*c, id, out);
}
}  // namespace

Result<std::vector<SnapshotInfo>> list_vm_snapshots(Session &s, const MoRef &vm) {
    HSDK_TRY(auto o, retrieve_one(s, vm, {"snapshot"}));
    std::vector<SnapshotInfo> out;
    if (const xml::Element *info = o.prop("snapshot"))
        for (const xml::Element *root : info->children_named("rootSnapshotList")) collect_snapshots(*root, "", out);
    return out;
}

}  // namespace hypersdk::vsphere
