# Every third-party dependency, found once. scripts/setup installs them (Debian packages).
find_package(PkgConfig REQUIRED)
find_package(Boost 1.74 REQUIRED)            # Outcome (header-only)
find_package(CURL REQUIRED)
find_package(EXPAT REQUIRED)
find_package(OpenSSL REQUIRED)
find_package(ZLIB REQUIRED)
find_package(fmt REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(Threads REQUIRED)
# valijson (header-only JSON Schema validation over nlohmann-json): Debian's libvalijson-dev.
find_path(VALIJSON_INCLUDE_DIR valijson/validator.hpp REQUIRED)
pkg_check_modules(LZ4 REQUIRED IMPORTED_TARGET liblz4)
pkg_check_modules(LIBDEFLATE REQUIRED IMPORTED_TARGET libdeflate)
pkg_check_modules(ZSTD REQUIRED IMPORTED_TARGET libzstd)
pkg_check_modules(ISAL REQUIRED IMPORTED_TARGET libisal)
pkg_check_modules(YAMLCPP REQUIRED IMPORTED_TARGET yaml-cpp)
# SQLite keeps the service's jobs and schedules (Debian's libsqlite3-dev).
pkg_check_modules(SQLITE3 REQUIRED IMPORTED_TARGET sqlite3)
# GPGME drives the installed GnuPG for the "gpg" encryption method (Debian's libgpgme-dev).
pkg_check_modules(GPGME REQUIRED IMPORTED_TARGET gpgme)

# pkg-config names for hypersdk.pc's Requires.private (what a static link needs).
set(HSDK_PKGCONFIG_REQUIRES libcurl expat openssl zlib fmt liblz4 libdeflate libzstd libisal yaml-cpp sqlite3 gpgme)
