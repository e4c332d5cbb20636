// libFuzzer harness for the -o key=value parser.
#include <hypersdk/convert.hpp>

#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    auto r = hypersdk::parse_format_options(std::string_view(reinterpret_cast<const char *>(data), size));
    if (r)
        for (const auto &[k, v] : r.value())
            if (k.empty()) __builtin_trap();  // the parser promises non-empty keys
    return 0;
}
