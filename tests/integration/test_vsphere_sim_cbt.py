"""The vSphere simulator's changed block tracking (tests/sim/vsphere/cbt.go), checked over plain
SOAP from the standard library: planted disk versions, changeIds on snapshot disk backings,
QueryChangedDiskAreas computed from the real content and paged, the datastore files of a planted
disk (with Range), the CBT reset switch and session expiry."""
import http.client
import re
import time
import urllib.parse
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

import pytest

from conftest import MiB, write_pattern
from vsphere_sim import PASSWORD, USERNAME, Simulator

VIM = "{urn:vim25}"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
ENVELOPE = ('<?xml version="1.0" encoding="UTF-8"?>'
            '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"'
            ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">'
            '<soapenv:Body>{}</soapenv:Body></soapenv:Envelope>')
BLOCK = 64 * 1024
VM_NAME = "DC0_C0_RP0_VM0"
SIZE = 8 * MiB + 16 * 1024  # the last 64 KiB block is short


class SoapFault(Exception):
    def __init__(self, name, detail, text):
        super().__init__(f"{name}: {text}")
        self.name = name
        self.detail = detail


def ref(kind, value):
    return f'<_this type="{kind}">{escape(value)}</_this>'


class Vim:
    """A minimal vim25 SOAP client: one HTTPS connection per call, the session cookie kept."""

    def __init__(self, sim):
        self.sim = sim
        self.cookie = None

    def call(self, method, this, inner=""):
        body = f'<{method} xmlns="urn:vim25">{this}{inner}</{method}>'
        conn = http.client.HTTPSConnection(self.sim.host, context=self.sim.ssl, timeout=30)
        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": "urn:vim25/6.5"}
        if self.cookie:
            headers["Cookie"] = self.cookie
        conn.request("POST", "/sdk", ENVELOPE.format(body).encode(), headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        set_cookie = resp.getheader("Set-Cookie")
        if set_cookie:
            self.cookie = set_cookie.split(";", 1)[0]
        root = ET.fromstring(data)
        fault = root.find(".//{http://schemas.xmlsoap.org/soap/envelope/}Fault")
        if fault is not None:
            detail = fault.find("detail")
            first = detail[0] if detail is not None and len(detail) else None
            name = first.get(XSI_TYPE) if first is not None else "?"
            raise SoapFault(name, first, fault.findtext("faultstring"))
        assert resp.status == 200, data
        return root.find(f".//{VIM}{method}Response")

    def login(self):
        self.call("RetrieveServiceContent", ref("ServiceInstance", "ServiceInstance"))
        self.call("Login", ref("SessionManager", "SessionManager"),
                  f"<userName>{escape(USERNAME)}</userName><password>{escape(PASSWORD)}</password>")

    def find_vm(self, name):
        res = self.call("FindByInventoryPath", ref("SearchIndex", "SearchIndex"),
                        f"<inventoryPath>DC0/vm/{name}</inventoryPath>")
        return res.findtext(f"{VIM}returnval")

    def prop(self, kind, value, path):
        res = self.call("RetrievePropertiesEx", ref("PropertyCollector", "propertyCollector"),
                        f"<specSet><propSet><type>{kind}</type><pathSet>{path}</pathSet></propSet>"
                        f'<objectSet><obj type="{kind}">{escape(value)}</obj></objectSet></specSet><options/>')
        for p in res.iter(f"{VIM}propSet"):
            if p.findtext(f"{VIM}name") == path:
                return p.find(f"{VIM}val")
        return None

    def wait(self, task):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            state = self.prop("Task", task, "info.state").text
            if state == "success":
                return self.prop("Task", task, "info.result")
            if state == "error":
                err = self.prop("Task", task, "info.error")
                raise SoapFault(err.find(f"{VIM}fault").get(XSI_TYPE), err, "task failed")
            time.sleep(0.02)
        raise AssertionError(f"task {task} did not finish")

    def disks(self, kind, value):
        """VirtualDisks of a VM's or a snapshot's config: key -> {file, change_id, capacity}."""
        out = {}
        for dev in self.prop(kind, value, "config.hardware.device"):
            if dev.get(XSI_TYPE) != "VirtualDisk":
                continue
            backing = dev.find(f"{VIM}backing")
            out[int(dev.findtext(f"{VIM}key"))] = {
                "file": backing.findtext(f"{VIM}fileName"),
                "change_id": backing.findtext(f"{VIM}changeId"),
                "capacity": int(dev.findtext(f"{VIM}capacityInBytes")),
            }
        return out

    def reconfigure_cbt(self, vm, enabled):
        task = self.call("ReconfigVM_Task", ref("VirtualMachine", vm),
                         f"<spec><changeTrackingEnabled>{str(enabled).lower()}</changeTrackingEnabled></spec>")
        self.wait(task.findtext(f"{VIM}returnval"))

    def snapshot(self, vm, name):
        task = self.call("CreateSnapshot_Task", ref("VirtualMachine", vm),
                         f"<name>{name}</name><memory>false</memory><quiesce>false</quiesce>")
        return self.wait(task.findtext(f"{VIM}returnval")).text

    def remove_snapshot(self, snap):
        task = self.call("RemoveSnapshot_Task", ref("VirtualMachineSnapshot", snap),
                         "<removeChildren>false</removeChildren>")
        self.wait(task.findtext(f"{VIM}returnval"))

    def changed_areas(self, vm, snap, key, offset, change_id):
        snap_xml = f'<snapshot type="VirtualMachineSnapshot">{snap}</snapshot>' if snap else ""
        res = self.call("QueryChangedDiskAreas", ref("VirtualMachine", vm),
                        f"{snap_xml}<deviceKey>{key}</deviceKey><startOffset>{offset}</startOffset>"
                        f"<changeId>{escape(change_id)}</changeId>")
        info = res.find(f"{VIM}returnval")
        areas = [(int(a.findtext(f"{VIM}start")), int(a.findtext(f"{VIM}length")))
                 for a in info.findall(f"{VIM}changedArea")]
        return int(info.findtext(f"{VIM}startOffset")), int(info.findtext(f"{VIM}length")), areas

    def all_changed_areas(self, vm, snap, key, change_id, capacity, max_areas):
        """Pages through QueryChangedDiskAreas as a backup client does; returns (areas, pages)."""
        offset, areas, pages = 0, [], 0
        while offset < capacity:
            start, length, page = self.changed_areas(vm, snap, key, offset, change_id)
            pages += 1
            assert start == offset
            assert len(page) <= max_areas
            assert length > 0 and start + length <= capacity
            for a_start, a_length in page:
                assert start <= a_start and a_start + a_length <= start + length
            if len(page) == max_areas and start + length < capacity:
                assert page[-1][0] + page[-1][1] == start + length  # cut short: ends at the last area
            areas += page
            offset = start + length
        assert offset == capacity
        return merge(areas), pages


def merge(areas):
    out = []
    for start, length in sorted(areas):
        if out and out[-1][0] + out[-1][1] == start:
            out[-1] = (out[-1][0], out[-1][1] + length)
        else:
            out.append((start, length))
    return out


def block_areas(blocks, size):
    """Merged areas of the given 64 KiB block numbers, the last block clipped to size."""
    return merge([(b * BLOCK, min(BLOCK, size - b * BLOCK)) for b in sorted(blocks)])


def nonzero_blocks(data):
    return {b for b in range((len(data) + BLOCK - 1) // BLOCK) if any(data[b * BLOCK:(b + 1) * BLOCK])}


def datastore_get(sim, datastore_path, range_header=None):
    ds, path = datastore_path[1:].split("] ", 1)
    query = urllib.parse.urlencode({"dcPath": "DC0", "dsName": ds})
    conn = http.client.HTTPSConnection(sim.host, context=sim.ssl, timeout=30)
    conn.request("GET", f"/folder/{urllib.parse.quote(path)}?{query}", headers={"Range": range_header} if range_header else {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, resp.getheader("Content-Range"), data


def extent_of(descriptor, datastore_path):
    """The datastore path of a monolithicFlat descriptor's one extent."""
    m = re.search(r'^RW (\d+) FLAT "([^"]+)" 0$', descriptor, re.M)
    assert m, descriptor
    folder = datastore_path.rsplit("/", 1)[0]
    return int(m.group(1)), f"{folder}/{m.group(2)}"


@pytest.fixture
def sim(workdir):
    s = Simulator(workdir)
    yield s
    s.stop()


def test_changed_block_tracking(sim, workdir):
    vim = Vim(sim)
    vim.login()
    vm = vim.find_vm(VM_NAME)
    other = vim.find_vm("DC0_C0_RP0_VM1")

    # Version 1: a seeded pattern with holes, zeros and data; planted as the disk's content.
    v1 = write_pattern(workdir / "v1.raw", SIZE, seed=11).read_bytes()
    sim.control(plant_disk={"vm": VM_NAME, "raw": str(workdir / "v1.raw")}, cbt_max_areas=2)
    (key, disk), = vim.disks("VirtualMachine", vm).items()
    assert disk["capacity"] == SIZE
    base_file = disk["file"]
    assert base_file == f"[LocalDS_0] {VM_NAME}/disk1.vmdk"

    # Change tracking is off: QueryChangedDiskAreas is not supported.
    with pytest.raises(SoapFault) as e:
        vim.changed_areas(vm, None, key, 0, "*")
    assert e.value.name == "NotSupported"

    vim.reconfigure_cbt(vm, True)
    assert vim.prop("VirtualMachine", vm, "config.changeTrackingEnabled").text == "true"
    s1 = vim.snapshot(vm, "s1")
    snap1_disk = vim.disks("VirtualMachineSnapshot", s1)[key]
    c1 = snap1_disk["change_id"]
    assert c1 and "/" in c1 and c1.endswith("/1")
    assert snap1_disk["file"] == base_file
    assert vim.disks("VirtualMachine", vm)[key]["change_id"] == c1

    # "*": exactly the 64 KiB blocks of v1 that are not all zero, over several pages.
    expect1 = block_areas(nonzero_blocks(v1), SIZE)
    assert len(expect1) > 2
    areas, pages = vim.all_changed_areas(vm, s1, key, "*", SIZE, 2)
    assert areas == expect1
    assert pages >= 2
    # A start offset inside an area clips it; nothing before the offset is returned.
    mid = expect1[1][0] + 512
    if expect1[1][1] > 512:
        start, _, page = vim.changed_areas(vm, s1, key, mid, "*")
        assert start == mid and page[0] == (mid, expect1[1][0] + expect1[1][1] - mid)

    # Version 2 differs in known blocks: 3-4 (adjacent, one area), 40, 77, a data block that
    # becomes zeros and the short last block.
    v2 = bytearray(v1)
    zeroed = next(b for b in range(95, 120) if b in nonzero_blocks(v1))
    changed = {3, 4, 40, 77, zeroed, SIZE // BLOCK}
    for b in changed - {zeroed}:
        pos = min(b * BLOCK + 17, SIZE - 1)
        v2[pos] = (v2[pos] + 1) % 256
    v2[zeroed * BLOCK:(zeroed + 1) * BLOCK] = bytes(BLOCK)
    (workdir / "v2.raw").write_bytes(v2)
    sim.control(plant_disk={"vm": VM_NAME, "raw": str(workdir / "v2.raw")})

    s2 = vim.snapshot(vm, "s2")
    snap2_disk = vim.disks("VirtualMachineSnapshot", s2)[key]
    c2 = snap2_disk["change_id"]
    assert c2.endswith("/2") and c2.rsplit("/", 1)[0] == c1.rsplit("/", 1)[0]
    # s1 keeps the base file; the disk moved on to a new file when v2 was planted.
    assert snap2_disk["file"] == f"[LocalDS_0] {VM_NAME}/disk1-000001.vmdk"
    assert vim.disks("VirtualMachineSnapshot", s1)[key] == snap1_disk
    assert vim.disks("VirtualMachine", vm)[key]["change_id"] == c2

    areas, pages = vim.all_changed_areas(vm, s2, key, c1, SIZE, 2)
    assert areas == block_areas(changed, SIZE)
    assert pages == 3  # 5 areas, 2 per reply
    # Planting v2 did not change what s1 answers.
    assert vim.all_changed_areas(vm, s1, key, "*", SIZE, 2)[0] == expect1

    state = sim.state()["cbt"][VM_NAME]
    assert state["enabled"] is True
    assert state["disks"][str(key)]["change_id"] == c2
    assert state["disks"][str(key)]["versions"] == 2

    # The snapshots' files on the datastore hold the snapshot-time bytes; Range is honoured.
    sim.control(reset_log=True)
    for snap_disk, content in ((snap1_disk, v1), (snap2_disk, bytes(v2))):
        status, _, desc = datastore_get(sim, snap_disk["file"])
        assert status == 200
        desc = desc.decode()
        assert 'createType="monolithicFlat"' in desc
        sectors, flat = extent_of(desc, snap_disk["file"])
        assert sectors * 512 == SIZE
        status, _, data = datastore_get(sim, flat)
        assert status == 200 and data == content
    status, content_range, data = datastore_get(sim, f"[LocalDS_0] {VM_NAME}/disk1-flat.vmdk", "bytes=65536-131071")
    assert status == 206 and content_range == f"bytes 65536-131071/{SIZE}" and data == v1[65536:131072]
    log = sim.state()["datastore_requests"]
    assert [r["status"] for r in log] == [200, 200, 200, 200, 206]
    assert log[-1]["range"] == "bytes=65536-131071" and log[-1]["bytes"] == 65536
    assert log[1]["bytes"] == SIZE and log[1]["path"] == f"/folder/{VM_NAME}/disk1-flat.vmdk"

    # Faults: unknown changeId, a disk key that is not a disk, another VM's snapshot.
    for args, prop in (((s2, key, 0, "52 00/7"), "changeId"), ((s2, 4000, 0, "*"), "deviceKey")):
        with pytest.raises(SoapFault) as e:
            vim.changed_areas(vm, *args)
        assert e.value.name == "InvalidArgument"
        assert e.value.detail.findtext(f"{VIM}invalidProperty") == prop
    s_other = vim.snapshot(other, "elsewhere")
    with pytest.raises(SoapFault) as e:
        vim.changed_areas(vm, s_other, key, 0, "*")
    assert e.value.name == "InvalidArgument" and e.value.detail.findtext(f"{VIM}invalidProperty") == "snapshot"

    # A CBT reset: c1 and c2 stop being valid; the next snapshot starts a new epoch at 1.
    sim.control(cbt_reset=VM_NAME)
    for change_id in (c1, c2):
        with pytest.raises(SoapFault) as e:
            vim.changed_areas(vm, s2, key, 0, change_id)
        assert e.value.name == "InvalidArgument"
        assert e.value.detail.findtext(f"{VIM}invalidProperty") == "changeId"
    assert sim.state()["cbt"][VM_NAME]["disks"][str(key)] == {
        "change_id": "", "versions": 0, "capacity": SIZE, "file": f"[LocalDS_0] {VM_NAME}/disk1-000001.vmdk"}
    s3 = vim.snapshot(vm, "s3")
    c3 = vim.disks("VirtualMachineSnapshot", s3)[key]["change_id"]
    assert c3.endswith("/1") and c3.rsplit("/", 1)[0] != c1.rsplit("/", 1)[0]
    assert vim.all_changed_areas(vm, s3, key, "*", SIZE, 2)[0] == block_areas(nonzero_blocks(v2), SIZE)
    with pytest.raises(SoapFault) as e:
        vim.changed_areas(vm, s3, key, 0, c2)
    assert e.value.name == "InvalidArgument"

    # Session expiry: the next call fails NotAuthenticated (also for the PropertyCollector);
    # a new Login works.
    sim.control(expire_sessions=True)
    with pytest.raises(SoapFault) as e:
        vim.prop("VirtualMachine", vm, "name")
    assert e.value.name == "NotAuthenticated"
    with pytest.raises(SoapFault) as e:
        vim.changed_areas(vm, s3, key, 0, "*")
    assert e.value.name == "NotAuthenticated"
    vim.login()
    assert vim.prop("VirtualMachine", vm, "name").text == VM_NAME

    for snap in (s3, s2, s1):
        vim.remove_snapshot(snap)
    vim.remove_snapshot(s_other)
    assert sim.state()["snapshots"][VM_NAME] == 0
