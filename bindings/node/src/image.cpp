// NativeImage: an hsdk_image opened read-only, and the workers that open, read and map it.
//
// The handle is shared between the JavaScript object and every operation in flight, so close()
// or garbage collection during a read frees it only when the read has finished.
#include "image.hpp"

#include "values.hpp"
#include "worker.hpp"

#include <vector>

namespace hsdk_node {

ImageHandle open_image_handle(const std::string &path, const OpenOptions &options, hsdk_status &status) {
    hsdk_open_options o = HSDK_OPEN_OPTIONS_INIT;
    o.format = c_str_or_null(options.format);
    o.allow_external_files = options.allow_external_files ? 1 : 0;
    o.open_backing = options.open_backing ? 1 : 0;
    hsdk_image *raw = nullptr;
    status = hsdk_image_open(&raw, path.c_str(), &o);
    return status == HSDK_OK ? ImageHandle(raw, hsdk_image_free) : ImageHandle();
}

OpenOptions open_options_from(Napi::Env env, const Napi::Value &value) {
    OpenOptions o;
    if (value.IsUndefined() || value.IsNull()) return o;
    if (!value.IsObject()) throw_invalid_argument(env, "open options must be an object");
    Napi::Object obj = value.As<Napi::Object>();
    o.format = optional_string(env, obj, "format");
    if (o.format && o.format->empty()) o.format.reset();
    o.allow_external_files = bool_value(obj, "allowExternalFiles", false);
    o.open_backing = bool_value(obj, "openBacking", true);
    return o;
}

namespace {

class NativeImage : public Napi::ObjectWrap<NativeImage> {
public:
    static Napi::Function Define(Napi::Env env) {
        return DefineClass(env, "NativeImage",
                           {InstanceAccessor<&NativeImage::VirtualSize>("virtualSize"),
                            InstanceAccessor<&NativeImage::Closed>("closed"),
                            InstanceMethod<&NativeImage::InfoJson>("infoJson"),
                            InstanceMethod<&NativeImage::ChainJson>("chainJson"),
                            InstanceMethod<&NativeImage::Read>("read"),
                            InstanceMethod<&NativeImage::BlockStatus>("blockStatus"),
                            InstanceMethod<&NativeImage::Close>("close")});
    }

    // Made empty (closed) by the constructor; an open worker fills it.
    explicit NativeImage(const Napi::CallbackInfo &info) : Napi::ObjectWrap<NativeImage>(info) {}

    void Adopt(ImageHandle handle, std::uint64_t virtual_size, std::string info_json, std::string chain_json) {
        handle_ = std::move(handle);
        virtual_size_ = virtual_size;
        info_json_ = std::move(info_json);
        chain_json_ = std::move(chain_json);
    }

private:
    const ImageHandle &Live(Napi::Env env) const {
        if (!handle_) throw_invalid_argument(env, "the image is closed");
        return handle_;
    }

    Napi::Value VirtualSize(const Napi::CallbackInfo &info) {
        Live(info.Env());
        return u64_number(info.Env(), virtual_size_);
    }

    Napi::Value Closed(const Napi::CallbackInfo &info) { return Napi::Boolean::New(info.Env(), !handle_); }

    Napi::Value InfoJson(const Napi::CallbackInfo &info) {
        Live(info.Env());
        return Napi::String::New(info.Env(), info_json_);
    }

    Napi::Value ChainJson(const Napi::CallbackInfo &info) {
        Live(info.Env());
        return Napi::String::New(info.Env(), chain_json_);
    }

    Napi::Value Close(const Napi::CallbackInfo &info) {
        handle_.reset();  // operations in flight keep their own reference
        return info.Env().Undefined();
    }

    Napi::Value Read(const Napi::CallbackInfo &info);
    Napi::Value BlockStatus(const Napi::CallbackInfo &info);

    ImageHandle handle_;
    std::uint64_t virtual_size_ = 0;
    std::string info_json_;
    std::string chain_json_;
};

class OpenWorker : public PromiseWorker {
public:
    OpenWorker(Napi::Env env, std::string path, OpenOptions options)
        : PromiseWorker(env, "hypersdk.openImage"), path_(std::move(path)), options_(std::move(options)) {}

private:
    hsdk_status Run() override {
        hsdk_status status = HSDK_OK;
        handle_ = open_image_handle(path_, options_, status);
        if (status != HSDK_OK) return status;
        virtual_size_ = hsdk_image_virtual_size(handle_.get());
        // Both descriptions are taken here, off the JavaScript thread, while the files are at hand.
        char *json = nullptr;
        if ((status = hsdk_image_info_json(&json, handle_.get(), 0)) != HSDK_OK) return status;
        info_json_ = take_string(json);
        if ((status = hsdk_image_info_json(&json, handle_.get(), 1)) != HSDK_OK) return status;
        chain_json_ = take_string(json);
        return HSDK_OK;
    }

    Napi::Value Result(Napi::Env env) override {
        Napi::Object obj = addon_data(env).image_class.New({});
        NativeImage::Unwrap(obj)->Adopt(std::move(handle_), virtual_size_, std::move(info_json_), std::move(chain_json_));
        return obj;
    }

    std::string path_;
    OpenOptions options_;
    ImageHandle handle_;
    std::uint64_t virtual_size_ = 0;
    std::string info_json_;
    std::string chain_json_;
};

// Fills a Buffer the JavaScript side allocated; the reference keeps its memory in place.
class ReadWorker : public PromiseWorker {
public:
    ReadWorker(Napi::Env env, ImageHandle image, std::uint64_t offset, Napi::Buffer<std::uint8_t> buffer)
        : PromiseWorker(env, "hypersdk.read"),
          image_(std::move(image)),
          offset_(offset),
          data_(buffer.Data()),
          length_(buffer.Length()),
          buffer_(Napi::Persistent(buffer.As<Napi::Value>())) {}

private:
    hsdk_status Run() override { return hsdk_image_read(image_.get(), offset_, data_, length_); }
    Napi::Value Result(Napi::Env) override { return buffer_.Value(); }

    ImageHandle image_;
    std::uint64_t offset_;
    std::uint8_t *data_;
    std::size_t length_;
    Napi::Reference<Napi::Value> buffer_;
};

class BlockStatusWorker : public PromiseWorker {
public:
    BlockStatusWorker(Napi::Env env, ImageHandle image, std::uint64_t offset, std::uint64_t length)
        : PromiseWorker(env, "hypersdk.blockStatus"), image_(std::move(image)), offset_(offset), length_(length) {}

private:
    hsdk_status Run() override {
        hsdk_extent *extents = nullptr;
        std::size_t count = 0;
        const hsdk_status status = hsdk_image_block_status(&extents, &count, image_.get(), offset_, length_);
        if (status != HSDK_OK) return status;
        extents_.assign(extents, extents + count);
        hsdk_extents_free(extents);
        return HSDK_OK;
    }

    Napi::Value Result(Napi::Env env) override {
        Napi::Array out = Napi::Array::New(env, extents_.size());
        for (std::size_t i = 0; i < extents_.size(); ++i) {
            const hsdk_extent &e = extents_[i];
            Napi::Object o = Napi::Object::New(env);
            o.Set("offset", u64_number(env, e.offset));
            o.Set("length", u64_number(env, e.length));
            const char *kind = e.kind == HSDK_EXTENT_DATA ? "data" : e.kind == HSDK_EXTENT_ZERO ? "zero" : e.kind == HSDK_EXTENT_HOLE ? "hole" : "unknown";
            o.Set("kind", Napi::String::New(env, kind));
            o.Set("depth", Napi::Number::New(env, e.depth));
            o.Set("hostOffset", e.host_offset == UINT64_MAX ? env.Null() : u64_number(env, e.host_offset));
            out.Set(static_cast<std::uint32_t>(i), o);
        }
        return out;
    }

    ImageHandle image_;
    std::uint64_t offset_;
    std::uint64_t length_;
    std::vector<hsdk_extent> extents_;
};

Napi::Value NativeImage::Read(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    const ImageHandle &image = Live(env);
    const std::uint64_t offset = u64_value(env, info[0], "offset");
    if (!info[1].IsBuffer()) throw_invalid_argument(env, "read needs a Buffer to fill");
    return (new ReadWorker(env, image, offset, info[1].As<Napi::Buffer<std::uint8_t>>()))->Start();
}

Napi::Value NativeImage::BlockStatus(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    const ImageHandle &image = Live(env);
    const std::uint64_t offset = u64_value(env, info[0], "offset");
    const std::uint64_t length = u64_value(env, info[1], "length");
    return (new BlockStatusWorker(env, image, offset, length))->Start();
}

Napi::Value open_image(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    std::string path = string_value(env, info[0], "path");
    OpenOptions options = open_options_from(env, info[1]);
    return (new OpenWorker(env, std::move(path), std::move(options)))->Start();
}

}  // namespace

void init_image(Napi::Env env, Napi::Object exports) {
    Napi::Function cls = NativeImage::Define(env);
    addon_data(env).image_class = Napi::Persistent(cls);
    exports.Set("openImage", Napi::Function::New(env, open_image, "openImage"));
}

}  // namespace hsdk_node
