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

// ---- images and conversion through the C ABI --------------------------------------------

namespace {

std::string write_raw_image(const std::string &name, std::size_t size) {
    const std::string path = std::string(HSDK_TEST_WORK_DIR) + "/" + name;
    FILE *f = std::fopen(path.c_str(), "wb");
    REQUIRE(f);
    std::vector<unsigned char> data(size, 0);
    for (std::size_t i = 0; i < 65536 && i < size; ++i) data[i] = static_cast<unsigned char>(i * 7 + 1);
    std::fwrite(data.data(), 1, data.size(), f);
    std::fclose(f);
    return path;
}

int cancel_at_first_report(const hsdk_progress *p, void *user_data) {
    ++*static_cast<int *>(user_data);
    CHECK(p->struct_size == sizeof(hsdk_progress));
    return 1;  // cancel
}

int count_reports(const hsdk_progress *p, void *user_data) {
    ++*static_cast<int *>(user_data);
    CHECK(p->phase != nullptr);
    return 0;
}

}  // namespace

TEST_CASE("open, read, map and describe an image") {
    const auto path = write_raw_image("capi-disk.raw", 1 << 20);
    hsdk_image *img = nullptr;
    // raw is never guessed
    CHECK(hsdk_image_open(&img, path.c_str(), nullptr) == HSDK_E_UNSUPPORTED);
    CHECK(img == nullptr);
    char *name = nullptr;
    CHECK(hsdk_probe_format(&name, path.c_str()) == HSDK_E_UNSUPPORTED);

    hsdk_open_options opts = HSDK_OPEN_OPTIONS_INIT;
    opts.format = "raw";
    REQUIRE(hsdk_image_open(&img, path.c_str(), &opts) == HSDK_OK);
    CHECK(hsdk_image_virtual_size(img) == (1u << 20));
    unsigned char buf[16];
    REQUIRE(hsdk_image_read(img, 1, buf, sizeof buf) == HSDK_OK);
    CHECK(buf[0] == 8);
    CHECK(hsdk_image_read(img, (1 << 20) - 8, buf, sizeof buf) == HSDK_E_INVALID_ARGUMENT);

    hsdk_extent *ext = nullptr;
    size_t n = 0;
    REQUIRE(hsdk_image_block_status(&ext, &n, img, 0, 1 << 20) == HSDK_OK);
    REQUIRE(n >= 1);
    CHECK(ext[0].offset == 0);
    CHECK(ext[0].kind == HSDK_EXTENT_DATA);
    uint64_t total = 0;
    for (size_t i = 0; i < n; ++i) total += ext[i].length;
    CHECK(total == (1u << 20));
    hsdk_extents_free(ext);

    char *json = nullptr;
    REQUIRE(hsdk_image_info_json(&json, img, 1) == HSDK_OK);
    CHECK(std::string(json).find("\"format\":\"raw\"") != std::string::npos);
    hsdk_string_free(json);
    hsdk_image_free(img);
    hsdk_image_free(nullptr);
}

TEST_CASE("convert with progress, cancel from the callback, compare, check") {
    const auto src = write_raw_image("capi-src.raw", 4 << 20);
    const std::string dst = std::string(HSDK_TEST_WORK_DIR) + "/capi-dst.raw";
    std::remove(dst.c_str());
    hsdk_open_options so = HSDK_OPEN_OPTIONS_INIT;
    so.format = "raw";

    hsdk_convert_options co = HSDK_CONVERT_OPTIONS_INIT;
    co.output_format = "raw";
    int reports = 0;
    co.progress = cancel_at_first_report;
    co.progress_user_data = &reports;
    CHECK(hsdk_convert(nullptr, src.c_str(), &so, dst.c_str(), &co) == HSDK_E_CANCELLED);
    CHECK(reports >= 1);
    FILE *f = std::fopen(dst.c_str(), "rb");
    CHECK(f == nullptr);  // nothing left that looks finished
    if (f) std::fclose(f);

    co.progress = count_reports;
    reports = 0;
    hsdk_convert_stats stats{};
    stats.struct_size = sizeof stats;
    REQUIRE(hsdk_convert(&stats, src.c_str(), &so, dst.c_str(), &co) == HSDK_OK);
    CHECK(reports >= 2);
    CHECK(stats.virtual_size == (4u << 20));
    CHECK(stats.bytes_written == 65536);

    co.options = "no_such_option=1";
    CHECK(hsdk_convert(nullptr, src.c_str(), &so, dst.c_str(), &co) == HSDK_E_INVALID_ARGUMENT);
    CHECK(std::string(hsdk_last_error()->message).find("no_such_option") != std::string::npos);

    hsdk_image *a = nullptr, *b = nullptr;
    REQUIRE(hsdk_image_open(&a, src.c_str(), &so) == HSDK_OK);
    REQUIRE(hsdk_image_open(&b, dst.c_str(), &so) == HSDK_OK);
    int identical = 0;
    uint64_t diff = 0;
    REQUIRE(hsdk_compare(&identical, &diff, a, b, 1) == HSDK_OK);
    CHECK(identical == 1);
    hsdk_image_free(b);

    // qemu-img's cache mode names: "unsafe" (page cache, no fsync) writes the same image.
    co.options = nullptr;
    const std::string unflushed = std::string(HSDK_TEST_WORK_DIR) + "/capi-unsafe.raw";
    std::remove(unflushed.c_str());
    co.cache = "unsafe";
    REQUIRE(hsdk_convert(nullptr, src.c_str(), &so, unflushed.c_str(), &co) == HSDK_OK);
    REQUIRE(hsdk_image_open(&b, unflushed.c_str(), &so) == HSDK_OK);
    REQUIRE(hsdk_compare(&identical, &diff, a, b, 1) == HSDK_OK);
    CHECK(identical == 1);
    hsdk_image_free(b);
    std::remove(unflushed.c_str());
    co.cache = "sometimes";
    CHECK(hsdk_convert(nullptr, src.c_str(), &so, unflushed.c_str(), &co) == HSDK_E_INVALID_ARGUMENT);
    CHECK(std::string(hsdk_last_error()->message).find("/cache: expected one of none, writeback or unsafe, got 'sometimes'") != std::string::npos);

    // Change one byte: compare names its offset.
    f = std::fopen(dst.c_str(), "r+b");
    REQUIRE(f);
    std::fseek(f, 4000, SEEK_SET);
    std::fputc(0xAA, f);
    std::fclose(f);
    REQUIRE(hsdk_image_open(&b, dst.c_str(), &so) == HSDK_OK);
    REQUIRE(hsdk_compare(&identical, &diff, a, b, 0) == HSDK_OK);
    CHECK(identical == 0);
    CHECK(diff == 4000);
    hsdk_image_free(a);
    hsdk_image_free(b);

    char *json = nullptr;
    REQUIRE(hsdk_check_json(&json, dst.c_str(), &so) == HSDK_OK);
    CHECK(std::string(json).find("\"clean\":true") != std::string::npos);
    hsdk_string_free(json);
}

// ---- VM descriptions and KVM through the C ABI --------------------------------------------

TEST_CASE("OVF to VM JSON to libvirt XML") {
    const std::string ovf = std::string(HSDK_TEST_DATA_DIR) + "/ovf/linux-uefi-secureboot.ovf";
    char *vm = nullptr;
    REQUIRE(hsdk_vm_load_json(&vm, ovf.c_str(), nullptr) == HSDK_OK);
    CHECK(std::string(vm).find("\"secure_boot\":true") != std::string::npos);
    hsdk_kvm_options o = HSDK_KVM_OPTIONS_INIT;
    o.disk_dir = "/srv/vms";
    o.bridge_map = "Front=br0";
    char *xml = nullptr;
    REQUIRE(hsdk_kvm_domain_xml(&xml, vm, &o) == HSDK_OK);
    const std::string x(xml);
    CHECK(x.find("<source bridge='br0'/>") != std::string::npos);
    CHECK(x.find("/srv/vms/db01-disk1.qcow2") != std::string::npos);
    CHECK(x.find("secure='yes'") != std::string::npos);
    hsdk_string_free(xml);
    o.bridge_map = "Front";
    CHECK(hsdk_kvm_domain_xml(&xml, vm, &o) == HSDK_E_INVALID_ARGUMENT);
    CHECK(xml == nullptr);
    // The disks are not there: a manifest cannot be made.
    char *manifest = nullptr;
    o.bridge_map = nullptr;
    CHECK(hsdk_kvm_manifest_json(&manifest, vm, &o, nullptr) == HSDK_E_NOT_FOUND);
    hsdk_string_free(vm);
    CHECK(hsdk_kvm_domain_xml(&xml, "{not json", nullptr) == HSDK_E_INVALID_ARGUMENT);
    CHECK(hsdk_vm_load_json(&vm, "/nonexistent.ovf", nullptr) == HSDK_E_NOT_FOUND);
}

// ---- writing images through the C ABI ------------------------------------------------------

TEST_CASE("writer: ascending pieces into qcow2, read back; free without close leaves nothing") {
    const std::string path = std::string(HSDK_TEST_WORK_DIR) + "/capi-writer.qcow2";
    std::remove(path.c_str());
    hsdk_writer_options o = HSDK_WRITER_OPTIONS_INIT;
    o.format = "qcow2";
    o.options = "cluster_size=4096";
    hsdk_writer *w = nullptr;
    REQUIRE(hsdk_writer_create(&w, path.c_str(), 1 << 20, &o) == HSDK_OK);
    CHECK(hsdk_writer_random_access(w) == 0);
    std::vector<unsigned char> block(5000, 0x5a);
    REQUIRE(hsdk_writer_write(w, 12345, block.data(), block.size()) == HSDK_OK);
    CHECK(hsdk_writer_write(w, 0, block.data(), block.size()) == HSDK_E_INVALID_ARGUMENT);  // backwards
    REQUIRE(hsdk_writer_write(w, 500000, block.data(), block.size()) == HSDK_OK);
    REQUIRE(hsdk_writer_close(w) == HSDK_OK);
    hsdk_writer_free(w);

    hsdk_image *img = nullptr;
    REQUIRE(hsdk_image_open(&img, path.c_str(), nullptr) == HSDK_OK);
    unsigned char got[16];
    REQUIRE(hsdk_image_read(img, 12345 + 4990, got, sizeof got) == HSDK_OK);
    CHECK(got[0] == 0x5a);
    CHECK(got[9] == 0x5a);
    CHECK(got[10] == 0);
    hsdk_image_free(img);

    const std::string gone = std::string(HSDK_TEST_WORK_DIR) + "/capi-writer-gone.vdi";
    o.format = "vdi";
    o.options = nullptr;
    REQUIRE(hsdk_writer_create(&w, gone.c_str(), 1 << 20, &o) == HSDK_OK);
    REQUIRE(hsdk_writer_write(w, 0, block.data(), block.size()) == HSDK_OK);
    hsdk_writer_free(w);  // not closed: no image
    FILE *f = std::fopen(gone.c_str(), "rb");
    CHECK(f == nullptr);
    if (f) std::fclose(f);
    hsdk_writer_free(nullptr);
}
