// Format probing, conversion (progress + cancel), comparison and checking.
#include "image.hpp"
#include "progress.hpp"
#include "string_worker.hpp"
#include "values.hpp"
#include "worker.hpp"

namespace hsdk_node {
namespace {

Napi::Value probe_format(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    std::string path = string_value(env, info[0], "path");
    return (new StringWorker(env, "hypersdk.probeFormat",
                             [path](char **out) { return hsdk_probe_format(out, path.c_str()); }))
        ->Start();
}

Napi::Value check(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    std::string path = string_value(env, info[0], "path");
    OpenOptions o = open_options_from(env, info[1]);
    return (new StringWorker(env, "hypersdk.check",
                             [path, o](char **out) {
                                 hsdk_open_options co = HSDK_OPEN_OPTIONS_INIT;
                                 co.format = c_str_or_null(o.format);
                                 co.allow_external_files = o.allow_external_files ? 1 : 0;
                                 co.open_backing = o.open_backing ? 1 : 0;
                                 return hsdk_check_json(out, path.c_str(), &co);
                             }))
        ->Start();
}

struct ConvertRequest {
    std::string source;
    std::string destination;
    std::string output_format;
    std::optional<std::string> options;  // "k=v,..." as qemu-img -o
    bool compress = false;
    unsigned threads = 0;
    bool overwrite = true;
    std::optional<std::string> cache;  // "none", "writeback", "unsafe"
    OpenOptions source_options;
};

class ConvertWorker : public PromiseWorker {
public:
    ConvertWorker(Napi::Env env, ConvertRequest request, CancelHandle cancel, std::shared_ptr<ProgressBridge> progress)
        : PromiseWorker(env, "hypersdk.convert"),
          request_(std::move(request)),
          cancel_(std::move(cancel)),
          progress_(std::move(progress)) {}

private:
    hsdk_status Run() override {
        hsdk_open_options so = HSDK_OPEN_OPTIONS_INIT;
        so.format = c_str_or_null(request_.source_options.format);
        so.allow_external_files = request_.source_options.allow_external_files ? 1 : 0;
        so.open_backing = request_.source_options.open_backing ? 1 : 0;
        hsdk_convert_options co = HSDK_CONVERT_OPTIONS_INIT;
        co.output_format = request_.output_format.c_str();
        co.options = c_str_or_null(request_.options);
        co.compress = request_.compress ? 1 : 0;
        co.threads = request_.threads;
        co.overwrite = request_.overwrite ? 1 : 0;
        co.cache = c_str_or_null(request_.cache);
        co.cancel = cancel_.get();
        if (progress_) {
            co.progress = &ProgressBridge::Callback;
            co.progress_user_data = progress_.get();
        }
        stats_.struct_size = sizeof stats_;
        return hsdk_convert(&stats_, request_.source.c_str(), &so, request_.destination.c_str(), &co);
    }

    void Finish() override {
        if (progress_) progress_->Release();
    }

    Napi::Value CallbackException(Napi::Env env) override { return progress_ ? progress_->Thrown(env) : Napi::Value(); }

    Napi::Value Result(Napi::Env env) override {
        Napi::Object o = Napi::Object::New(env);
        o.Set("virtualSize", u64_number(env, stats_.virtual_size));
        o.Set("bytesRead", u64_number(env, stats_.bytes_read));
        o.Set("bytesWritten", u64_number(env, stats_.bytes_written));
        o.Set("outputSize", u64_number(env, stats_.output_size));
        o.Set("seconds", Napi::Number::New(env, stats_.seconds));
        return o;
    }

    ConvertRequest request_;
    CancelHandle cancel_;
    std::shared_ptr<ProgressBridge> progress_;
    hsdk_convert_stats stats_{};
};

// convert(source, destination, {outputFormat, options, compress, threads, overwrite, cache,
//         sourceFormat, allowExternalFiles, onProgress, cancel})
Napi::Value convert(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    ConvertRequest r;
    r.source = string_value(env, info[0], "source");
    r.destination = string_value(env, info[1], "destination");
    if (!info[2].IsObject()) throw_invalid_argument(env, "convert options must be an object");
    Napi::Object o = info[2].As<Napi::Object>();
    r.output_format = string_value(env, o.Get("outputFormat"), "outputFormat");
    r.options = optional_string(env, o, "options");
    r.compress = bool_value(o, "compress", false);
    const std::uint64_t threads = o.Get("threads").IsUndefined() ? 0 : u64_value(env, o.Get("threads"), "threads");
    if (threads > 4096) throw_invalid_argument(env, "threads must be at most 4096");
    r.threads = static_cast<unsigned>(threads);
    r.overwrite = bool_value(o, "overwrite", true);
    r.cache = optional_string(env, o, "cache");
    r.source_options.format = optional_string(env, o, "sourceFormat");
    r.source_options.allow_external_files = bool_value(o, "allowExternalFiles", false);
    CancelHandle cancel = cancel_handle_from(env, o.Get("cancel"));
    std::shared_ptr<ProgressBridge> progress;
    Napi::Value on_progress = o.Get("onProgress");
    if (on_progress.IsFunction()) {
        progress = ProgressBridge::Create(env, on_progress.As<Napi::Function>(), cancel);
    } else if (!on_progress.IsUndefined() && !on_progress.IsNull()) {
        throw_invalid_argument(env, "onProgress must be a function");
    }
    return (new ConvertWorker(env, std::move(r), std::move(cancel), std::move(progress)))->Start();
}

class CompareWorker : public PromiseWorker {
public:
    CompareWorker(Napi::Env env, std::string a, OpenOptions ao, std::string b, OpenOptions bo, bool strict)
        : PromiseWorker(env, "hypersdk.compare"),
          a_(std::move(a)),
          b_(std::move(b)),
          ao_(std::move(ao)),
          bo_(std::move(bo)),
          strict_(strict) {}

private:
    hsdk_status Run() override {
        hsdk_status status = HSDK_OK;
        ImageHandle a = open_image_handle(a_, ao_, status);
        if (status != HSDK_OK) return status;
        ImageHandle b = open_image_handle(b_, bo_, status);
        if (status != HSDK_OK) return status;
        int identical = 0;
        status = hsdk_compare(&identical, &first_difference_, a.get(), b.get(), strict_ ? 1 : 0);
        identical_ = identical != 0;
        return status;
    }

    Napi::Value Result(Napi::Env env) override {
        Napi::Object o = Napi::Object::New(env);
        o.Set("identical", Napi::Boolean::New(env, identical_));
        o.Set("firstDifference", identical_ ? env.Null() : u64_number(env, first_difference_));
        return o;
    }

    std::string a_, b_;
    OpenOptions ao_, bo_;
    bool strict_;
    bool identical_ = false;
    std::uint64_t first_difference_ = 0;
};

// compare(a, b, {format}, {format}, strict)
Napi::Value compare(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    std::string a = string_value(env, info[0], "a");
    std::string b = string_value(env, info[1], "b");
    OpenOptions ao = open_options_from(env, info[2]);
    OpenOptions bo = open_options_from(env, info[3]);
    const bool strict = info[4].ToBoolean().Value();
    return (new CompareWorker(env, std::move(a), std::move(ao), std::move(b), std::move(bo), strict))->Start();
}

}  // namespace

void init_convert(Napi::Env env, Napi::Object exports) {
    exports.Set("probeFormat", Napi::Function::New(env, probe_format, "probeFormat"));
    exports.Set("convert", Napi::Function::New(env, convert, "convert"));
    exports.Set("compare", Napi::Function::New(env, compare, "compare"));
    exports.Set("check", Napi::Function::New(env, check, "check"));
}

}  // namespace hsdk_node
