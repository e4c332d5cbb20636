// EC2's query API (2016-11-15): the calls an export needs - instances, volumes, snapshots (made
// per instance, crash-consistent, tagged), export tasks - each paged where EC2 pages.
#pragma once

#include "cloud/aws/client.hpp"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace hypersdk::cloud::aws {

struct Ec2BlockDevice {
    std::string device;  // /dev/xvda
    std::string volume_id;
};

struct Ec2NetworkInterface {
    std::string id, mac, private_ip, subnet_id, vpc_id;
    int device_index = 0;
};

struct Ec2Instance {
    std::string id, name, type, state, availability_zone, root_device_name, boot_mode, architecture, platform;
    std::vector<Ec2BlockDevice> block_devices;
    std::vector<Ec2NetworkInterface> interfaces;
    std::map<std::string, std::string> tags;
};

struct Ec2Volume {
    std::string id, snapshot_id, type, state, availability_zone;
    std::uint64_t size_gib = 0;
    bool encrypted = false;
};

struct Ec2Snapshot {
    std::string id, volume_id, state, progress, start_time, description, state_message;
    std::uint64_t volume_size_gib = 0;
    std::map<std::string, std::string> tags;
};

struct Ec2ExportTask {
    std::string id, state, status_message, instance_id, bucket, key, disk_image_format;
};

class Ec2 {
public:
    explicit Ec2(Client &client) : client_(client) {}

    // Every instance (no ids) or the named ones; paged.
    Result<std::vector<Ec2Instance>> describe_instances(const std::vector<std::string> &ids = {});
    Result<std::vector<Ec2Volume>> describe_volumes(const std::vector<std::string> &ids);
    // The named snapshots, or (no ids) our own snapshots carrying tag key=value.
    Result<std::vector<Ec2Snapshot>> describe_snapshots(const std::vector<std::string> &ids,
                                                        const std::pair<std::string, std::string> &tag = {});
    // Crash-consistent snapshots of every EBS volume of the instance, tagged.
    Result<std::vector<Ec2Snapshot>> create_snapshots(const std::string &instance_id, const std::string &description,
                                                      const std::map<std::string, std::string> &tags);
    Result<void> delete_snapshot(const std::string &id);
    // vCPUs and memory of an instance type, from DescribeInstanceTypes.
    Result<std::pair<int, std::uint64_t>> instance_type_size(const std::string &type);
    Result<Ec2ExportTask> create_instance_export_task(const std::string &instance_id, const std::string &bucket,
                                                      const std::string &prefix, const std::string &disk_image_format,
                                                      const std::string &target_environment);
    Result<Ec2ExportTask> describe_export_task(const std::string &id);
    Result<void> cancel_export_task(const std::string &id);

private:
    Result<std::string> query(const std::string &action, std::vector<std::pair<std::string, std::string>> params,
                              const std::string &what);
    Client &client_;
};

// vCPUs and MiB of the common instance families (t2, t3, t3a, t4g, m5..m7, c5..c7, r5..r7 and
// their variants), without asking; {0, 0} for others.
std::pair<int, std::uint64_t> known_instance_size(const std::string &type);

}  // namespace hypersdk::cloud::aws
