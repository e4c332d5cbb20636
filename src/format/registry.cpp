// The driver list: probing picks the highest score; raw is never guessed.
#include "format/layer.hpp"
#include "format/drivers.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace hypersdk::format {

const std::vector<const Driver *> &drivers() {
    static const std::vector<const Driver *> list = {
        &raw_driver(),
        &qcow2_driver(),
        &vhdx_driver(),
        &vhd_driver(),
        &vdi_driver(),
        &vmdk_driver(),
    };
    return list;
}

const Driver *find_driver(std::string_view name) {
    for (const auto *d : drivers()) {
        if (d->name == name) return d;
        if (std::find(d->aliases.begin(), d->aliases.end(), name) != d->aliases.end()) return d;
    }
    return nullptr;
}

namespace {

Result<const Driver *> probe_driver(const io::Source &file, std::uint64_t size) {
    std::vector<std::byte> head(static_cast<std::size_t>(std::min<std::uint64_t>(size, 64 * 1024)));
    HSDK_TRYV(file.read_exact(0, head));
    std::vector<std::byte> tail(static_cast<std::size_t>(std::min<std::uint64_t>(size, 512)));
    HSDK_TRYV(file.read_exact(size - tail.size(), tail));
    const Driver *best = nullptr;
    int best_score = 0;
    for (const auto *d : drivers()) {
        int score = d->probe ? d->probe(head, size) : 0;
        if (d->probe_tail) score = std::max(score, d->probe_tail(tail, size));
        if (score > best_score) {
            best = d;
            best_score = score;
        }
    }
    if (best == nullptr)
        return fail(Errc::unsupported,
                    fmt::format("cannot determine the format of '{}': no known signature (raw is never guessed: name "
                                "its format, raw, to read it as raw data)",
                                file.path()));
    return best;
}

}  // namespace

Result<std::unique_ptr<Layer>> open_layer(const std::string &path, const std::string &format, const OpenOptions &options) {
    HSDK_TRY(auto source, open_byte_source(path, options.http));
    return open_layer_source(io::Source(std::move(source)), format, options);
}

Result<std::unique_ptr<Layer>> open_layer_source(io::Source file, const std::string &format, const OpenOptions &options) {
    const std::string path = file.path();
    const std::uint64_t size = file.size();
    const Driver *driver = nullptr;
    // A source that says what its bytes are (an EBS snapshot: a raw volume) needs no probing.
    const std::string native = format.empty() ? file.source().native_format() : std::string();
    if (!native.empty()) {
        driver = find_driver(native);
        if (driver == nullptr) return fail(Errc::internal, fmt::format("'{}' is {}, which no driver reads", path, native));
    } else if (format.empty()) {
        HSDK_TRY(auto probed, probe_driver(file, size));
        driver = probed;
    } else {
        driver = find_driver(format);
        if (driver == nullptr) return fail(Errc::invalid_argument, fmt::format("unknown image format '{}'", format));
    }
    OpenRequest req{path, std::move(file), size, &options};
    auto layer = driver->open(std::move(req));
    if (!layer) return fail(layer.error().with_context(fmt::format("'{}' ({})", path, driver->name)));
    return std::move(layer).value();
}

}  // namespace hypersdk::format

namespace hypersdk {

Result<std::string> probe_format(const std::string &path, const HttpSourceOptions &http) {
    HSDK_TRY(auto source, open_byte_source(path, http));
    if (auto native = source->native_format(); !native.empty()) return native;
    const io::Source file(std::move(source));
    HSDK_TRY(auto driver, format::probe_driver(file, file.size()));
    return std::string(driver->name);
}

std::vector<std::string> readable_formats() {
    std::vector<std::string> names;
    for (const auto *d : format::drivers())
        if (d->open) names.emplace_back(d->name);
    return names;
}

std::vector<std::string> writable_formats() {
    std::vector<std::string> names;
    for (const auto *d : format::drivers())
        if (d->create) names.emplace_back(d->name);
    return names;
}

std::optional<std::string> canonical_format_name(std::string_view name) {
    const auto *d = format::find_driver(name);
    if (d == nullptr) return std::nullopt;
    return std::string(d->name);
}

}  // namespace hypersdk
