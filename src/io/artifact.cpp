#include "io/artifact.hpp"

#include "io/artifact_crypto.hpp"
#include "io/compression.hpp"

#include <fmt/format.h>

#include <filesystem>
#include <random>
#include <sys/stat.h>
#include <unistd.h>

namespace hypersdk::io {
namespace {

Result<Compression> artifact_compression(const CompressionOptions &c) {
    if (c.empty()) return Compression::none;
    HSDK_TRY(auto method, parse_compression(c.method));
    const int max = method == Compression::gzip ? 9 : method == Compression::zstd ? 19 : 12;
    if (c.level < 0 || c.level > max)
        return fail(Errc::invalid_argument, fmt::format("compression level {} is out of range for {} (1..{}, 0: its default)", c.level, c.method, max));
    return method;
}

}  // namespace

Result<void> check_artifact_options(const CompressionOptions &compression, const EncryptionOptions *encryption) {
    HSDK_TRYV(artifact_compression(compression));
    if (encryption != nullptr) HSDK_TRYV(check_encryption(*encryption));
    return success();
}

std::string compressed_name(const std::string &path, const CompressionOptions &compression) {
    auto method = artifact_compression(compression);
    if (!method || method.value() == Compression::none) return path;
    const std::string suffix(compression_suffix(method.value()));
    if (path.size() >= suffix.size() && path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0) return path;
    return path + suffix;
}

Result<SealedFile> seal_file(const std::string &plain_path, const std::string &out_path, const CompressionOptions &compression,
                             const EncryptionOptions *encryption, bool overwrite) {
    HSDK_TRY(auto method, artifact_compression(compression));
    if (method == Compression::none && encryption == nullptr) return fail(Errc::internal, "seal_file: nothing to do");
    SealedFile out;
    if (encryption == nullptr) {
        HSDK_TRYV(compress_file(method, compression.level, plain_path, out_path, overwrite));
    } else if (method == Compression::none) {
        HSDK_TRY(out.encryption, encrypt_file_with(*encryption, plain_path, out_path, overwrite));
    } else {
        if (!overwrite && ::access(out_path.c_str(), F_OK) == 0)
            return fail(Errc::conflict, fmt::format("output '{}' already exists (overwrite not allowed)", out_path));
        // Compressed first under a hidden name beside the output (it still holds plaintext, so 0600),
        // then encrypted into the output; the intermediate goes whatever happens.
        const std::filesystem::path dest(out_path);
        std::random_device rd;
        const auto middle = dest.parent_path() / fmt::format(".{}.hsdk-compressed-{}-{:08x}", dest.filename().string(), ::getpid(), rd());
        struct Remove {
            std::string path;
            ~Remove() { ::unlink(path.c_str()); }
        } remove{middle.string()};
        HSDK_TRYV(compress_file(method, compression.level, plain_path, middle.string(), true));
        ::chmod(middle.c_str(), 0600);
        HSDK_TRY(out.encryption, encrypt_file_with(*encryption, middle.string(), out_path, overwrite));
    }
    struct stat st {};
    if (::stat(out_path.c_str(), &st) == 0) out.bytes = static_cast<std::uint64_t>(st.st_size);
    return out;
}

}  // namespace hypersdk::io
