// libFuzzer harness for the OVF descriptor parser (and the XML tree under it).
#include <hypersdk/ovf.hpp>

#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    hypersdk::OvfParseOptions options;
    options.first_if_several = true;
    auto r = hypersdk::parse_ovf(std::string_view(reinterpret_cast<const char *>(data), size), "fuzz", options);
    if (r) (void)hypersdk::write_ovf(r.value().vm, {});
    return 0;
}
