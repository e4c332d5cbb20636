"""hsdk vms list / hsdk export against govmomi's vSphere simulator (tests/sim/vsphere): TLS
choices, credentials, discovery, ExportVm and snapshot exports, retries, Range resume, manifest
checks, lease errors, a full disk, cancel, and clean-up on every failure."""
import hashlib
import json
import os
import pathlib
import signal
import subprocess
import time

import pytest

from conftest import HSDK, MiB, hsdk, qemu_img, write_pattern
from vsphere_sim import PASSWORD, USERNAME, Simulator, cli_env

VM = "/DC0/vm/DC0_H0_VM0"
VM_BACKING = "[LocalDS_0] DC0_H0_VM0/disk1.vmdk"
VM1 = "/DC0/vm/DC0_H0_VM1"
VM1_BACKING = "[LocalDS_0] DC0_H0_VM1/disk1.vmdk"


@pytest.fixture(scope="module")
def disk_image(tmp_path_factory):
    """A streamOptimized VMDK made by qemu-img from a seeded pattern: what the lease will serve."""
    d = tmp_path_factory.mktemp("image")
    raw = write_pattern(d / "disk.raw", 16 * MiB, seed=5150)
    vmdk = d / "disk.vmdk"
    qemu_img("convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", raw, vmdk)
    return vmdk.read_bytes()


@pytest.fixture(scope="module")
def sim(tmp_path_factory, disk_image):
    s = Simulator(tmp_path_factory.mktemp("sim"))
    s.upload(VM_BACKING, disk_image)
    s.upload(VM1_BACKING, disk_image)
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def reset(request):
    if "sim" in request.fixturenames:
        s = request.getfixturevalue("sim")
        s.control(faults={}, reset_log=True, power_on=["DC0_H0_VM0", "DC0_H0_VM1"])
    yield


def export(sim, out, *extra, check=True, trust="ca", vm=VM, fmt="vmdk"):
    return hsdk("export", *sim.cli_args(trust), "--vm", vm, "--out", out, "--format", fmt, *extra, check=check, env=cli_env())


def outputs(folder):
    return sorted(p.name for p in pathlib.Path(folder).iterdir()) if pathlib.Path(folder).exists() else []


def assert_clean_server(sim, vm_name="DC0_H0_VM0"):
    st = sim.state()
    assert st["snapshots"][vm_name] == 0, st
    return st


# ---- discovery and connection ------------------------------------------------------------

def test_vms_list_json(sim):
    p = hsdk("vms", "list", "--json", *sim.cli_args(), env=cli_env())
    vms = {vm["inventory_path"]: vm for vm in json.loads(p.stdout)}
    assert VM in vms and VM1 in vms
    vm = vms[VM]
    assert vm["provider"] == "vsphere"
    assert vm["name"] == "DC0_H0_VM0"
    assert vm["power_state"] == "poweredOn"
    assert vm["memory_mib"] > 0 and vm["cpus"] >= 1 and vm["cores_per_socket"] >= 1
    assert vm["firmware"] in ("bios", "efi")
    assert len(vm["disks"]) == 1
    disk = vm["disks"][0]
    assert disk["backing_file"] == VM_BACKING
    assert disk["datastore"] == "LocalDS_0"
    assert disk["controller"] == "scsi" and disk["capacity_bytes"] > 0
    assert vm["nics"] and vm["nics"][0]["mac"].count(":") == 5
    assert vm["nics"][0]["network"] and vm["nics"][0]["adapter_type"]


def test_vms_list_human(sim):
    p = hsdk("vms", "list", *sim.cli_args(), env=cli_env())
    assert VM in p.stdout and "power: poweredOn" in p.stdout and VM_BACKING in p.stdout


def test_pinned_thumbprint_and_insecure_connect(sim):
    assert VM in hsdk("vms", "list", *sim.cli_args("thumbprint"), env=cli_env()).stdout
    assert VM in hsdk("vms", "list", *sim.cli_args("insecure"), env=cli_env()).stdout


def test_wrong_thumbprint_is_a_tls_error(sim):
    args = sim.cli_args("none") + ["--thumbprint", "AB" * 32]
    p = hsdk("vms", "list", *args, env=cli_env(), check=False)
    assert p.returncode == 1
    assert "thumbprint" in p.stderr


def test_untrusted_certificate_is_refused_by_default(sim):
    p = hsdk("vms", "list", *sim.cli_args("none"), env=cli_env(), check=False)
    assert p.returncode == 1
    assert "certificate" in p.stderr.lower() or "ssl" in p.stderr.lower()


def test_wrong_password_is_auth_failed_and_never_echoed(sim):
    p = hsdk("vms", "list", *sim.cli_args(), env=cli_env("not-the-password"), check=False)
    assert p.returncode == 1
    assert "authentication failed" in p.stderr
    assert "not-the-password" not in p.stderr and "not-the-password" not in p.stdout


def test_password_file_and_govc_environment(sim, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD + "\n")
    p = hsdk("vms", "list", "--url", sim.url, "-u", USERNAME, "--password-file", pw, "--ca-file", sim.ca_file)
    assert VM in p.stdout
    env = cli_env()
    env.update(GOVC_URL=f"https://{USERNAME}:{PASSWORD}@{sim.host}/sdk", GOVC_INSECURE="1")
    p = hsdk("vms", "list", env=env)
    assert VM in p.stdout
    env = cli_env()
    env.update(GOVC_URL=sim.url, GOVC_USERNAME=USERNAME, GOVC_PASSWORD=PASSWORD)
    p = hsdk("vms", "list", "--ca-file", sim.ca_file, env=env)
    assert VM in p.stdout


def test_password_is_not_accepted_on_the_command_line(sim):
    p = hsdk("vms", "list", "--url", sim.url, "-u", USERNAME, "--password", PASSWORD, check=False)
    assert p.returncode == 2


# ---- exports that work -------------------------------------------------------------------

def test_export_running_vm_through_a_snapshot(sim, tmp_path, disk_image):
    out = tmp_path / "out"
    p = export(sim, out, "-p")
    disk = out / "DC0_H0_VM0-disk1.vmdk"
    assert outputs(out) == [disk.name]
    assert disk.read_bytes() == disk_image
    assert "ExportSnapshot" in p.stdout and str(disk) in p.stdout
    # -p without a terminal: a plain line per phase (and every few seconds), as qemu-img -p prints.
    for phase in ("connecting", "snapshot", "exporting disk 1 of 1", "manifest", "cleanup"):
        assert f"hsdk: {phase}: " in p.stderr
    st = assert_clean_server(sim)
    calls = st["calls"]
    assert calls["CreateSnapshot_Task"] == 1 and calls["RemoveSnapshot_Task"] == 1
    assert calls["HttpNfcLeaseComplete"] == 1 and "HttpNfcLeaseAbort" not in calls
    # A download shorter than the keep-alive interval needs no HttpNfcLeaseProgress: every call is a
    # round trip to a possibly distant server (HttpNfcLeaseComplete says 100%).
    assert "HttpNfcLeaseProgress" not in calls and calls["HttpNfcLeaseGetManifest"] == 1
    assert calls["Logout"] >= 1
    # The export produced a VMDK qemu-img reads back as the pattern.
    assert json.loads(qemu_img("info", "--output=json", disk).stdout)["format"] == "vmdk"


def test_export_ova_verifies(sim, tmp_path, disk_image):
    out = tmp_path / "out"
    p = export(sim, out, "-p", fmt="ova")
    ova = out / "DC0_H0_VM0.ova"
    assert outputs(out) == [ova.name]
    assert "hsdk: manifest: " in p.stderr
    v = hsdk("ova", "verify", ova)
    assert "2 file(s) verified" in v.stdout
    members = subprocess.run(["tar", "tf", ova], capture_output=True, text=True, check=True).stdout.split()
    assert members == ["DC0_H0_VM0.ovf", "DC0_H0_VM0.mf", "DC0_H0_VM0-disk1.vmdk"]
    disk = subprocess.run(["tar", "xOf", ova, "DC0_H0_VM0-disk1.vmdk"], capture_output=True, check=True).stdout
    assert disk == disk_image
    assert_clean_server(sim)


def test_export_ovf_folder(sim, tmp_path, disk_image):
    out = tmp_path / "out"
    export(sim, out, fmt="ovf")
    assert outputs(out) == ["DC0_H0_VM0-disk1.vmdk", "DC0_H0_VM0.mf", "DC0_H0_VM0.ovf"]
    assert (out / "DC0_H0_VM0-disk1.vmdk").read_bytes() == disk_image
    mf = (out / "DC0_H0_VM0.mf").read_text()
    assert f"SHA256(DC0_H0_VM0-disk1.vmdk)= {hashlib.sha256(disk_image).hexdigest()}\n" in mf
    ovf = (out / "DC0_H0_VM0.ovf").read_text()
    assert 'ovf:href="DC0_H0_VM0-disk1.vmdk"' in ovf and "<NetworkSection>" in ovf and "<VirtualSystem" in ovf
    subprocess.run(["xmllint", "--noout", out / "DC0_H0_VM0.ovf"], check=True)


def test_export_powered_off_vm_uses_exportvm(sim, tmp_path, disk_image):
    sim.control(power_off=["DC0_H0_VM0"])
    out = tmp_path / "out"
    p = export(sim, out, "--transport", "nfc")
    assert "(ExportVm)" in p.stdout
    assert (out / "DC0_H0_VM0-disk1.vmdk").read_bytes() == disk_image
    calls = sim.state()["calls"]
    assert calls["ExportVm"] == 1 and "CreateSnapshot_Task" not in calls


def test_existing_output_is_not_replaced_without_overwrite(sim, tmp_path, disk_image):
    out = tmp_path / "out"
    out.mkdir()
    (out / "DC0_H0_VM0-disk1.vmdk").write_bytes(b"keep me")
    p = export(sim, out, check=False)
    assert p.returncode == 1 and "already exists" in p.stderr
    assert (out / "DC0_H0_VM0-disk1.vmdk").read_bytes() == b"keep me"
    export(sim, out, "--overwrite")
    assert (out / "DC0_H0_VM0-disk1.vmdk").read_bytes() == disk_image


def test_datastore_transport(sim, tmp_path, disk_image):
    out = tmp_path / "out"
    p = export(sim, out, "--transport", "datastore")
    assert "(datastore" in p.stdout
    assert (out / "DC0_H0_VM0-disk1.vmdk").read_bytes() == disk_image
    assert_clean_server(sim)  # the running VM's snapshot is gone again


def test_c_abi_list_and_export_with_progress(sim, tmp_path, disk_image):
    """The same through the shared library's C ABI (ctypes), progress callback included."""
    import ctypes

    lib = ctypes.CDLL(str(HSDK.parents[2] / "src" / "libhypersdk.so"))

    class VsphereOptions(ctypes.Structure):
        _fields_ = [("struct_size", ctypes.c_size_t), ("url", ctypes.c_char_p), ("username", ctypes.c_char_p),
                    ("password", ctypes.c_char_p), ("insecure", ctypes.c_int), ("ca_file", ctypes.c_char_p),
                    ("thumbprint", ctypes.c_char_p), ("max_attempts", ctypes.c_uint), ("cancel", ctypes.c_void_p)]

    class Progress(ctypes.Structure):
        _fields_ = [("struct_size", ctypes.c_size_t), ("phase", ctypes.c_char_p), ("disk_index", ctypes.c_uint),
                    ("disk_count", ctypes.c_uint), ("disk_bytes_done", ctypes.c_uint64), ("disk_bytes_total", ctypes.c_uint64),
                    ("bytes_done", ctypes.c_uint64), ("bytes_total", ctypes.c_uint64), ("rate", ctypes.c_double),
                    ("eta", ctypes.c_double)]

    ProgressFn = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(Progress), ctypes.c_void_p)

    class ExportOptions(ctypes.Structure):
        _fields_ = [("struct_size", ctypes.c_size_t), ("connection", ctypes.POINTER(VsphereOptions)), ("vm", ctypes.c_char_p),
                    ("output_dir", ctypes.c_char_p), ("format", ctypes.c_char_p), ("resume", ctypes.c_int),
                    ("quiesce", ctypes.c_int), ("parallel", ctypes.c_uint), ("overwrite", ctypes.c_int),
                    ("transport", ctypes.c_char_p), ("progress", ProgressFn), ("progress_user_data", ctypes.c_void_p)]

    lib.hsdk_last_error.restype = ctypes.POINTER(ctypes.c_int)
    conn = VsphereOptions(ctypes.sizeof(VsphereOptions), sim.url.encode(), USERNAME.encode(), PASSWORD.encode(), 0,
                          sim.ca_file.encode(), None, 0, None)
    out_json = ctypes.c_void_p()
    assert lib.hsdk_vsphere_list_vms_json(ctypes.byref(out_json), ctypes.byref(conn)) == 0
    vms = json.loads(ctypes.string_at(out_json).decode())
    lib.hsdk_string_free(out_json)
    assert VM in [v["inventory_path"] for v in vms]

    seen = []

    def on_progress(p, _):
        seen.append((p.contents.phase.decode(), p.contents.bytes_done))
        return 0

    cb = ProgressFn(on_progress)
    out = tmp_path / "capi"
    opts = ExportOptions(ctypes.sizeof(ExportOptions), ctypes.pointer(conn), VM.encode(), str(out).encode(), b"vmdk", 0, 0,
                         1, 0, None, cb, None)
    result = ctypes.c_void_p()
    assert lib.hsdk_export(ctypes.byref(result), ctypes.byref(opts)) == 0
    res = json.loads(ctypes.string_at(result).decode())
    lib.hsdk_string_free(result)
    assert res["method"] == "ExportSnapshot" and res["snapshot_used"] is True
    assert pathlib.Path(res["files"][0]).read_bytes() == disk_image
    assert res["vm"]["disks"][0]["sha256"]
    phases = [s for s, _ in seen]
    assert phases[0] == "connecting" and "exporting disk 1 of 1" in phases and phases[-1] == "cleanup"

    # A wrong password through the C ABI: HSDK_E_AUTH_FAILED (-9).
    bad = VsphereOptions(ctypes.sizeof(VsphereOptions), sim.url.encode(), USERNAME.encode(), b"nope", 0,
                         sim.ca_file.encode(), None, 0, None)
    assert lib.hsdk_vsphere_list_vms_json(ctypes.byref(out_json), ctypes.byref(bad)) == -9


# ---- transient failures, Range, resume ---------------------------------------------------

def test_connection_drop_is_retried_with_range(sim, tmp_path, disk_image):
    sim.control(faults={"nfc_drop_after": 1_000_000})
    out = tmp_path / "out"
    export(sim, out)
    assert (out / "DC0_H0_VM0-disk1.vmdk").read_bytes() == disk_image
    reqs = sim.state()["nfc_requests"]
    assert [r["range"] for r in reqs] == ["", "bytes=1000000-"]
    assert reqs[1]["status"] == 206


def test_server_ignoring_range_restarts_from_zero(sim, tmp_path, disk_image):
    sim.control(faults={"nfc_drop_after": 1_000_000, "nfc_ignore_range": True})
    out = tmp_path / "out"
    export(sim, out)
    assert (out / "DC0_H0_VM0-disk1.vmdk").read_bytes() == disk_image
    reqs = sim.state()["nfc_requests"]
    assert reqs[1]["range"] == "bytes=1000000-" and reqs[1]["status"] == 200


def test_5xx_is_retried_then_given_up(sim, tmp_path, disk_image):
    sim.control(faults={"nfc_status": 503, "nfc_status_count": 2})
    out = tmp_path / "ok"
    export(sim, out, "--retries", "3")
    assert (out / "DC0_H0_VM0-disk1.vmdk").read_bytes() == disk_image
    sim.control(faults={"nfc_status": 503, "nfc_status_count": 10}, reset_log=True)
    out = tmp_path / "fail"
    p = export(sim, out, "--retries", "2", check=False)
    assert p.returncode == 1 and "HTTP 503" in p.stderr
    assert len(sim.state()["nfc_requests"]) == 2
    assert "DC0_H0_VM0-disk1.vmdk" not in outputs(out)
    st = assert_clean_server(sim)
    assert st["calls"]["HttpNfcLeaseAbort"] == 1


def kill_server_mid_export(tmp_path, out, disk_image, fmt, *flags):
    """Exports from a simulator that dies after 3 MB of the disk; checks that nothing looks
    finished and returns the number of bytes the resumable partial file keeps."""
    first = Simulator(tmp_path / "a")
    try:
        first.upload(VM_BACKING, disk_image)
        first.control(power_off=["DC0_H0_VM0"], faults={"nfc_kill_after": 3_000_000})
        p = export(first, out, *flags, "--retries", "2", fmt=fmt, check=False)
        assert p.returncode == 1
        first.proc.wait(timeout=30)  # it really died mid-download
    finally:
        first.stop()
    disk = f"DC0_H0_VM0-disk1.{fmt}"
    names = outputs(out)
    assert disk not in names  # nothing that looks finished
    partial = out / f"{disk}.hsdk-partial"
    assert partial.exists() and f"{disk}.hsdk-resume" in names
    kept = partial.stat().st_size
    assert 0 < kept <= 3_000_000
    return kept


def resume_export(tmp_path, out, disk_image, fmt, kept):
    """Runs the export again with --resume against a fresh simulator serving the same disk;
    checks that it resumed with one Range request from the kept byte and left only the disk."""
    second = Simulator(tmp_path / "b")
    try:
        second.upload(VM_BACKING, disk_image)
        second.control(power_off=["DC0_H0_VM0"])
        p = export(second, out, "--resume", fmt=fmt)
        assert "resumed" in p.stdout
        assert outputs(out) == [f"DC0_H0_VM0-disk1.{fmt}"]  # partial and state files are gone
        assert [r["range"] for r in second.state()["nfc_requests"]] == [f"bytes={kept}-"]
    finally:
        second.stop()
    return out / f"DC0_H0_VM0-disk1.{fmt}"


def test_killed_server_then_resume_is_byte_identical(tmp_path, disk_image):
    out = tmp_path / "out"
    kept = kill_server_mid_export(tmp_path, out, disk_image, "vmdk")
    disk = resume_export(tmp_path, out, disk_image, "vmdk", kept)
    assert disk.read_bytes() == disk_image


def test_killed_server_then_resume_of_a_converted_export(tmp_path, served_vmdk, disk_image):
    """--resume with a converting format keeps the received stream; the next run replays it into a
    fresh conversion and continues with Range. Without --resume nothing but the output is written."""
    out = tmp_path / "out"
    kept = kill_server_mid_export(tmp_path, out, disk_image, "qcow2", "--resume")
    disk = resume_export(tmp_path, out, disk_image, "qcow2", kept)
    qemu_img("compare", "-f", "vmdk", "-F", "qcow2", served_vmdk, disk)
    qemu_img("check", "-f", "qcow2", disk)


# ---- snapshots through the provider session ------------------------------------------------

def snapshots(sim, *args, check=True):
    return hsdk("vms", "snapshots", *args, *sim.cli_args(), check=check, env=cli_env())


def test_snapshots_create_list_remove(sim):
    before = json.loads(snapshots(sim, "list", "--vm", VM, "--json").stdout)["snapshots"]
    created = json.loads(snapshots(sim, "create", "--vm", VM, "--name", "hsdk-test-point", "--json").stdout)
    sid = created["snapshot"]
    assert sid and created["provider"] == "vsphere"
    listed = json.loads(snapshots(sim, "list", "--vm", VM, "--json").stdout)["snapshots"]
    mine = [s for s in listed if s["id"] == sid]
    assert len(listed) == len(before) + 1 and mine and mine[0]["name"] == "hsdk-test-point" and mine[0]["created"]
    # The human listing names it too.
    assert "hsdk-test-point" in snapshots(sim, "list", "--vm", VM).stdout
    snapshots(sim, "remove", "--vm", VM, "--snapshot", sid)
    assert json.loads(snapshots(sim, "list", "--vm", VM, "--json").stdout)["snapshots"] == before
    gone = snapshots(sim, "remove", "--vm", VM, "--snapshot", sid, check=False)
    assert gone.returncode == 1 and "no snapshot" in gone.stderr
    assert_clean_server(sim)


def test_snapshots_of_an_unknown_vm_are_not_found(sim):
    p = snapshots(sim, "list", "--vm", "/DC0/vm/no-such-vm", "--json", check=False)
    assert p.returncode == 1 and "not found" in p.stderr


def test_free_space_is_checked_before_any_byte_moves(sim, tmp_path):
    """A 2 MiB tmpfs output folder: the pre-flight (1.2 x the disk bytes vSphere's layoutEx
    reports) refuses before the download, names both figures, and releases lease and snapshot."""
    probe = subprocess.run(["unshare", "-r", "-m", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("user namespaces are not available here: " + probe.stderr.decode())
    out = tmp_path / "small"
    out.mkdir()
    args = " ".join(f"'{a}'" for a in ["export", *sim.cli_args(), "--vm", VM, "--out", str(out), "--format", "qcow2"])
    script = f"mount -t tmpfs -o size=2m tmpfs '{out}' && '{HSDK}' {args}; echo rc=$?; ls -a '{out}'"
    p = subprocess.run(["unshare", "-r", "-m", "sh", "-c", script], capture_output=True, text=True, env=cli_env(), timeout=120)
    assert "rc=1" in p.stdout, p.stdout + p.stderr
    assert "not enough space" in p.stderr and "needs about" in p.stderr and "are free" in p.stderr, p.stderr
    assert "--no-space-check" in p.stderr
    assert p.stdout.split("rc=1", 1)[1].split() == [".", ".."]
    st = assert_clean_server(sim)
    assert st["nfc_requests"] == [] or not st["nfc_requests"], st
    assert st["calls"]["HttpNfcLeaseAbort"] == 1 and st["calls"].get("HttpNfcLeaseComplete", 0) == 0


# ---- failures that must clean up -----------------------------------------------------------

def test_unknown_vm_is_not_found(sim, tmp_path):
    p = export(sim, tmp_path / "out", vm="/DC0/vm/no-such-vm", check=False)
    assert p.returncode == 1 and "not found" in p.stderr
    assert outputs(tmp_path / "out") == []


def test_bytes_not_matching_the_manifest(sim, tmp_path):
    sim.control(faults={"nfc_corrupt": True})
    out = tmp_path / "out"
    p = export(sim, out, check=False)
    assert p.returncode == 1 and "checksum mismatch" in p.stderr
    assert outputs(out) == []  # bad bytes are not kept, not even as resumable state
    st = assert_clean_server(sim)
    assert st["calls"]["HttpNfcLeaseAbort"] == 1 and "HttpNfcLeaseComplete" not in st["calls"]


def test_lease_error(sim, tmp_path):
    sim.control(faults={"lease_error": True})
    out = tmp_path / "out"
    p = export(sim, out, vm=VM1, check=False)
    assert p.returncode == 1 and "injected lease failure" in p.stderr
    assert outputs(out) == []
    st = assert_clean_server(sim, "DC0_H0_VM1")
    assert st["calls"]["RemoveSnapshot_Task"] == 1 and st["calls"]["HttpNfcLeaseAbort"] == 1


def test_full_disk(sim, tmp_path):
    """The output folder is a 2 MiB tmpfs (in a user + mount namespace): ENOSPC mid-download."""
    probe = subprocess.run(["unshare", "-r", "-m", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("user namespaces are not available here: " + probe.stderr.decode())
    out = tmp_path / "small"
    out.mkdir()
    args = " ".join(f"'{a}'" for a in ["export", *sim.cli_args(), "--vm", VM, "--out", str(out), "--format", "vmdk",
                                        "--no-space-check"])
    script = f"mount -t tmpfs -o size=2m tmpfs '{out}' && '{HSDK}' {args}; echo rc=$?; ls -a '{out}'"
    p = subprocess.run(["unshare", "-r", "-m", "sh", "-c", script], capture_output=True, text=True, env=cli_env(), timeout=120)
    assert "rc=1" in p.stdout, p.stdout + p.stderr
    assert "no space" in p.stderr.lower(), p.stderr
    assert "DC0_H0_VM0-disk1.vmdk\n" not in p.stdout
    st = assert_clean_server(sim)
    assert st["calls"]["HttpNfcLeaseAbort"] == 1


def test_cancel_stops_promptly_and_cleans_up(sim, tmp_path):
    sim.control(faults={"nfc_stall_after": 500_000})
    out = tmp_path / "out"
    proc = subprocess.Popen([str(HSDK), "export", *sim.cli_args(), "--vm", VM, "--out", str(out), "--format", "vmdk"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env())
    # Wait (by state, not by time) until the download is under way, then interrupt.
    for _ in range(3000):
        if sim.state()["nfc_requests"]:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "cancelled by SIGINT" in stderr  # 128 + SIGINT, after clean-up
    assert "DC0_H0_VM0-disk1.vmdk" not in outputs(out)
    st = assert_clean_server(sim)
    assert st["calls"]["HttpNfcLeaseAbort"] == 1


# ---- streamed conversion: the lease's VMDK straight into another format ---------------------

@pytest.fixture(scope="module")
def served_vmdk(tmp_path_factory, disk_image):
    """The bytes the lease serves, as a file qemu-img can compare against."""
    p = tmp_path_factory.mktemp("served") / "served.vmdk"
    p.write_bytes(disk_image)
    return p


QEMU_NAME = {"qcow2": "qcow2", "raw": "raw", "vhd": "vpc", "vhdx": "vhdx", "vdi": "vdi"}


@pytest.mark.parametrize("fmt", sorted(QEMU_NAME))
def test_export_streams_into_any_format(sim, tmp_path, served_vmdk, fmt):
    out = tmp_path / "out"
    export(sim, out, fmt=fmt)
    disk = out / f"DC0_H0_VM0-disk1.{fmt}"
    assert outputs(out) == [disk.name]  # no intermediate VMDK, no partial file
    qemu_img("compare", "-f", "vmdk", "-F", QEMU_NAME[fmt], served_vmdk, disk)
    if fmt in ("qcow2", "vhdx", "vdi"):
        qemu_img("check", "-f", QEMU_NAME[fmt], disk)
    st = assert_clean_server(sim)
    assert st["calls"]["HttpNfcLeaseComplete"] == 1


def test_export_writes_the_hyper2kvm_manifest_when_asked(sim, tmp_path, served_vmdk):
    out = tmp_path / "out"
    export(sim, out, "--hyper2kvm-manifest", fmt="qcow2")
    manifest_path = out / "DC0_H0_VM0.hyper2kvm.json"
    manifest = json.loads(manifest_path.read_text())
    disk = out / "DC0_H0_VM0-disk1.qcow2"
    assert sorted(p.name for p in out.iterdir()) == [disk.name, manifest_path.name]
    text = json.dumps(manifest)
    assert hashlib.sha256(disk.read_bytes()).hexdigest() in text and str(disk) in text
    # An OVA is turned into a KVM guest by kvm import instead.
    p = export(sim, tmp_path / "ova", "--hyper2kvm-manifest", fmt="ova", check=False)
    assert p.returncode == 1 and "kvm import" in p.stderr
    assert outputs(tmp_path / "ova") == []


def test_streamed_export_takes_format_options(sim, tmp_path, served_vmdk):
    out = tmp_path / "out"
    export(sim, out, "-c", "-o", "cluster_size=16k,compression_type=zstd", fmt="qcow2")
    disk = out / "DC0_H0_VM0-disk1.qcow2"
    info = json.loads(qemu_img("info", "--output=json", disk).stdout)
    assert info["cluster-size"] == 16384 and info["format-specific"]["data"]["compression-type"] == "zstd"
    qemu_img("compare", "-f", "vmdk", "-F", "qcow2", served_vmdk, disk)


def test_streamed_export_survives_a_dropped_connection(sim, tmp_path, served_vmdk):
    sim.control(faults={"nfc_drop_after": 1_000_000})
    out = tmp_path / "out"
    export(sim, out, fmt="qcow2")
    qemu_img("compare", "-f", "vmdk", "-F", "qcow2", served_vmdk, out / "DC0_H0_VM0-disk1.qcow2")
    assert [r["range"] for r in sim.state()["nfc_requests"]] == ["", "bytes=1000000-"]


def test_streamed_export_restarts_when_range_is_ignored(sim, tmp_path, served_vmdk):
    sim.control(faults={"nfc_drop_after": 1_000_000, "nfc_ignore_range": True})
    out = tmp_path / "out"
    export(sim, out, fmt="vhdx")
    qemu_img("compare", "-f", "vmdk", "-F", "vhdx", served_vmdk, out / "DC0_H0_VM0-disk1.vhdx")
    assert sim.state()["nfc_requests"][1]["status"] == 200


def test_streamed_export_with_bad_bytes_leaves_nothing(sim, tmp_path):
    sim.control(faults={"nfc_corrupt": True})
    out = tmp_path / "out"
    p = export(sim, out, fmt="qcow2", check=False)
    assert p.returncode == 1
    assert outputs(out) == []  # neither a converted disk nor a temporary one
    st = assert_clean_server(sim)
    assert st["calls"]["HttpNfcLeaseAbort"] == 1


def test_streamed_export_from_the_datastore(sim, tmp_path, served_vmdk):
    out = tmp_path / "out"
    export(sim, out, "--transport", "datastore", fmt="raw")
    qemu_img("compare", "-f", "vmdk", "-F", "raw", served_vmdk, out / "DC0_H0_VM0-disk1.raw")
    assert outputs(out) == ["DC0_H0_VM0-disk1.raw"]


def test_unknown_format_is_a_usage_error(sim, tmp_path):
    p = export(sim, tmp_path / "x", fmt="floppy", check=False)
    assert p.returncode == 2
    assert "CreateSnapshot_Task" not in sim.state()["calls"]


# ---- ESXi: lease URLs with a '*' host ------------------------------------------------------

def test_esx_star_host_is_replaced(tmp_path, disk_image):
    esx = Simulator(tmp_path / "esx", esx=True)
    try:
        vms = json.loads(hsdk("vms", "list", "--json", *esx.cli_args(), env=cli_env()).stdout)
        vm = vms[0]
        esx.upload(vm["disks"][0]["backing_file"], disk_image, dc="ha-datacenter")
        out = tmp_path / "out"
        export(esx, out, vm=vm["inventory_path"])
        files = list(out.iterdir())
        assert len(files) == 1 and files[0].read_bytes() == disk_image
    finally:
        esx.stop()


def test_an_export_makes_few_round_trips_over_one_connection(sim, tmp_path):
    """Counted from outside: a relay in front of the simulator, named in its lease URLs, sees every
    connection. Discovery is one RetrievePropertiesEx, SOAP calls, the lease download and the
    clean-up share one connection, and a short download needs no HttpNfcLeaseProgress."""
    from tcp_relay import TcpRelay

    sim.control(power_off=["DC0_H0_VM0"])
    relay = TcpRelay(sim.host)
    try:
        sim.control(server_url=f"https://{relay.host}/sdk", reset_log=True)
        out = tmp_path / "out"
        args = ["--url", f"https://{relay.host}/sdk", "--username", "exporter", "--password-env", "HSDK_TEST_PASSWORD",
                "--ca-file", sim.ca_file]
        hsdk("export", *args, "--vm", VM, "--out", out, "--format", "ovf", env=cli_env())
        assert relay.connections() == 1, relay.connections()
        calls = sim.state()["calls"]
        assert sum(calls.values()) <= 9 and calls["RetrievePropertiesEx"] <= 2, calls
        assert (out / "DC0_H0_VM0-disk1.vmdk").exists() and (out / "DC0_H0_VM0.mf").exists()
    finally:
        sim.control(server_url=sim.url)
        relay.stop()
