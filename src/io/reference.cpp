#include "io/reference.hpp"

#include "io/atomic_output.hpp"
#include "io/file.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <memory>

namespace hypersdk::io {

Result<std::string> canonical_path(const std::string &path) {
    std::unique_ptr<char, decltype(&std::free)> resolved(::realpath(path.c_str(), nullptr), &std::free);
    if (!resolved) return fail(errno_error(errno, "cannot resolve", path));
    return std::string(resolved.get());
}

namespace {
bool has_dotdot_component(const std::string &p) {
    std::size_t start = 0;
    while (start <= p.size()) {
        const std::size_t slash = p.find('/', start);
        const std::size_t end = slash == std::string::npos ? p.size() : slash;
        if (p.compare(start, end - start, "..") == 0 && end - start == 2) return true;
        if (slash == std::string::npos) break;
        start = slash + 1;
    }
    return false;
}
}  // namespace

Result<void> check_reference(const std::string &reference, bool allow_external, std::string_view what) {
    if (reference.empty()) return fail_corrupt(fmt::format("{} reference is empty", what));
    if (reference.find('\0') != std::string::npos) return fail_corrupt(fmt::format("{} reference contains a NUL byte", what));
    if (allow_external) return success();
    if (reference.front() == '/')
        return fail(Errc::permission_denied,
                    fmt::format("{} '{}' is an absolute path; refusing to follow it out of the image's folder "
                                "(allow external files to override)",
                                what, reference));
    if (has_dotdot_component(reference))
        return fail(Errc::permission_denied,
                    fmt::format("{} '{}' climbs out of the image's folder with '..'; refusing to follow it "
                                "(allow external files to override)",
                                what, reference));
    if (reference.find("://") != std::string::npos || reference.rfind("json:", 0) == 0)
        return fail(Errc::permission_denied, fmt::format("{} '{}' is not a plain file name", what, reference));
    return success();
}

Result<std::string> resolve_reference(const std::string &image_path, const std::string &reference, bool allow_external,
                                      std::string_view what) {
    HSDK_TRYV(check_reference(reference, allow_external, what));
    const bool absolute = reference.front() == '/';
    const std::string folder = parent_folder(image_path);
    // Joined as qemu joins them: a bare image name keeps the reference as it is ("d.qcow2", not
    // "./d.qcow2"), so the resolved name is what qemu-img info calls full-backing-filename.
    std::string resolved = absolute || image_path.find('/') == std::string::npos ? reference
                           : folder == "/"                                       ? "/" + reference
                                                                                 : folder + "/" + reference;
    if (!allow_external) {
        // A symlink inside the folder must not lead out of it either.
        HSDK_TRY(auto real_folder, canonical_path(folder));
        auto real_target = canonical_path(resolved);
        if (!real_target) {
            if (real_target.error().code == Errc::not_found)
                return fail(Errc::not_found, fmt::format("{} '{}' not found (looked for '{}')", what, reference, resolved));
            return fail(real_target.error());
        }
        const std::string &t = real_target.value();
        if (t.compare(0, real_folder.size(), real_folder) != 0 || (t.size() > real_folder.size() && real_folder != "/" && t[real_folder.size()] != '/'))
            return fail(Errc::permission_denied,
                        fmt::format("{} '{}' resolves to '{}', outside the image's folder; refusing to follow it", what,
                                    reference, t));
    }
    return resolved;
}

}  // namespace hypersdk::io
