// chain_info and verify_chain: a chain of images seen link by link.
#include "export/backup_state.hpp"

#include "io/artifact_crypto.hpp"
#include "io/atomic_output.hpp"
#include "io/reference.hpp"

#include <hypersdk/backup.hpp>
#include <hypersdk/hash.hpp>

#include <fmt/format.h>

#include <filesystem>
#include <map>
#include <set>
#include <sys/stat.h>

namespace hypersdk {
namespace {

constexpr std::size_t max_links = 1000;

ChainLink link_of(const ImageInfo &info) {
    return ChainLink{info.filename, info.format, info.virtual_size, info.actual_size, info.backing_filename, info.backing_format};
}

std::string folder_of(const std::string &path) {
    const auto slash = path.rfind('/');
    return slash == std::string::npos ? std::string(".") : path.substr(0, slash == 0 ? 1 : slash);
}

// The SHA-256 each link file of a repository folder was recorded with (its latest record).
std::map<std::string, std::string> recorded_hashes(const std::string &folder) {
    std::map<std::string, std::string> out;
    auto st = backup::load_state(folder);
    if (!st || !st.value()) return out;
    for (const auto &p : st.value()->points)
        for (const auto &d : p.disks)
            if (!d.sha256.empty()) out[d.file] = d.sha256;
    return out;
}

}  // namespace

Result<std::vector<ChainLink>> chain_info(const std::string &link, const OpenOptions &options) {
    HSDK_TRY(auto image, open_image(link, options));
    std::vector<ChainLink> out;
    for (const auto &info : image->chain_info()) out.push_back(link_of(info));
    return out;
}

Result<ChainReport> verify_chain(const std::string &link, const CancelToken &cancel) { return verify_chain(link, cancel, DecryptionKeys{}); }

Result<ChainReport> verify_chain(const std::string &link, const CancelToken &cancel, const DecryptionKeys &keys) {
    HttpSourceOptions keyed;
    io::apply_decryption_keys(keyed, keys);
    ChainReport report;
    std::set<std::string> seen;
    std::map<std::string, std::map<std::string, std::string>> hashes_by_folder;
    std::string file = link, expected_format;
    std::optional<std::uint64_t> size;
    for (std::size_t depth = 0;; ++depth) {
        HSDK_TRYV(cancel.check());
        if (depth >= max_links) {
            report.problems.push_back(fmt::format("the chain is longer than {} links", max_links));
            break;
        }
        std::error_code ec;
        const std::string canonical = std::filesystem::weakly_canonical(file, ec).string();
        if (!seen.insert(ec ? file : canonical).second) {
            report.problems.push_back(fmt::format("'{}' appears twice in the chain (a loop)", file));
            break;
        }
        OpenOptions one;
        one.http = keyed;
        one.open_backing = false;
        one.format = expected_format == "raw" ? expected_format : std::string();  // probed, then compared
        auto image = open_image(file, one);
        if (!image) {
            if (depth == 0) return fail(image.error());
            report.problems.push_back(fmt::format("link {} ('{}') cannot be opened: {}", depth, file, image.error().message));
            break;
        }
        const ImageInfo info = image.value()->chain_info().front();
        report.links.push_back(link_of(info));
        if (!size) size = info.virtual_size;
        else if (info.virtual_size != *size)
            report.problems.push_back(fmt::format("link {} ('{}') has {} bytes but the top of the chain has {}: a delta must have the "
                                                  "size of its base",
                                                  depth, file, info.virtual_size, *size));
        if (!expected_format.empty() && info.format != expected_format)
            report.problems.push_back(fmt::format("'{}' is {} but its overlay says {}", file, info.format, expected_format));
        OpenOptions check_as;
        check_as.http = keyed;
        check_as.format = info.format;
        check_as.open_backing = false;
        if (auto checked = check_image(file, check_as); !checked) {
            report.problems.push_back(fmt::format("link {} ('{}'): {}", depth, file, checked.error().message));
        } else if (!checked.value().clean) {
            report.problems.push_back(fmt::format("link {} ('{}') has {} corruption(s) and {} leak(s){}", depth, file,
                                                  checked.value().corruptions, checked.value().leaks,
                                                  checked.value().messages.empty() ? "" : ": " + checked.value().messages.front()));
        }
        // The SHA-256 a repository recorded for this file.
        const std::string folder = folder_of(file);
        auto [it, fresh] = hashes_by_folder.try_emplace(folder);
        if (fresh) it->second = recorded_hashes(folder);
        const std::string name = io::base_name(file);
        if (auto h = it->second.find(name); h != it->second.end()) {
            auto digest = file_digest_hex(file, DigestAlgorithm::sha256, cancel);
            if (!digest) return fail(digest.error());
            if (digest.value() != h->second)
                report.problems.push_back(fmt::format("'{}' has SHA-256 {} but the repository recorded {}: the file changed since it "
                                                      "was written",
                                                      file, digest.value(), h->second));
            else
                ++report.hashes_checked;
        }
        if (info.backing_filename.empty()) break;
        auto next = io::resolve_reference(file, info.backing_filename, /*allow_external=*/false, "backing file");
        if (!next) {
            if (next.error().code == Errc::not_found)
                report.problems.push_back(fmt::format("link {} ('{}') names backing file '{}', which is missing", depth, file,
                                                      info.backing_filename));
            else
                report.problems.push_back(fmt::format("link {} ('{}') names backing file '{}': {}", depth, file, info.backing_filename,
                                                      next.error().message));
            break;
        }
        struct stat st {};
        if (::stat(next.value().c_str(), &st) != 0) {
            report.problems.push_back(fmt::format("link {} ('{}') names backing file '{}', which is missing", depth, file,
                                                  info.backing_filename));
            break;
        }
        file = next.value();
        expected_format.clear();
        if (!info.backing_format.empty()) {
            const auto canonical_format = canonical_format_name(info.backing_format);
            expected_format = canonical_format ? std::string(*canonical_format) : info.backing_format;
        }
    }
    return report;
}

}  // namespace hypersdk
