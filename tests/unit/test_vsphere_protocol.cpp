// vSphere protocol pieces without a server: the hardened XML tree, SOAP envelopes and fault
// mapping, URL and thumbprint handling, the VM model from properties, GOVC_* parsing, retries.
#include "io/http.hpp"
#include "providers/vsphere/discovery.hpp"
#include "providers/vsphere/lease.hpp"
#include "providers/vsphere/session.hpp"
#include "providers/vsphere/soap.hpp"
#include "xml/xml_tree.hpp"

#include <doctest/doctest.h>

#include <cstdlib>
#include <string>

using namespace hypersdk;
using namespace hypersdk::vsphere;

TEST_CASE("xml: namespaces are dropped, xsi:type is kept apart from a reference's type") {
    auto doc = parse_soap(R"(<?xml version="1.0"?><a:Envelope xmlns:a="urn:x" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">)"
                         R"(<val xsi:type="ManagedObjectReference" type="Folder">group-v3</val><n>1 &amp; 2</n></a:Envelope>)");
    REQUIRE(doc);
    CHECK(doc.value().local == "Envelope");
    const xml::Element *val = doc.value().child("val");
    REQUIRE(val != nullptr);
    CHECK(val->xsi_type() == "ManagedObjectReference");
    CHECK(moref_of(*val) == MoRef{"Folder", "group-v3"});
    CHECK(doc.value().child_text("n") == "1 & 2");
    CHECK(doc.value().path("val") == val);
    CHECK(doc.value().path("missing.deeper") == nullptr);
}

TEST_CASE("xml: hostile documents are refused") {
    const std::string laughs = R"(<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><x>&b;</x>)";
    auto r = parse_soap(laughs);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::remote_error);
    CHECK(r.error().message.find("document type") != std::string::npos);

    std::string deep;
    for (int i = 0; i < 100; ++i) deep += "<d>";
    for (int i = 0; i < 100; ++i) deep += "</d>";
    CHECK_FALSE(parse_soap(deep));
    xml::Limits small;
    small.error_code = Errc::remote_error;
    small.max_bytes = 10;
    CHECK(xml::parse("<a>0123456789</a>", "t", small).error().code == Errc::remote_error);
    small = xml::Limits{};
    small.max_elements = 2;
    CHECK_FALSE(xml::parse("<a><b/><c/></a>", "t", small));
    CHECK_FALSE(parse_soap("<a><b></a>"));
    CHECK_FALSE(parse_soap(""));
}

TEST_CASE("soap: values are escaped, control characters refused") {
    SoapCall call("Login", MoRef{"SessionManager", "SessionManager"});
    call.text("userName", "a<b&\"c'").text("password", "p>w");
    auto env = call.envelope();
    REQUIRE(env);
    CHECK(env.value().find("<userName>a&lt;b&amp;&quot;c&apos;</userName>") != std::string::npos);
    CHECK(env.value().find("<_this type=\"SessionManager\">SessionManager</_this>") != std::string::npos);
    auto round = parse_soap(env.value());
    REQUIRE(round);
    CHECK(round.value().path("Body.Login.userName")->text == "a<b&\"c'");

    SoapCall bad("Login", MoRef{"SessionManager", "SessionManager"});
    bad.text("password", std::string("a\x01", 2));
    auto e = bad.envelope();
    REQUIRE_FALSE(e);
    CHECK(e.error().message.find("\x01") == std::string::npos);
}

TEST_CASE("soap: faults map to error codes") {
    auto fault = [](const std::string &detail) {
        auto doc = parse_soap(R"(<Envelope xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><Body><Fault>)"
                             R"(<faultcode>ServerFaultCode</faultcode><faultstring>text</faultstring><detail>)" +
                             detail + "</detail></Fault></Body></Envelope>");
        REQUIRE(doc);
        auto f = find_fault(doc.value());
        REQUIRE(f);
        return fault_error(*f, "M");
    };
    CHECK(fault(R"(<InvalidLoginFault xsi:type="InvalidLogin"/>)").code == Errc::auth_failed);
    CHECK(fault(R"(<NotAuthenticatedFault xsi:type="NotAuthenticated"/>)").code == Errc::auth_failed);
    CHECK(fault(R"(<ManagedObjectNotFoundFault xsi:type="ManagedObjectNotFound"/>)").code == Errc::not_found);
    CHECK(fault(R"(<NoPermissionFault/>)").code == Errc::permission_denied);
    const Error other = fault(R"(<InvalidPowerStateFault xsi:type="InvalidPowerState"/>)");
    CHECK(other.code == Errc::remote_error);
    CHECK(other.message.find("InvalidPowerState") != std::string::npos);
    CHECK(other.message.find("text") != std::string::npos);

    auto task = parse_soap(R"(<error xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><fault xsi:type="NoPermission"/>)"
                          R"(<localizedMessage>denied</localizedMessage></error>)");
    REQUIRE(task);
    CHECK(fault_error(fault_of(task.value()), "T").code == Errc::permission_denied);
}

TEST_CASE("urls: sdk url, redaction, '*' hosts, datastore paths") {
    CHECK(normalize_sdk_url("vc.example").value() == "https://vc.example/sdk");
    CHECK(normalize_sdk_url("https://vc.example:8443/").value() == "https://vc.example:8443/sdk");
    CHECK(normalize_sdk_url("https://u:p@vc.example/sdk").value() == "https://vc.example/sdk");
    CHECK_FALSE(normalize_sdk_url("ftp://vc.example"));
    CHECK_FALSE(normalize_sdk_url(""));

    CHECK(io::http::redact_url("https://u:secret@h/nfc/52-ticket/disk-0.vmdk?x=1") == "https://h/nfc/.../disk-0.vmdk");
    CHECK(resolve_device_url("https://*/nfc/t/disk.vmdk", "10.0.0.1:443") == "https://10.0.0.1:443/nfc/t/disk.vmdk");
    CHECK(resolve_device_url("https://*:902/nfc/t/d", "esx:443") == "https://esx:902/nfc/t/d");
    CHECK(resolve_device_url("https://esx1/nfc/t/d", "vc:443") == "https://esx1/nfc/t/d");

    CHECK(split_datastore_path("[LocalDS_0] vm/disk1.vmdk") == std::pair<std::string, std::string>{"LocalDS_0", "vm/disk1.vmdk"});
    CHECK(split_datastore_path("plain.vmdk").first.empty());
}

TEST_CASE("thumbprints: colons and case do not matter, length does") {
    const std::string hex(64, 'a');
    CHECK(io::http::normalize_thumbprint("AA:" + std::string(62, 'A')).value() == hex);
    CHECK_FALSE(io::http::normalize_thumbprint("AA:BB"));
    CHECK_FALSE(io::http::normalize_thumbprint(std::string(64, 'g')));
}

TEST_CASE("discovery: properties become the VM model") {
    auto devices = parse_soap(R"(<val xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="ArrayOfVirtualDevice">)"
                             R"(<VirtualDevice xsi:type="ParaVirtualSCSIController"><key>1000</key><busNumber>1</busNumber></VirtualDevice>)"
                             R"(<VirtualDevice xsi:type="VirtualDisk"><key>2000</key><deviceInfo><label>Hard disk 1</label></deviceInfo>)"
                             R"(<backing xsi:type="VirtualDiskFlatVer2BackingInfo"><fileName>[ds1] vm/vm.vmdk</fileName>)"
                             R"(<thinProvisioned>true</thinProvisioned><changeId>52 aa/7</changeId></backing>)"
                             R"(<controllerKey>1000</controllerKey><unitNumber>3</unitNumber><capacityInKB>2048</capacityInKB></VirtualDevice>)"
                             R"(<VirtualDevice xsi:type="VirtualVmxnet3"><key>4000</key><backing><deviceName>VM Network</deviceName></backing>)"
                             R"(<connectable><connected>false</connected></connectable><macAddress>00:50:56:AA:BB:CC</macAddress></VirtualDevice></val>)");
    REQUIRE(devices);
    auto boot = parse_soap(R"(<val><efiSecureBootEnabled>true</efiSecureBootEnabled></val>)");
    ObjectContent o;
    o.obj = MoRef{"VirtualMachine", "vm-7"};
    auto text = [](const std::string &t) {
        xml::Element e;
        e.text = t;
        return e;
    };
    o.props["name"] = text("web");
    o.props["runtime.powerState"] = text("poweredOff");
    o.props["config.hardware.numCPU"] = text("4");
    o.props["config.hardware.numCoresPerSocket"] = text("2");
    o.props["config.hardware.memoryMB"] = text("4096");
    o.props["config.firmware"] = text("efi");
    o.props["config.hardware.device"] = devices.value();
    o.props["config.bootOptions"] = boot.value();
    const VirtualMachine vm = vm_from_properties(o, "/DC/vm/web", {});
    CHECK(vm.id == "vm-7");
    CHECK(vm.inventory_path == "/DC/vm/web");
    CHECK(vm.cpus == 4);
    CHECK(vm.cores_per_socket == 2);
    CHECK(vm.memory_mib == 4096);
    CHECK(vm.firmware == Firmware::efi);
    CHECK(vm.secure_boot);
    REQUIRE(vm.disks.size() == 1);
    CHECK(vm.disks[0].capacity_bytes == 2048 * 1024);
    CHECK(vm.disks[0].controller == "scsi");
    CHECK(vm.disks[0].controller_model == "pvscsi");
    CHECK(vm.disks[0].controller_bus == 1);
    CHECK(vm.disks[0].unit == 3);
    CHECK(vm.disks[0].datastore == "ds1");
    CHECK(vm.disks[0].change_id == "52 aa/7");
    CHECK(vm.disks[0].thin);
    REQUIRE(vm.nics.size() == 1);
    CHECK(vm.nics[0].mac == "00:50:56:aa:bb:cc");
    CHECK(vm.nics[0].adapter_type == "vmxnet3");
    CHECK(vm.nics[0].network == "VM Network");
    CHECK_FALSE(vm.nics[0].connected);
}

TEST_CASE("GOVC_URL credentials are taken out of the URL") {
    ::setenv("GOVC_URL", "https://alice:p%40ss@vc.example/sdk", 1);
    ::unsetenv("GOVC_USERNAME");
    ::unsetenv("GOVC_PASSWORD");
    ::setenv("GOVC_INSECURE", "1", 1);
    auto o = with_environment({});
    REQUIRE(o);
    CHECK(o.value().url == "https://vc.example/sdk");
    CHECK(o.value().username == "alice");
    CHECK(o.value().password == "p@ss");
    CHECK(o.value().insecure);
    ::unsetenv("GOVC_URL");
    ::unsetenv("GOVC_INSECURE");
    CHECK_FALSE(with_environment({}));
}

TEST_CASE("retries: transient errors, bounded attempts, a cancel ends the backoff") {
    CHECK(io::http::is_transient(Error{Errc::network_error, "reset"}));
    CHECK(io::http::is_transient(Error{Errc::timeout, "slow"}));
    CHECK(io::http::is_transient(io::http::status_error(503, "GET", "https://h/x")));
    CHECK_FALSE(io::http::is_transient(io::http::status_error(404, "GET", "https://h/x")));
    CHECK_FALSE(io::http::is_transient(Error{Errc::auth_failed, "no"}));

    io::http::RetryPolicy policy{3, std::chrono::milliseconds(1), std::chrono::milliseconds(2)};
    int calls = 0;
    auto r = io::http::with_retries(policy, CancelToken{}, [&](unsigned) -> Result<int> {
        ++calls;
        return fail(Errc::network_error, "down");
    });
    CHECK_FALSE(r);
    CHECK(calls == 3);
    calls = 0;
    r = io::http::with_retries(policy, CancelToken{}, [&](unsigned) -> Result<int> {
        ++calls;
        return fail(Errc::auth_failed, "no");
    });
    CHECK(calls == 1);

    CancelToken cancel;
    cancel.cancel();
    io::http::RetryPolicy slow{5, std::chrono::hours(1), std::chrono::hours(1)};
    auto slept = io::http::backoff_sleep(slow, 1, cancel);
    REQUIRE_FALSE(slept);
    CHECK(slept.error().code == Errc::cancelled);
}
