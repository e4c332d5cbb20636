#include "cloud/aws/ec2.hpp"

#include "xml/xml_tree.hpp"

#include <fmt/format.h>

#include <cstdlib>

namespace hypersdk::cloud::aws {
namespace {

constexpr const char *version = "2016-11-15";

Result<xml::Element> parse_answer(const std::string &body, const std::string &what) {
    xml::Limits limits;
    limits.error_code = Errc::remote_error;
    return xml::parse(body, what, limits);
}

std::map<std::string, std::string> tags_of(const xml::Element &item) {
    std::map<std::string, std::string> tags;
    if (const auto *set = item.child("tagSet"))
        for (const auto *t : set->children_named("item")) tags[t->child_text("key")] = t->child_text("value");
    return tags;
}

std::uint64_t number(const std::string &s) { return std::strtoull(s.c_str(), nullptr, 10); }

Ec2Snapshot snapshot_of(const xml::Element &item) {
    Ec2Snapshot s;
    s.id = item.child_text("snapshotId");
    s.volume_id = item.child_text("volumeId");
    s.state = item.child_text("status");
    if (s.state.empty()) s.state = item.child_text("state");
    s.progress = item.child_text("progress");
    s.start_time = item.child_text("startTime");
    s.description = item.child_text("description");
    s.state_message = item.child_text("statusMessage");
    if (s.state_message.empty()) s.state_message = item.child_text("stateMessage");
    s.volume_size_gib = number(item.child_text("volumeSize"));
    s.tags = tags_of(item);
    return s;
}

Ec2ExportTask export_task_of(const xml::Element &e) {
    Ec2ExportTask t;
    t.id = e.child_text("exportTaskId");
    t.state = e.child_text("state");
    t.status_message = e.child_text("statusMessage");
    if (const auto *r = e.child("instanceExport")) t.instance_id = r->child_text("instanceId");
    if (const auto *s = e.child("exportToS3")) {
        t.bucket = s->child_text("s3Bucket");
        t.key = s->child_text("s3Key");
        t.disk_image_format = s->child_text("diskImageFormat");
    }
    return t;
}

void add_list(std::vector<std::pair<std::string, std::string>> &params, const std::string &name,
              const std::vector<std::string> &values) {
    for (std::size_t i = 0; i < values.size(); ++i) params.emplace_back(fmt::format("{}.{}", name, i + 1), values[i]);
}

}  // namespace

Result<std::string> Ec2::query(const std::string &action, std::vector<std::pair<std::string, std::string>> params,
                               const std::string &what) {
    params.insert(params.begin(), {{"Action", action}, {"Version", version}});
    Call c;
    c.service = "ec2";
    c.method = "POST";
    c.path = "/";
    c.body = form_encode(params, true);
    c.content_type = "application/x-www-form-urlencoded; charset=utf-8";
    c.what = what;
    HSDK_TRY(auto answer, client_.call(c));
    return std::move(answer.body);
}

Result<std::vector<Ec2Instance>> Ec2::describe_instances(const std::vector<std::string> &ids) {
    std::vector<Ec2Instance> out;
    std::string token;
    for (;;) {
        std::vector<std::pair<std::string, std::string>> params;
        add_list(params, "InstanceId", ids);
        if (ids.empty()) params.emplace_back("MaxResults", "1000");  // EC2 refuses MaxResults beside ids
        if (!token.empty()) params.emplace_back("NextToken", token);
        HSDK_TRY(auto body, query("DescribeInstances", params, "EC2 DescribeInstances"));
        HSDK_TRY(auto doc, parse_answer(body, "EC2 DescribeInstances answer"));
        if (const auto *reservations = doc.child("reservationSet"))
            for (const auto *r : reservations->children_named("item"))
                if (const auto *set = r->child("instancesSet"))
                    for (const auto *i : set->children_named("item")) {
                        Ec2Instance inst;
                        inst.id = i->child_text("instanceId");
                        inst.type = i->child_text("instanceType");
                        if (const auto *st = i->child("instanceState")) inst.state = st->child_text("name");
                        if (const auto *pl = i->child("placement")) inst.availability_zone = pl->child_text("availabilityZone");
                        inst.root_device_name = i->child_text("rootDeviceName");
                        inst.boot_mode = i->child_text("currentInstanceBootMode");
                        if (inst.boot_mode.empty()) inst.boot_mode = i->child_text("bootMode");
                        inst.architecture = i->child_text("architecture");
                        inst.platform = i->child_text("platformDetails");
                        if (const auto *bdm = i->child("blockDeviceMapping"))
                            for (const auto *d : bdm->children_named("item"))
                                if (const auto *ebs = d->child("ebs"))
                                    inst.block_devices.push_back({d->child_text("deviceName"), ebs->child_text("volumeId")});
                        if (const auto *nics = i->child("networkInterfaceSet"))
                            for (const auto *n : nics->children_named("item")) {
                                Ec2NetworkInterface e;
                                e.id = n->child_text("networkInterfaceId");
                                e.mac = n->child_text("macAddress");
                                e.private_ip = n->child_text("privateIpAddress");
                                e.subnet_id = n->child_text("subnetId");
                                e.vpc_id = n->child_text("vpcId");
                                if (const auto *a = n->child("attachment")) e.device_index = std::atoi(a->child_text("deviceIndex").c_str());
                                inst.interfaces.push_back(std::move(e));
                            }
                        inst.tags = tags_of(*i);
                        if (auto it = inst.tags.find("Name"); it != inst.tags.end()) inst.name = it->second;
                        out.push_back(std::move(inst));
                    }
        token = doc.child_text("nextToken");
        if (token.empty()) break;
    }
    return out;
}

Result<std::vector<Ec2Volume>> Ec2::describe_volumes(const std::vector<std::string> &ids) {
    std::vector<Ec2Volume> out;
    std::string token;
    for (;;) {
        std::vector<std::pair<std::string, std::string>> params;
        add_list(params, "VolumeId", ids);
        if (ids.empty()) params.emplace_back("MaxResults", "500");
        if (!token.empty()) params.emplace_back("NextToken", token);
        HSDK_TRY(auto body, query("DescribeVolumes", params, "EC2 DescribeVolumes"));
        HSDK_TRY(auto doc, parse_answer(body, "EC2 DescribeVolumes answer"));
        if (const auto *set = doc.child("volumeSet"))
            for (const auto *v : set->children_named("item")) {
                Ec2Volume vol;
                vol.id = v->child_text("volumeId");
                vol.size_gib = number(v->child_text("size"));
                vol.snapshot_id = v->child_text("snapshotId");
                vol.type = v->child_text("volumeType");
                vol.state = v->child_text("status");
                vol.availability_zone = v->child_text("availabilityZone");
                vol.encrypted = v->child_text("encrypted") == "true";
                out.push_back(std::move(vol));
            }
        token = doc.child_text("nextToken");
        if (token.empty()) break;
    }
    return out;
}

Result<std::vector<Ec2Snapshot>> Ec2::describe_snapshots(const std::vector<std::string> &ids,
                                                         const std::pair<std::string, std::string> &tag) {
    std::vector<Ec2Snapshot> out;
    std::string token;
    for (;;) {
        std::vector<std::pair<std::string, std::string>> params;
        add_list(params, "SnapshotId", ids);
        if (ids.empty()) {
            params.emplace_back("Owner.1", "self");
            params.emplace_back("MaxResults", "1000");
            if (!tag.first.empty()) {
                params.emplace_back("Filter.1.Name", "tag:" + tag.first);
                params.emplace_back("Filter.1.Value.1", tag.second);
            }
        }
        if (!token.empty()) params.emplace_back("NextToken", token);
        HSDK_TRY(auto body, query("DescribeSnapshots", params,
                                  ids.size() == 1 ? "EC2 DescribeSnapshots " + ids[0] : std::string("EC2 DescribeSnapshots")));
        HSDK_TRY(auto doc, parse_answer(body, "EC2 DescribeSnapshots answer"));
        if (const auto *set = doc.child("snapshotSet"))
            for (const auto *s : set->children_named("item")) out.push_back(snapshot_of(*s));
        token = doc.child_text("nextToken");
        if (token.empty()) break;
    }
    return out;
}

Result<std::vector<Ec2Snapshot>> Ec2::create_snapshots(const std::string &instance_id, const std::string &description,
                                                       const std::map<std::string, std::string> &tags) {
    std::vector<std::pair<std::string, std::string>> params{{"InstanceSpecification.InstanceId", instance_id},
                                                            {"InstanceSpecification.ExcludeBootVolume", "false"},
                                                            {"Description", description},
                                                            {"CopyTagsFromSource", "volume"}};
    if (!tags.empty()) {
        params.emplace_back("TagSpecification.1.ResourceType", "snapshot");
        int n = 1;
        for (const auto &[k, v] : tags) {
            params.emplace_back(fmt::format("TagSpecification.1.Tag.{}.Key", n), k);
            params.emplace_back(fmt::format("TagSpecification.1.Tag.{}.Value", n), v);
            ++n;
        }
    }
    HSDK_TRY(auto body, query("CreateSnapshots", params, "EC2 CreateSnapshots of " + instance_id));
    HSDK_TRY(auto doc, parse_answer(body, "EC2 CreateSnapshots answer"));
    std::vector<Ec2Snapshot> out;
    if (const auto *set = doc.child("snapshotSet"))
        for (const auto *s : set->children_named("item")) out.push_back(snapshot_of(*s));
    return out;
}

Result<void> Ec2::delete_snapshot(const std::string &id) {
    HSDK_TRY(auto body, query("DeleteSnapshot", {{"SnapshotId", id}}, "EC2 DeleteSnapshot " + id));
    (void)body;
    return success();
}

Result<std::pair<int, std::uint64_t>> Ec2::instance_type_size(const std::string &type) {
    HSDK_TRY(auto body, query("DescribeInstanceTypes", {{"InstanceType.1", type}}, "EC2 DescribeInstanceTypes " + type));
    HSDK_TRY(auto doc, parse_answer(body, "EC2 DescribeInstanceTypes answer"));
    if (const auto *set = doc.child("instanceTypeSet"))
        for (const auto *t : set->children_named("item")) {
            const auto *cpu = t->child("vCpuInfo");
            const auto *mem = t->child("memoryInfo");
            if (cpu != nullptr && mem != nullptr)
                return std::pair<int, std::uint64_t>{std::atoi(cpu->child_text("defaultVCpus").c_str()),
                                                     number(mem->child_text("sizeInMiB"))};
        }
    return fail(Errc::not_found, fmt::format("EC2 does not know instance type '{}'", type));
}

Result<Ec2ExportTask> Ec2::create_instance_export_task(const std::string &instance_id, const std::string &bucket,
                                                       const std::string &prefix, const std::string &disk_image_format,
                                                       const std::string &target_environment) {
    std::vector<std::pair<std::string, std::string>> params{{"InstanceId", instance_id},
                                                            {"TargetEnvironment", target_environment},
                                                            {"ExportToS3.DiskImageFormat", disk_image_format},
                                                            {"ExportToS3.S3Bucket", bucket},
                                                            {"Description", "libhypersdk export"}};
    if (!prefix.empty()) params.emplace_back("ExportToS3.S3Prefix", prefix);
    HSDK_TRY(auto body, query("CreateInstanceExportTask", params, "EC2 CreateInstanceExportTask of " + instance_id));
    HSDK_TRY(auto doc, parse_answer(body, "EC2 CreateInstanceExportTask answer"));
    const auto *task = doc.child("exportTask");
    if (task == nullptr) return fail(Errc::remote_error, "EC2 CreateInstanceExportTask answered without an exportTask");
    return export_task_of(*task);
}

Result<Ec2ExportTask> Ec2::describe_export_task(const std::string &id) {
    HSDK_TRY(auto body, query("DescribeExportTasks", {{"ExportTaskId.1", id}}, "EC2 DescribeExportTasks " + id));
    HSDK_TRY(auto doc, parse_answer(body, "EC2 DescribeExportTasks answer"));
    if (const auto *set = doc.child("exportTaskSet"))
        for (const auto *t : set->children_named("item"))
            if (t->child_text("exportTaskId") == id) return export_task_of(*t);
    return fail(Errc::not_found, fmt::format("EC2 export task {} is gone", id));
}

Result<void> Ec2::cancel_export_task(const std::string &id) {
    HSDK_TRY(auto body, query("CancelExportTask", {{"ExportTaskId", id}}, "EC2 CancelExportTask " + id));
    (void)body;
    return success();
}

std::pair<int, std::uint64_t> known_instance_size(const std::string &type) {
    const auto dot = type.find('.');
    if (dot == std::string::npos) return {0, 0};
    const std::string family = type.substr(0, dot), size = type.substr(dot + 1);
    // Burstable families have their own table.
    struct Row { const char *size; int cpus; std::uint64_t mib; };
    static const Row t3[] = {{"nano", 2, 512}, {"micro", 2, 1024}, {"small", 2, 2048}, {"medium", 2, 4096},
                             {"large", 2, 8192}, {"xlarge", 4, 16384}, {"2xlarge", 8, 32768}};
    static const Row t2[] = {{"nano", 1, 512}, {"micro", 1, 1024}, {"small", 1, 2048}, {"medium", 2, 4096},
                             {"large", 2, 8192}, {"xlarge", 4, 16384}, {"2xlarge", 8, 32768}};
    if (family == "t3" || family == "t3a" || family == "t4g" || family == "t2") {
        for (const auto &r : family == "t2" ? std::span<const Row>(t2) : std::span<const Row>(t3))
            if (size == r.size) return {r.cpus, r.mib};
        return {0, 0};
    }
    // General purpose 4 GiB per vCPU, compute 2, memory 8; sizes large = 2 vCPUs, xlarge = 4,
    // Nxlarge = 4N, medium = 1 (Graviton).
    std::uint64_t per_cpu = 0;
    const char k = family.empty() ? 0 : family[0];
    if (family.size() >= 2 && std::isdigit(static_cast<unsigned char>(family[1]))) {
        if (k == 'm') per_cpu = 4096;
        else if (k == 'c') per_cpu = 2048;
        else if (k == 'r') per_cpu = 8192;
    }
    if (per_cpu == 0) return {0, 0};
    int cpus = 0;
    if (size == "medium") cpus = 1;
    else if (size == "large") cpus = 2;
    else if (size == "xlarge") cpus = 4;
    else if (size.size() > 6 && size.compare(size.size() - 6, 6, "xlarge") == 0) cpus = 4 * std::atoi(size.c_str());
    if (cpus <= 0) return {0, 0};
    return {cpus, per_cpu * static_cast<std::uint64_t>(cpus)};
}

}  // namespace hypersdk::cloud::aws
