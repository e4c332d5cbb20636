#include <hypersdk/ovf.hpp>

#include "io/tar.hpp"
#include "ovf/ovf_units.hpp"
#include "xml/xml_tree.hpp"

#include <doctest/doctest.h>

#include <string>
#include <unistd.h>

using namespace hypersdk;

TEST_CASE("allocation units") {
    CHECK(ovf::byte_units("byte * 2^20", "t").value() == (1ULL << 20));
    CHECK(ovf::byte_units("byte*2^30", "t").value() == (1ULL << 30));
    CHECK(ovf::byte_units("MegaBytes", "t").value() == (1ULL << 20));
    CHECK(ovf::byte_units("GB", "t").value() == (1ULL << 30));
    CHECK(ovf::byte_units("byte * 10^9", "t").value() == 1000000000ULL);
    CHECK(ovf::byte_units("", "t").value() == 1);
    CHECK_FALSE(ovf::byte_units("hertz * 10^6", "t"));
    CHECK_FALSE(ovf::byte_units("byte * 2^99", "t"));
    CHECK_FALSE(ovf::byte_units("byte * 3^2", "t"));
    CHECK(ovf::scaled_bytes("16", "byte * 2^30", "t").value() == (16ULL << 30));
    auto overflow = ovf::scaled_bytes("18446744073709551615", "byte * 2^30", "capacity");
    REQUIRE_FALSE(overflow);
    CHECK(overflow.error().code == Errc::corrupt_image);
    CHECK_FALSE(ovf::parse_unsigned("12a", "t"));
    CHECK_FALSE(ovf::parse_unsigned("", "t"));
    CHECK_FALSE(ovf::parse_unsigned("-1", "t"));
}

TEST_CASE("MAC spellings") {
    CHECK(ovf::normalize_mac("00:50:56:AB:CD:EF").value() == "00:50:56:ab:cd:ef");
    CHECK(ovf::normalize_mac("080027A1B2C3").value() == "08:00:27:a1:b2:c3");
    CHECK(ovf::normalize_mac("00-50-56-ab-cd-ef").value() == "00:50:56:ab:cd:ef");
    CHECK_FALSE(ovf::normalize_mac("00:50:56:ab:cd"));
    CHECK_FALSE(ovf::normalize_mac("zz:50:56:ab:cd:ef"));
}

TEST_CASE("xml tree: namespaces, text, limits") {
    auto doc = xml::parse(R"(<a xmlns="urn:x" xmlns:y="urn:y"><b y:k="v">hi<c/> there</b></a>)", "doc");
    REQUIRE(doc);
    const auto &root = doc.value();
    CHECK(root.ns == "urn:x");
    const auto *b = root.child("b");
    REQUIRE(b);
    CHECK(b->attr("k", "urn:y").value() == "v");
    CHECK_FALSE(b->attr("k", "urn:z"));
    CHECK(b->text == "hi there");
    std::string deep;
    for (int i = 0; i < 200; ++i) deep += "<d>";
    for (int i = 0; i < 200; ++i) deep += "</d>";
    auto r = xml::parse(deep, "deep");
    REQUIRE_FALSE(r);
    CHECK(r.error().message.find("deeper") != std::string::npos);
    xml::Limits small;
    small.max_bytes = 10;
    CHECK_FALSE(xml::parse("<a>0123456789</a>", "big", small));
    auto dtd = xml::parse("<!DOCTYPE a [<!ENTITY e 'x'>]><a>&e;</a>", "dtd");
    REQUIRE_FALSE(dtd);
    CHECK(dtd.error().message.find("not allowed") != std::string::npos);
    CHECK(xml::escape("<a & 'b'>") == "&lt;a &amp; &apos;b&apos;&gt;");
}

TEST_CASE("manifest parsing") {
    auto m = parse_manifest("SHA256(a.ovf)= " + std::string(64, 'A') + "\r\nSHA1(b.vmdk)= " + std::string(40, '0') + "\n\n", "mf");
    REQUIRE(m);
    REQUIRE(m.value().size() == 2);
    CHECK(m.value()[0].file == "a.ovf");
    CHECK(m.value()[0].digest == std::string(64, 'a'));
    CHECK(m.value()[1].algorithm == "SHA1");
    CHECK_FALSE(parse_manifest("SHA256(a)= 1234", "mf"));
    CHECK(parse_manifest("MD5(a)= " + std::string(32, '0'), "mf").error().code == Errc::unsupported);
    CHECK_FALSE(parse_manifest("garbage line", "mf"));
    CHECK(format_manifest(m.value()).rfind("SHA256(a.ovf)= aaaa", 0) == 0);
}

TEST_CASE("tar round trip, including a size that needs base-256") {
    const std::string path = std::string(HSDK_TEST_WORK_DIR) + "/t.tar";
    ::unlink(path.c_str());
    {
        auto f = io::File::create_new(path);
        REQUIRE(f);
        io::TarWriter w(f.value());
        REQUIRE(w.begin_file("a.ovf", 3));
        const std::string abc = "abc";
        REQUIRE(w.write(std::as_bytes(std::span(abc.data(), abc.size()))));
        REQUIRE(w.end_file());
        REQUIRE(w.begin_file("b.vmdk", 0));
        REQUIRE(w.end_file());
        REQUIRE(w.finish());
        CHECK(f.value().size().value() == 512 * 5);
    }
    auto f = io::File::open_read(path);
    REQUIRE(f);
    auto entries = io::list_tar(f.value());
    REQUIRE(entries);
    REQUIRE(entries.value().size() == 2);
    CHECK(entries.value()[0].name == "a.ovf");
    CHECK(entries.value()[0].data_offset == 512);
    CHECK(entries.value()[0].size == 3);
    CHECK(entries.value()[1].name == "b.vmdk");
    // A 10 GiB member header: the size field is base-256 and parses back.
    auto h = io::make_tar_header("big.vmdk", 10ULL << 30, 0, '0');
    REQUIRE(h);
    CHECK(static_cast<unsigned char>(h.value()[124]) == 0x80);
    CHECK_FALSE(io::make_tar_header(std::string(101, 'x'), 1, 0, '0'));
    ::unlink(path.c_str());
}

TEST_CASE("OVF writer output parses back to the same VM") {
    VirtualMachine vm;
    vm.name = "round & trip";
    vm.guest_id = "rhel9_64Guest";
    vm.cpus = 6;
    vm.cores_per_socket = 3;
    vm.memory_mib = 3072;
    vm.firmware = Firmware::efi;
    vm.secure_boot = true;
    VmDisk d1;
    d1.capacity_bytes = 10ULL << 30;
    d1.controller = "scsi";
    d1.controller_model = "pvscsi";
    VmDisk d2 = d1;
    d2.capacity_bytes = 1ULL << 30;
    d2.unit = 1;
    vm.disks = {d1, d2};
    VmNic n;
    n.mac = "00:50:56:01:02:03";
    n.network = "VM Network";
    n.adapter_type = "vmxnet3";
    vm.nics = {n};
    const auto text = write_ovf(vm, {{"a-disk1.vmdk", 123, ""}, {"a-disk2.vmdk", 456, ""}});
    auto parsed = parse_ovf(text, "written");
    REQUIRE(parsed);
    const auto &p = parsed.value().vm;
    CHECK(p.name == "round & trip");
    CHECK(p.cpus == 6);
    CHECK(p.cores_per_socket == 3);
    CHECK(p.memory_mib == 3072);
    CHECK(p.firmware == Firmware::efi);
    CHECK(p.secure_boot);
    REQUIRE(p.disks.size() == 2);
    CHECK(p.disks[0].capacity_bytes == (10ULL << 30));
    CHECK(p.disks[0].file == "a-disk1.vmdk");
    CHECK(p.disks[0].file_bytes == 123);
    CHECK(p.disks[0].controller_model == "pvscsi");
    CHECK(p.disks[1].unit == 1);
    REQUIRE(p.nics.size() == 1);
    CHECK(p.nics[0].mac == "00:50:56:01:02:03");
    CHECK(p.nics[0].adapter_type == "vmxnet3");
    CHECK(p.nics[0].network == "VM Network");
    CHECK(p.guest_id == "rhel9_64Guest");
}
