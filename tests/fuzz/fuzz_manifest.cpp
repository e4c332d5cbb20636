// libFuzzer harness for .mf manifest parsing.
#include <hypersdk/ovf.hpp>

#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    auto r = hypersdk::parse_manifest(std::string_view(reinterpret_cast<const char *>(data), size), "fuzz");
    if (r) (void)hypersdk::format_manifest(r.value());
    return 0;
}
