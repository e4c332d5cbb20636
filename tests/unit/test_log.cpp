#include <hypersdk/log.hpp>

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace hypersdk;

TEST_CASE("logging is silent by default and filtered by level") {
    CHECK_FALSE(log_enabled(LogLevel::error));
    std::vector<std::string> lines;
    set_log_sink([&](LogLevel level, std::string_view msg) { lines.push_back(std::string(log_level_name(level)) + ":" + std::string(msg)); },
                 LogLevel::info);
    log(LogLevel::debug, "hidden");
    log(LogLevel::info, "shown");
    log(LogLevel::error, "bad");
    set_log_sink({});
    log(LogLevel::error, "after removal");
    REQUIRE(lines.size() == 2);
    CHECK(lines[0] == "info:shown");
    CHECK(lines[1] == "error:bad");
    CHECK_FALSE(log_enabled(LogLevel::error));
}
