// Exports of OpenStack servers: a Glance image of each disk (Nova createImage for an image-backed
// server's root disk, Cinder upload-to-image for each volume), waited for until active, then its
// data read into the target format (raw images streamed with md5 and os_hash_value verified).
// Images of ours are deleted afterwards unless kept, and always after a failure or cancel.
#include "providers/openstack/session.hpp"

#include "core/json_fields.hpp"

#include <hypersdk/log.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <chrono>

namespace hypersdk::openstack {
namespace {

using json = nlohmann::json;
using json_fields::str;
namespace http = io::http;

std::string image_name(const std::string &server, std::size_t index) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    return fmt::format("hsdk-export-{}-d{}-{}", server.substr(0, 60), index, ms);
}

class ImageExport final : public PreparedExport {
public:
    ImageExport(OpenStackSession &session, VirtualMachine vm, std::vector<ExportDisk> disks, std::vector<std::string> images)
        : session_(session), vm_(std::move(vm)), disks_(std::move(disks)), images_(std::move(images)) {}
    ~ImageExport() override {
        if (!done_) (void)abort("the export was dropped");
    }
    const VirtualMachine &vm() const override { return vm_; }
    std::vector<ExportDisk> &disks() override { return disks_; }
    std::string method() const override { return "Glance images (Nova createImage, Cinder upload-to-image)"; }
    bool snapshot_used() const override { return true; }
    Result<void> complete() override {
        disks_.clear();
        done_ = true;
        if (!session_.settings().keep_images)
            for (const auto &n : session_.delete_images(images_)) log(LogLevel::warn, n);
        return success();
    }
    std::vector<std::string> abort(const std::string &) noexcept override {
        disks_.clear();
        if (done_) return {};
        done_ = true;
        return session_.delete_images(images_);
    }

private:
    OpenStackSession &session_;
    VirtualMachine vm_;
    std::vector<ExportDisk> disks_;
    std::vector<std::string> images_;
    bool done_ = false;
};

}  // namespace

std::vector<std::string> OpenStackSession::delete_images(const std::vector<std::string> &ids) noexcept {
    std::vector<std::string> notes;
    if (ids.empty()) return notes;
    auto base = endpoint("image");
    if (!base) {
        notes.push_back(fmt::format("images {} could not be deleted ({}); delete them yourself", fmt::join(ids, ", "), base.error().message));
        return notes;
    }
    // Clean-up runs after a cancel too: a client of its own, not cancelled.
    cloud::RestSettings r = client_->settings();
    r.cancel = CancelToken{};
    auto cleanup = std::make_shared<cloud::RestClient>(r, [this](bool renew) { return client_->auth_headers(renew); }, cloud::openstack::openstack_error);
    for (const auto &id : ids)
        if (auto d = cleanup->send("DELETE", fmt::format("{}/v2/images/{}", base.value(), id), nullptr, "Glance delete image " + id);
            !d && d.error().code != Errc::not_found)
            notes.push_back(fmt::format("image {} could not be deleted ({}); delete it yourself", id, d.error().message));
    return notes;
}

Result<json> OpenStackSession::wait_active(const std::string &id, const std::string &what, const CancelToken &cancel) {
    HSDK_TRY(auto base, endpoint("image"));
    const auto deadline = std::chrono::steady_clock::now() + settings_.image_timeout;
    auto interval = std::min(settings_.poll_interval, std::chrono::milliseconds(500));
    for (;;) {
        auto got = client_->call("GET", fmt::format("{}/v2/images/{}", base, id), nullptr, what + " (image status)");
        if (!got) {
            if (got.error().code == Errc::not_found)
                return fail(Errc::remote_error, fmt::format("{}: image {} disappeared (deleted) before it became active", what, id));
            return fail(got.error());
        }
        const std::string status = str(got.value(), "status");
        if (status == "active") return got;
        if (status == "killed" || status == "deleted" || status == "pending_delete" || status == "deactivated")
            return fail(Errc::remote_error, fmt::format("{}: image {} ended {}", what, id, status));
        if (std::chrono::steady_clock::now() >= deadline)
            return fail(Errc::timeout, fmt::format("{}: image {} still {} after {} s", what, id, status, settings_.image_timeout.count()));
        HSDK_TRYV(cloud::sleep_for(interval, cancel));
        interval = std::min(interval * 2, std::max(settings_.poll_interval, std::chrono::milliseconds(500)));
    }
}

Result<std::unique_ptr<PreparedExport>> OpenStackSession::prepare_export(const std::string &, const VirtualMachine &described,
                                                                         const ExportPlan &plan) {
    std::vector<std::string> images;
    auto give_up = [&](Error e) -> Result<std::unique_ptr<PreparedExport>> {
        for (const auto &n : delete_images(images)) e.message += "; " + n;
        return fail(std::move(e));
    };
    for (std::size_t i = 0; i < described.disks.size(); ++i) {
        if (auto c = plan.cancel.check(); !c) return give_up(c.error());
        const VmDisk &disk = described.disks[i];
        const std::string name = image_name(described.name, i);
        if (plan.phase) plan.phase("image " + disk.label);
        std::string id;
        if (disk.id == "root") {
            json body{{"createImage", {{"name", name}, {"metadata", {{"hsdk_created_by", "hypersdk"}, {"hsdk_purpose", "export"}}}}}};
            HSDK_TRY(auto base, endpoint("compute"));
            auto sent = client_->send("POST", fmt::format("{}/servers/{}/action", base, described.id), body, "Nova createImage of " + described.name,
                                      {fmt::format("OpenStack-API-Version: compute {}", nova_microversion),
                                       fmt::format("X-OpenStack-Nova-API-Version: {}", nova_microversion)});
            if (!sent) return give_up(sent.error());
            auto answer = json::parse(sent.value().body, nullptr, false);
            id = str(answer, "image_id");
            if (id.empty()) {  // before 2.45: the image's URL in Location
                const std::string location = sent.value().header("Location");
                id = location.substr(location.rfind('/') + 1);
            }
        } else {
            HSDK_TRY(auto base, endpoint("volume"));
            json body{{"os-volume_upload_image", {{"image_name", name}, {"force", true}, {"disk_format", "raw"}, {"container_format", "bare"}}}};
            auto answer = client_->call("POST", fmt::format("{}/volumes/{}/action", base, disk.id), body, "Cinder upload-to-image of " + disk.label);
            if (!answer) return give_up(answer.error());
            id = str(answer.value().value("os-volume_upload_image", json::object()), "image_id");
        }
        if (id.empty()) return give_up(Error{Errc::remote_error, fmt::format("no image id came back for {}", disk.label)});
        images.push_back(id);
    }
    std::vector<ExportDisk> disks;
    HSDK_TRY(auto glance, endpoint("image"));
    for (std::size_t i = 0; i < images.size(); ++i) {
        const VmDisk &disk = described.disks[i];
        if (plan.phase) plan.phase(fmt::format("waiting for image {} of {}", images[i], disk.label));
        auto image = wait_active(images[i], "image of " + disk.label, plan.cancel);
        if (!image) return give_up(image.error());
        HttpSourceOptions http = settings_.http;
        http.cancel = plan.cancel;
        auto source = cloud::openstack::open_glance_image(client_, glance, image.value(), http);
        if (!source) return give_up(source.error());
        ExportDisk d;
        d.blocks = std::move(source).value();
        d.requests_in_flight = 8;  // one Glance API server answers them all
        const std::string fmt_name = str(image.value(), "disk_format");
        d.format = fmt_name.empty() || fmt_name == "raw" ? "raw" : fmt_name == "vhd" ? "vhd" : fmt_name;
        d.label = fmt::format("{} (image {})", disk.label, images[i]);
        d.identity = json{{"disk", disk.id}, {"image", images[i]}};
        disks.push_back(std::move(d));
    }
    return std::unique_ptr<PreparedExport>(new ImageExport(*this, described, std::move(disks), std::move(images)));
}

}  // namespace hypersdk::openstack
