"""KVM import: OVF/OVA -> libvirt domain XML (validated by libvirt itself) and the hyper2kvm manifest."""
import hashlib
import io
import json
import os
import pathlib
import shutil
import subprocess
import tarfile
import xml.etree.ElementTree as ET

import pytest

from conftest import MiB, ROOT, hsdk, qemu_img, run, write_pattern

OVF_DIR = ROOT / "tests" / "data" / "ovf"


def domain_for(path, *extra, workdir=None):
    p = hsdk("kvm", "domain", "--from", path, *extra)
    xml_path = (workdir or pathlib.Path("/tmp")) / (pathlib.Path(path).stem + ".xml")
    xml_path.write_text(p.stdout)
    return xml_path, ET.fromstring(p.stdout)


def assert_libvirt_accepts(xml_path):
    run(["virt-xml-validate", xml_path, "domain"])
    # The test driver is private to each connection: define succeeds only for a valid domain.
    p = run(["virsh", "-c", "test:///default", "define", xml_path])
    assert "defined" in p.stdout


EXPECTED = {
    # file: (memory MiB, vcpus, sockets, cores, disks, bus, macs, firmware, secure, machine, nic model)
    "linux-bios-vcenter.ovf": (2048, 2, 2, 1, 1, "virtio", ["00:50:56:9a:01:02"], "bios", False, "q35", "virtio"),
    "linux-uefi-secureboot.ovf": (16384, 8, 2, 4, 2, "virtio", ["00:50:56:aa:00:01", "00:50:56:aa:00:02"], "efi", True, "q35", "virtio"),
    "windows2019-efi.ovf": (8192, 4, 2, 2, 2, "sata", ["00:50:56:9a:77:10"], "efi", False, "q35", "e1000e"),
    "windows-xp-legacy.ovf": (512, 1, 1, 1, 1, "ide", ["00:0c:29:11:22:33"], "bios", False, "pc", "rtl8139"),
    "virtualbox-debian.ovf": (4096, 2, 2, 1, 2, "virtio", ["08:00:27:a1:b2:c3", "08:00:27:d4:e5:f6"], "efi", False, "q35", "virtio"),
    "ovf2-generic.ovf": (1024, 1, 1, 1, 1, "virtio", ["52:54:00:12:34:56"], "bios", False, "q35", "virtio"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_domain_matrix(name, workdir):
    mem, vcpus, sockets, cores, ndisks, bus, macs, firmware, secure, machine, nic = EXPECTED[name]
    xml_path, dom = domain_for(OVF_DIR / name, "--disk-dir", workdir, workdir=workdir)
    assert_libvirt_accepts(xml_path)
    assert dom.findtext("memory") == str(mem) and dom.find("memory").get("unit") == "MiB"
    assert dom.findtext("vcpu") == str(vcpus)
    topo = dom.find("cpu/topology")
    assert (topo.get("sockets"), topo.get("cores"), topo.get("threads")) == (str(sockets), str(cores), "1")
    disks = dom.findall("devices/disk")
    assert len(disks) == ndisks
    assert {d.find("target").get("bus") for d in disks} == {bus}
    for d in disks:
        assert d.find("source").get("file").startswith(str(workdir) + "/")
        assert d.find("driver").get("type") == "qcow2"
    assert disks[0].find("boot").get("order") == "1"
    assert [i.find("mac").get("address") for i in dom.findall("devices/interface")] == macs
    assert {i.find("model").get("type") for i in dom.findall("devices/interface")} == {nic}
    assert dom.find("os/type").get("machine") == machine
    loader = dom.find("os/loader")
    if firmware == "efi":
        assert loader is not None and loader.get("type") == "pflash"
        assert dom.find("os/nvram") is not None
        assert (loader.get("secure") == "yes") == secure
        assert ("secboot" in loader.text) == secure
        assert (dom.find("features/smm") is not None) == secure
    else:
        assert loader is None
    if machine == "pc":
        assert not [c for c in dom.findall("devices/controller") if c.get("model") == "pcie-root"]
    else:
        assert [c for c in dom.findall("devices/controller") if c.get("model") == "pcie-root"]
    assert dom.find("devices/serial") is not None and dom.find("devices/console") is not None
    chan = dom.find("devices/channel/target")
    assert chan.get("name") == "org.qemu.guest_agent.0"


def test_windows_with_virtio_drivers(workdir):
    xml_path, dom = domain_for(OVF_DIR / "windows2019-efi.ovf", "--windows-virtio", "--disk-dir", workdir, workdir=workdir)
    assert_libvirt_accepts(xml_path)
    assert {d.find("target").get("bus") for d in dom.findall("devices/disk")} == {"virtio"}
    assert dom.find("devices/interface/model").get("type") == "virtio"
    assert dom.find("clock").get("offset") == "localtime"


def test_network_and_bridge_mapping(workdir):
    xml_path, dom = domain_for(OVF_DIR / "linux-uefi-secureboot.ovf", "--map-bridge", "Front=br0", "--network", "backnet",
                               "--name", "db01-kvm", "--disk-format", "raw", workdir=workdir)
    assert_libvirt_accepts(xml_path)
    assert dom.findtext("name") == "db01-kvm"
    ifs = dom.findall("devices/interface")
    assert ifs[0].get("type") == "bridge" and ifs[0].find("source").get("bridge") == "br0"
    assert ifs[1].get("type") == "network" and ifs[1].find("source").get("network") == "backnet"
    assert {d.find("driver").get("type") for d in dom.findall("devices/disk")} == {"raw"}
    p = hsdk("kvm", "domain", "--from", OVF_DIR / "linux-bios-vcenter.ovf", "--network", "a", "--bridge", "b", check=False)
    assert p.returncode == 2


def test_disk_order_follows_controller_units():
    p = hsdk("ovf", "show", OVF_DIR / "linux-uefi-secureboot.ovf")
    vm = json.loads(p.stdout)
    assert [d["id"] for d in vm["disks"]] == ["vmdisk1", "vmdisk2"]
    assert vm["disks"][0]["capacity_bytes"] == 40960 * MiB
    assert vm["disks"][1]["capacity_bytes"] == 107374182400
    assert vm["disks"][0]["controller_model"] == "pvscsi"
    assert vm["firmware"] == "efi" and vm["secure_boot"] is True
    assert vm["cpus"] == 8 and vm["cores_per_socket"] == 4


def test_virtualbox_macs_and_firmware_from_vbox_section():
    vm = json.loads(hsdk("ovf", "show", OVF_DIR / "virtualbox-debian.ovf").stdout)
    assert vm["guest_id"] == "Debian_64"
    assert vm["firmware"] == "efi"
    assert [n["mac"] for n in vm["nics"]] == ["08:00:27:a1:b2:c3", "08:00:27:d4:e5:f6"]
    assert [d["controller"] for d in vm["disks"]] == ["sata", "sata"]


def test_vm_json_round_trip(workdir):
    vm = json.loads(hsdk("ovf", "show", OVF_DIR / "windows2019-efi.ovf").stdout)
    path = workdir / "vm.json"
    path.write_text(json.dumps(vm))
    xml_path, dom = domain_for(path, "--disk-dir", workdir, workdir=workdir)
    assert_libvirt_accepts(xml_path)
    assert dom.findtext("name") == "win2019"
    vm["cpus"] = 3
    vm["cores_per_socket"] = 2
    path.write_text(json.dumps(vm))
    p = hsdk("kvm", "domain", "--from", path, check=False)
    assert p.returncode == 1 and "cores_per_socket" in p.stderr


# ---- malformed descriptors ------------------------------------------------------------------

GOOD = (OVF_DIR / "linux-bios-vcenter.ovf").read_text()

MALFORMED = {
    "unbalanced": (GOOD.replace("</DiskSection>", "", 1), "malformed XML"),
    "missing-disk-reference": (GOOD.replace("ovf:/disk/vmdisk1", "ovf:/disk/nosuchdisk"), "nosuchdisk"),
    "missing-file-reference": (GOOD.replace('ovf:fileRef="file1"', 'ovf:fileRef="file9"'), "file9"),
    "absurd-capacity": (GOOD.replace('ovf:capacity="16"', 'ovf:capacity="999999"'), "out of range"),
    "overflowing-capacity": (GOOD.replace('ovf:capacity="16"', 'ovf:capacity="99999999999999999999"'), "too large"),
    "absurd-memory": (GOOD.replace("<rasd:VirtualQuantity>2048</rasd:VirtualQuantity>",
                                   "<rasd:VirtualQuantity>99999999999</rasd:VirtualQuantity>"), "memory"),
    "absurd-cpus": (GOOD.replace("<rasd:VirtualQuantity>2</rasd:VirtualQuantity>",
                                 "<rasd:VirtualQuantity>100000</rasd:VirtualQuantity>"), "CPU count"),
    "not-ovf": ("<?xml version='1.0'?><html><body/></html>", "not an OVF envelope"),
    "billion-laughs": ("""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1"><References>&lol3;</References></Envelope>""", "not allowed"),
    "external-entity": ("""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY ext SYSTEM "file:///etc/passwd">]>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1">&ext;</Envelope>""", "not allowed"),
    "no-memory": (GOOD.replace("<rasd:ResourceType>4</rasd:ResourceType>", "<rasd:ResourceType>99</rasd:ResourceType>"), "no memory"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_ovf_is_refused(case, workdir):
    text, needle = MALFORMED[case]
    path = workdir / f"{case}.ovf"
    path.write_text(text)
    p = hsdk("kvm", "domain", "--from", path, check=False)
    assert p.returncode == 1, p.stdout
    assert p.stderr.startswith("hsdk: ")
    assert needle in p.stderr, p.stderr
    assert p.stdout == ""


# ---- OVA packages -----------------------------------------------------------------------------

def make_ova(workdir, name="web01", with_manifest=True, tamper=False, descriptor_first=True, extra_members=()):
    disk_raw = write_pattern(workdir / "disk.raw", 3 * MiB, seed=11)
    vmdk = workdir / f"{name}-disk1.vmdk"
    qemu_img("convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", disk_raw, vmdk)
    ovf_text = GOOD.replace('ovf:size="1048576"', f'ovf:size="{vmdk.stat().st_size}"')
    ovf = workdir / f"{name}.ovf"
    ovf.write_text(ovf_text)
    members = [(ovf.name, ovf.read_bytes()), (vmdk.name, vmdk.read_bytes())]
    if with_manifest:
        lines = "".join(f"SHA256({n})= {hashlib.sha256(b).hexdigest()}\n" for n, b in members)
        if tamper:
            lines = lines.replace(hashlib.sha256(members[1][1]).hexdigest(), "0" * 64)
        members.insert(1, (f"{name}.mf", lines.encode()))
    members += list(extra_members)
    if not descriptor_first:
        members.append(members.pop(0))
    ova = workdir / f"{name}.ova"
    with tarfile.open(ova, "w", format=tarfile.USTAR_FORMAT) as t:
        for n, b in members:
            info = tarfile.TarInfo(n)
            info.size = len(b)
            t.addfile(info, io.BytesIO(b))
    return ova


def test_ova_verify_ok_and_domain_from_ova(workdir):
    ova = make_ova(workdir)
    p = hsdk("ova", "verify", ova)
    assert "2 file(s) verified" in p.stdout
    xml_path, dom = domain_for(ova, "--disk-dir", workdir, workdir=workdir)
    assert_libvirt_accepts(xml_path)
    assert dom.findtext("name") == "web01"
    # GNU tar and Python agree with our listing.
    listing = hsdk("ova", "list", ova).stdout.split()
    assert "web01.ovf" in listing and "web01-disk1.vmdk" in listing


def test_ova_verify_detects_tampering(workdir):
    ova = make_ova(workdir, tamper=True)
    p = hsdk("ova", "verify", ova, check=False)
    assert p.returncode == 1
    assert "web01-disk1.vmdk" in p.stdout and "PROBLEM" in p.stdout


def test_ova_without_manifest_or_descriptor_first(workdir):
    p = hsdk("ova", "verify", make_ova(workdir, name="a", with_manifest=False), check=False)
    assert p.returncode == 1 and "no manifest" in p.stdout
    p = hsdk("ova", "verify", make_ova(workdir, name="b", descriptor_first=False), check=False)
    assert p.returncode == 1 and "not the first member" in p.stdout


def test_ova_unlisted_member_is_a_problem(workdir):
    p = hsdk("ova", "verify", make_ova(workdir, extra_members=[("extra.txt", b"smuggled")]), check=False)
    assert p.returncode == 1 and "extra.txt" in p.stdout


@pytest.mark.parametrize("hostile", ["../evil.vmdk", "/etc/passwd", "a/../../b"])
def test_ova_hostile_member_paths_are_refused(hostile, workdir):
    ova = workdir / "hostile.ova"
    with tarfile.open(ova, "w", format=tarfile.GNU_FORMAT) as t:
        for n, b in [("x.ovf", GOOD.encode()), (hostile, b"data")]:
            info = tarfile.TarInfo(n)
            info.size = len(b)
            t.addfile(info, io.BytesIO(b))
    p = hsdk("ova", "verify", ova, check=False)
    assert p.returncode == 1
    assert "refusing" in p.stderr


def test_ova_links_are_refused(workdir):
    ova = workdir / "link.ova"
    with tarfile.open(ova, "w") as t:
        info = tarfile.TarInfo("x.ovf")
        info.size = len(GOOD)
        t.addfile(info, io.BytesIO(GOOD.encode()))
        link = tarfile.TarInfo("disk.vmdk")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/shadow"
        t.addfile(link)
    p = hsdk("ova", "verify", ova, check=False)
    assert p.returncode == 1 and "link" in p.stderr


def test_truncated_ova(workdir):
    ova = make_ova(workdir)
    data = ova.read_bytes()
    cut = workdir / "cut.ova"
    cut.write_bytes(data[: len(data) // 2])
    p = hsdk("ova", "verify", cut, check=False)
    assert p.returncode == 1 and "corrupt image" in p.stderr


def test_ovf_folder_verify(workdir):
    ova = make_ova(workdir)
    folder = workdir / "unpacked"
    folder.mkdir()
    with tarfile.open(ova) as t:
        t.extractall(folder, filter="data")
    p = hsdk("ova", "verify", folder / "web01.ovf")
    assert "verified" in p.stdout
    with open(folder / "web01-disk1.vmdk", "r+b") as f:
        f.seek(2000)
        f.write(b"X")
    p = hsdk("ova", "verify", folder / "web01.ovf", check=False)
    assert p.returncode == 1


# ---- hyper2kvm manifest ------------------------------------------------------------------------

def test_hyper2kvm_manifest(workdir):
    disks = workdir / "disks"
    disks.mkdir()
    raw = write_pattern(workdir / "d.raw", 2 * MiB, seed=21)
    target = disks / "web01-disk1.qcow2"
    qemu_img("convert", "-f", "raw", "-O", "qcow2", raw, target)
    out = workdir / "manifest.json"
    hsdk("kvm", "manifest", "--from", OVF_DIR / "linux-bios-vcenter.ovf", "--disk-dir", disks, "--out", out)
    m = json.loads(out.read_text())
    assert m["manifest_version"] == 1
    assert m["source"]["provider"] == "ovf" and m["source"]["name"] == "web01"
    assert m["vm"]["cpu"]["count"] == 2 and m["vm"]["memory_mib"] == 2048
    assert m["vm"]["firmware"] == "bios" and m["vm"]["secure_boot"] is False
    assert m["vm"]["os"]["family"] == "linux"
    (d,) = m["disks"]
    assert d["local_path"] == str(target)
    assert d["bytes"] == target.stat().st_size
    assert d["sha256"] == hashlib.sha256(target.read_bytes()).hexdigest()
    assert d["boot_order"] == 1 and d["format"] == "qcow2"
    assert m["nics"][0]["mac"] == "00:50:56:9a:01:02"
    assert m["output"]["directory"] == str(disks)
    # Schema documented in docs/: the keys are all there.
    schema = json.loads((ROOT / "docs" / "hyper2kvm-manifest.schema.json").read_text())
    for key in schema["required"]:
        assert key in m


def test_hyper2kvm_manifest_missing_disk_fails(workdir):
    p = hsdk("kvm", "manifest", "--from", OVF_DIR / "linux-bios-vcenter.ovf", "--disk-dir", workdir, "--out", workdir / "m.json", check=False)
    assert p.returncode == 1 and "web01-disk1.qcow2" in p.stderr
    assert not (workdir / "m.json").exists()


# ---- kvm import: disks converted straight out of the package ---------------------------------

def make_qcow2_ova(workdir):
    """An OVA of ovf2-generic.ovf whose disk is a qcow2 (the descriptor names its format)."""
    raw = write_pattern(workdir / "root.raw", 10 * MiB, seed=31)
    disk = workdir / "app-root.qcow2"
    qemu_img("convert", "-f", "raw", "-O", "qcow2", raw, disk)
    text = (OVF_DIR / "ovf2-generic.ovf").read_text().replace(
        'ovf:capacity="10" ovf:capacityAllocationUnits="byte * 2^30"', f'ovf:capacity="{10 * MiB}"')
    members = [("appliance.ovf", text.encode()), ("app-root.qcow2", disk.read_bytes())]
    mf = "".join(f"SHA256({n})= {hashlib.sha256(b).hexdigest()}\n" for n, b in members)
    members.insert(1, ("appliance.mf", mf.encode()))
    ova = workdir / "appliance.ova"
    with tarfile.open(ova, "w", format=tarfile.USTAR_FORMAT) as t:
        for n, b in members:
            info = tarfile.TarInfo(n)
            info.size = len(b)
            t.addfile(info, io.BytesIO(b))
    return ova, raw


def test_kvm_import_from_ova(workdir):
    ova, raw = make_qcow2_ova(workdir)
    out = workdir / "kvm"
    p = hsdk("kvm", "import", "--from", ova, "--out", out, "--disk-format", "raw")
    disk = out / "app-root.raw"
    assert f"disk      {disk}" in p.stdout
    run(["qemu-img", "compare", "-f", "raw", "-F", "raw", raw, disk])
    xml = out / "appliance.xml"
    assert_libvirt_accepts(xml)
    assert str(disk) in xml.read_text()
    m = json.loads((out / "appliance.hyper2kvm.json").read_text())
    assert m["disks"][0]["sha256"] == hashlib.sha256(disk.read_bytes()).hexdigest()
    # A second import refuses to clobber without --overwrite, and leaves the first intact.
    p = hsdk("kvm", "import", "--from", ova, "--out", out, "--disk-format", "raw", check=False)
    assert p.returncode == 1 and "exists" in p.stderr


def test_kvm_import_refuses_tampered_ova(workdir):
    ova, _ = make_qcow2_ova(workdir)
    data = bytearray(ova.read_bytes())
    i = data.find(b"QFI\xfb")
    data[i + 4096] ^= 0xFF  # inside the disk member
    ova.write_bytes(bytes(data))
    out = workdir / "kvm"
    p = hsdk("kvm", "import", "--from", ova, "--out", out, check=False)
    assert p.returncode == 1 and "verification" in p.stderr
    assert not any(out.glob("*.qcow2"))


def test_kvm_import_blank_disk_from_ovf(workdir):
    text = GOOD.replace('ovf:fileRef="file1" ', "").replace('ovf:capacity="16"', 'ovf:capacity="1"')
    ovf = workdir / "blank.ovf"
    ovf.write_text(text)
    out = workdir / "kvm"
    hsdk("kvm", "import", "--from", ovf, "--out", out)
    info = json.loads(qemu_img("info", "--output=json", out / "vmdisk1.qcow2").stdout)
    assert info["virtual-size"] == 1 << 30
    assert_libvirt_accepts(out / "web01.xml")
