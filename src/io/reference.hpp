// Resolving references between image files (backing files, VMDK extents, qcow2 data files)
// without letting a hostile image point at files outside its own folder.
#pragma once

#include <hypersdk/error.hpp>

#include <string>

namespace hypersdk::io {

// Resolves `reference` (as written inside the image at `image_path`) relative to the image's folder.
// Unless allow_external: an absolute path, a ".." component, or a result that leaves the image's folder
// through a symlink is refused with permission_denied, naming the reference (OSSA-2024-001).
Result<std::string> resolve_reference(const std::string &image_path, const std::string &reference, bool allow_external,
                                      std::string_view what);

// The checks every reference passes unless external files are allowed: not empty, no NUL, not
// absolute, no ".." component, not a URL or a json: description.
Result<void> check_reference(const std::string &reference, bool allow_external, std::string_view what);

// Canonical absolute path of an existing file (for detecting loops in backing chains).
Result<std::string> canonical_path(const std::string &path);

}  // namespace hypersdk::io
