// The C ABI through the shared library: statuses, last error, cancellation, logging, hashing.
#include <hypersdk.h>

#include <doctest/doctest.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

TEST_CASE("version and status names") {
    CHECK(std::string(hsdk_version()) == std::to_string(HSDK_VERSION_MAJOR) + "." + std::to_string(HSDK_VERSION_MINOR) + "." +
                                             std::to_string(HSDK_VERSION_PATCH));
    CHECK(hsdk_version_number() == HSDK_VERSION_NUMBER);
    CHECK(std::string(hsdk_status_name(HSDK_OK)) == "ok");
    CHECK(std::string(hsdk_status_name(HSDK_E_NOT_FOUND)) == "not_found");
    CHECK(std::string(hsdk_status_name(HSDK_E_NOMEM)) == "no_memory");
    CHECK(std::string(hsdk_status_name(-999)) == "unknown");
    CHECK(std::string(hsdk_status_name(5)) == "unknown");
}

TEST_CASE("invalid arguments set the thread's last error") {
    hsdk_clear_error();
    CHECK(hsdk_last_error()->code == HSDK_OK);
    CHECK(hsdk_cancel_new(nullptr) == HSDK_E_INVALID_ARGUMENT);
    CHECK(hsdk_last_error()->code == HSDK_E_INVALID_ARGUMENT);
    CHECK(std::string(hsdk_last_error()->message).find("out != nullptr") != std::string::npos);
}

TEST_CASE("cancellation handles") {
    hsdk_cancel *c = nullptr;
    REQUIRE(hsdk_cancel_new(&c) == HSDK_OK);
    CHECK(hsdk_cancel_requested(c) == 0);
    hsdk_cancel_request(c);
    CHECK(hsdk_cancel_requested(c) == 1);
    hsdk_cancel_free(c);
    hsdk_cancel_free(nullptr);  // NULL-safe
    CHECK(hsdk_cancel_requested(nullptr) == 0);
}

TEST_CASE("sha256 of a file, and errors for a missing one or a cancelled token") {
    const std::string path = std::string(HSDK_TEST_WORK_DIR) + "/capi-hash.txt";
    FILE *f = std::fopen(path.c_str(), "wb");
    REQUIRE(f);
    std::fputs("abc", f);
    std::fclose(f);
    char hex[65];
    REQUIRE(hsdk_sha256_file(hex, sizeof hex, path.c_str(), nullptr) == HSDK_OK);
    CHECK(std::string(hex) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(hsdk_sha256_file(hex, 10, path.c_str(), nullptr) == HSDK_E_INVALID_ARGUMENT);
    CHECK(hsdk_sha256_file(hex, sizeof hex, (path + ".nope").c_str(), nullptr) == HSDK_E_NOT_FOUND);
    CHECK(std::string(hsdk_last_error()->message).find(".nope") != std::string::npos);
    hsdk_cancel *c = nullptr;
    REQUIRE(hsdk_cancel_new(&c) == HSDK_OK);
    hsdk_cancel_request(c);
    CHECK(hsdk_sha256_file(hex, sizeof hex, path.c_str(), c) == HSDK_E_CANCELLED);
    hsdk_cancel_free(c);
    std::remove(path.c_str());
}

namespace {
void collect(hsdk_log_level level, const char *message, void *user_data) {
    static_cast<std::vector<std::string> *>(user_data)->push_back(std::to_string(level) + ":" + message);
}
}  // namespace

TEST_CASE("log sink installs, validates its level and removes") {
    std::vector<std::string> lines;
    CHECK(hsdk_set_log_sink(collect, 42, &lines) == HSDK_E_INVALID_ARGUMENT);
    CHECK(hsdk_set_log_sink(collect, HSDK_LOG_DEBUG, &lines) == HSDK_OK);
    CHECK(hsdk_set_log_sink(nullptr, HSDK_LOG_OFF, nullptr) == HSDK_OK);
}
