// .mf manifests: "SHA256(file)= hex" lines (SHA1 and SHA512 too, as ovftool writes them).
#include <hypersdk/ovf.hpp>

#include "xml/xml_tree.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

namespace hypersdk {

Result<std::vector<ManifestEntry>> parse_manifest(std::string_view text, std::string_view what) {
    std::vector<ManifestEntry> out;
    std::size_t line_no = 0, pos = 0;
    while (pos < text.size()) {
        auto nl = text.find('\n', pos);
        if (nl == std::string_view::npos) nl = text.size();
        std::string line = xml::trim(text.substr(pos, nl - pos));
        pos = nl + 1;
        ++line_no;
        if (line.empty()) continue;
        const auto open = line.find('(');
        const auto close = line.rfind(")=");
        if (open == std::string::npos || close == std::string::npos || close < open)
            return fail_corrupt(fmt::format("{} line {}: expected ALGORITHM(file)= digest", what, line_no));
        ManifestEntry e;
        e.algorithm = line.substr(0, open);
        std::transform(e.algorithm.begin(), e.algorithm.end(), e.algorithm.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
        e.file = line.substr(open + 1, close - open - 1);
        e.digest = xml::trim(line.substr(close + 2));
        std::transform(e.digest.begin(), e.digest.end(), e.digest.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        std::size_t hex_len = 0;
        if (e.algorithm == "SHA1") hex_len = 40;
        else if (e.algorithm == "SHA256") hex_len = 64;
        else if (e.algorithm == "SHA512") hex_len = 128;
        else return fail_unsupported(fmt::format("{} line {}: digest algorithm '{}'", what, line_no, e.algorithm));
        if (e.digest.size() != hex_len || !std::all_of(e.digest.begin(), e.digest.end(), [](unsigned char c) { return std::isxdigit(c); }))
            return fail_corrupt(fmt::format("{} line {}: malformed {} digest", what, line_no, e.algorithm));
        if (e.file.empty()) return fail_corrupt(fmt::format("{} line {}: empty file name", what, line_no));
        out.push_back(std::move(e));
    }
    return out;
}

std::string format_manifest(const std::vector<ManifestEntry> &entries) {
    std::string out;
    for (const auto &e : entries) out += fmt::format("{}({})= {}\n", e.algorithm, e.file, e.digest);
    return out;
}

}  // namespace hypersdk
