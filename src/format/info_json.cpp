#include <hypersdk/disk.hpp>

#include <iterator>

namespace hypersdk {

nlohmann::json to_json(const ImageInfo &info) {
    nlohmann::json j;
    j["filename"] = info.filename;
    j["format"] = info.format;
    if (!info.subformat.empty()) j["subformat"] = info.subformat;
    j["virtual-size"] = info.virtual_size;
    if (info.actual_size_known) j["actual-size"] = info.actual_size;  // as qemu-img: absent when unknown
    if (info.cluster_size) j["cluster-size"] = *info.cluster_size;
    if (!info.backing_filename.empty()) j["backing-filename"] = info.backing_filename;
    if (!info.backing_format.empty()) j["backing-filename-format"] = info.backing_format;
    j["dirty-flag"] = info.dirty;
    j["files"] = info.files;
    if (!info.format_specific.empty()) j["format-specific"] = {{"type", info.format}, {"data", info.format_specific}};
    return j;
}

nlohmann::json chain_to_json(const std::vector<ImageInfo> &chain) {
    nlohmann::json result;
    for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
        auto j = to_json(*it);
        // The backing file as opened: its path joined to the image's folder (qemu's full-backing-filename).
        if (it != chain.rbegin()) j["full-backing-filename"] = std::prev(it)->filename;
        if (!result.is_null()) j["backing-image"] = std::move(result);
        result = std::move(j);
    }
    return result;
}

}  // namespace hypersdk
