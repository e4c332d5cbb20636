// Exports of Compute Engine instances: an image of each disk (labelled as ours), a Cloud Build run
// of Google's gce_vm_image_export writing it to the bucket (a tar.gz holding disk.raw, or the
// format asked for), then the object read while it streams. Running builds are cancelled, and
// objects and images of ours deleted (unless kept), after success, failure or cancel alike.
#include "providers/gcp/session.hpp"

#include "core/json_fields.hpp"

#include <hypersdk/log.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>

namespace hypersdk::gcp {
namespace {

using json = nlohmann::json;
using json_fields::str;

// Image names: [a-z]([-a-z0-9]{0,61}[a-z0-9])?
std::string image_name(const std::string &instance, std::size_t index) {
    std::string clean;
    for (char c : instance) {
        const char l = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        clean += (l >= 'a' && l <= 'z') || (l >= '0' && l <= '9') ? l : '-';
    }
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    std::string name = fmt::format("hsdk-{}-d{}-{}", clean.substr(0, 30), index, ms);
    while (name.size() > 63 || name.back() == '-') name.pop_back();
    return name;
}

std::string object_extension(const std::string &format) {
    if (format.empty()) return ".tar.gz";
    if (format == "vpc") return ".vhd";
    return "." + format;
}

std::string reader_format(const std::string &format) {
    if (format.empty()) return "raw";
    if (format == "vpc") return "vhd";
    return format;
}

// Images, builds and objects an export made, released once.
class Held {
public:
    Held(GcpSession &session) : session_(session) {}
    std::vector<std::string> images, objects, builds;

    // Cancels the builds still running; deletes the objects and images unless `keep`.
    std::vector<std::string> release(bool keep) noexcept {
        if (done_) return {};
        done_ = true;
        std::vector<std::string> notes;
        auto api = session_.api()->with_cancel(CancelToken{});  // clean-up runs after a cancel too
        for (const auto &id : builds) {
            auto b = api->cloudbuild("GET", "/builds/" + id, nullptr, "Cloud Build get " + id);
            const std::string status = b ? str(b.value(), "status") : std::string();
            if (status == "QUEUED" || status == "WORKING" || status == "PENDING") {
                if (auto c = api->cloudbuild("POST", "/builds/" + id + ":cancel", json::object(), "Cloud Build cancel " + id); !c)
                    notes.push_back(fmt::format("build {} could not be cancelled ({}); cancel it yourself", id, c.error().message));
            }
        }
        if (keep) return notes;
        for (const auto &o : objects)
            if (auto d = api->delete_object(session_.settings().bucket, o); !d && d.error().code != Errc::not_found)
                notes.push_back(fmt::format("object gs://{}/{} could not be deleted ({}); delete it yourself", session_.settings().bucket, o,
                                            d.error().message));
        for (const auto &name : images) {
            auto op = api->compute("DELETE", "/global/images/" + name, nullptr, "Compute delete image " + name);
            if (op) op = api->wait_operation(op.value(), "Compute delete image " + name);
            if (!op && op.error().code != Errc::not_found)
                notes.push_back(fmt::format("image {} could not be deleted ({}); delete it yourself", name, op.error().message));
        }
        return notes;
    }
    [[nodiscard]] bool done() const { return done_; }

private:
    GcpSession &session_;
    bool done_ = false;
};

class ImageExport final : public PreparedExport {
public:
    ImageExport(GcpSession &session, VirtualMachine vm, std::vector<ExportDisk> disks, std::unique_ptr<Held> held)
        : session_(session), vm_(std::move(vm)), disks_(std::move(disks)), held_(std::move(held)) {}
    ~ImageExport() override {
        if (!held_->done()) (void)abort("the export was dropped");
    }
    const VirtualMachine &vm() const override { return vm_; }
    std::vector<ExportDisk> &disks() override { return disks_; }
    std::string method() const override {
        return session_.settings().export_format.empty() ? "image export (Cloud Build) to Cloud Storage, tar.gz streamed"
                                                          : "image export (Cloud Build) to Cloud Storage as " + session_.settings().export_format;
    }
    bool snapshot_used() const override { return true; }
    Result<void> complete() override {
        disks_.clear();  // the object streams end before their objects go
        for (const auto &n : held_->release(session_.settings().keep_exports)) log(LogLevel::warn, n);
        return success();
    }
    std::vector<std::string> abort(const std::string &) noexcept override {
        disks_.clear();
        return held_->release(false);
    }

private:
    GcpSession &session_;
    VirtualMachine vm_;
    std::vector<ExportDisk> disks_;
    std::unique_ptr<Held> held_;
};

}  // namespace

Result<std::unique_ptr<PreparedExport>> GcpSession::prepare_export(const std::string &, const VirtualMachine &described,
                                                                   const ExportPlan &plan) {
    if (settings_.bucket.empty())
        return fail(Errc::invalid_argument, "a GCP export writes through a Cloud Storage bucket: give 'bucket' in the config (--bucket)");
    auto held = std::make_unique<Held>(*this);
    auto give_up = [&](Error e) -> Result<std::unique_ptr<PreparedExport>> {
        for (const auto &n : held->release(false)) e.message += "; " + n;
        return fail(std::move(e));
    };
    auto api = api_->with_cancel(plan.cancel);
    const std::string instance = described.name;

    // Images of every disk first (forceCreate: the instance may be running), then their exports.
    std::vector<json> operations;
    for (std::size_t i = 0; i < described.disks.size(); ++i) {
        const auto &disk = described.disks[i];
        const std::string name = image_name(instance, i);
        if (plan.phase) plan.phase("image " + disk.label);
        json body{{"name", name},
                  {"sourceDisk", disk.id},
                  {"description", fmt::format("libhypersdk export of {} ({})", instance, disk.label)},
                  {"labels", {{"created-by", "hypersdk"}, {"hsdk-purpose", "export"}}}};
        auto op = api->compute("POST", "/global/images?forceCreate=true", body, "Compute create image " + name);
        if (!op) return give_up(op.error());
        held->images.push_back(name);
        operations.push_back(std::move(op).value());
    }
    for (std::size_t i = 0; i < operations.size(); ++i)
        if (auto done = api->wait_operation(operations[i], "Compute create image " + held->images[i], plan.phase); !done)
            return give_up(done.error());

    std::vector<std::string> objects;
    for (std::size_t i = 0; i < held->images.size(); ++i) {
        const std::string &image = held->images[i];
        const std::string object = settings_.object_prefix + image + object_extension(settings_.export_format);
        json args = json::array({"-client_id=api", fmt::format("-timeout={}s", std::max<long>(60, settings_.build_timeout.count() - 200)),
                                 fmt::format("-source_image=projects/{}/global/images/{}", api_->project(), image),
                                 fmt::format("-destination_uri=gs://{}/{}", settings_.bucket, object)});
        if (!settings_.export_format.empty()) args.push_back("-format=" + settings_.export_format);
        json body{{"steps", json::array({json{{"name", export_step_image}, {"args", args}}})},
                  {"timeout", fmt::format("{}s", settings_.build_timeout.count())},
                  {"tags", json::array({"gce-daisy", "gce-daisy-image-export"})}};
        if (plan.phase) plan.phase("export " + described.disks[i].label + " to gs://" + settings_.bucket + "/" + object);
        auto op = api->cloudbuild("POST", "/builds", body, "Cloud Build image export of " + image);
        if (!op) return give_up(op.error());
        const json &meta = op.value().value("metadata", json::object());
        const std::string id = meta.is_object() ? str(meta.value("build", json::object()), "id") : std::string();
        if (id.empty()) return give_up(Error{Errc::remote_error, fmt::format("Cloud Build gave no build id for the export of {}", image)});
        held->builds.push_back(id);
        held->objects.push_back(object);
        objects.push_back(object);
    }
    for (std::size_t i = 0; i < held->builds.size(); ++i)
        if (auto built = api->wait_build(held->builds[i], "image export of " + held->images[i], settings_.build_timeout, plan.phase); !built)
            return give_up(built.error());

    std::vector<ExportDisk> disks;
    for (std::size_t i = 0; i < objects.size(); ++i) {
        HttpSourceOptions http = settings_.http;
        http.cancel = plan.cancel;
        auto reading = std::shared_ptr<cloud::gcp::Api>(api_->with_cancel(plan.cancel));
        auto source = cloud::gcp::open_gcs_object(reading, settings_.bucket, objects[i], http);
        if (!source) return give_up(source.error());
        // Compute Engine's disk.raw is the whole disk: one of another size is a damaged export.
        if (settings_.export_format.empty() && source.value()->size() != described.disks[i].capacity_bytes)
            return give_up(Error{Errc::corrupt_image, fmt::format("gs://{}/{} holds a disk.raw of {} bytes, but {} is {} bytes: the export is "
                                                                  "damaged",
                                                                  settings_.bucket, objects[i], source.value()->size(), described.disks[i].label,
                                                                  described.disks[i].capacity_bytes)});
        ExportDisk d;
        d.blocks = std::move(source).value();
        d.requests_in_flight = 32;  // Cloud Storage documents no per-object read rate; latency is the limit
        d.format = reader_format(settings_.export_format);
        d.label = fmt::format("{} (gs://{}/{})", described.disks[i].label, settings_.bucket, objects[i]);
        d.identity = json{{"disk", described.disks[i].id}, {"object", fmt::format("gs://{}/{}", settings_.bucket, objects[i])}};
        disks.push_back(std::move(d));
    }
    return std::unique_ptr<PreparedExport>(new ImageExport(*this, described, std::move(disks), std::move(held)));
}

}  // namespace hypersdk::gcp
