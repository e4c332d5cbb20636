"""Changed-block backups against the vSphere simulator (tests/sim/vsphere: planted disk versions,
changeIds on snapshot disk backings, QueryChangedDiskAreas computed from the real content and
paged 4 areas per reply, datastore files with Range): hsdk cbt, hsdk backup (full, then
incrementals as qcow2 overlays), hsdk backup list|prune, hsdk restore, hsdk chain, hsdk delta.
Each link is judged by qemu-img (check, info --backing-chain, compare)."""
import json
import pathlib
import random
import shutil
import subprocess

import pytest

from conftest import HSDK, MiB, hsdk, qemu_img, qemu_info, write_pattern
from vsphere_sim import PASSWORD, Simulator, cli_env

VM_NAME = "DC0_C0_RP0_VM0"
VM = f"/DC0/vm/{VM_NAME}"
SIZE = 16 * MiB
BLOCK = 64 * 1024


def planted_versions(folder, count, seed=7):
    """Version 0 from the usual pattern; each next one changes about 5% of the 64 KiB blocks
    (data rewritten, some blocks zeroed, a few bytes poked at odd offsets)."""
    rng = random.Random(seed)
    v0 = write_pattern(folder / "v0.raw", SIZE, seed=seed)
    data = bytearray(v0.read_bytes())
    paths = [v0]
    blocks = SIZE // BLOCK
    for k in range(1, count):
        for b in rng.sample(range(blocks), max(1, blocks // 20)):
            start = b * BLOCK + rng.randrange(0, BLOCK // 2)
            length = rng.randrange(1, BLOCK // 2)
            if rng.random() < 0.25:
                data[start:start + length] = bytes(length)
            else:
                data[start:start + length] = rng.randbytes(length)
        p = folder / f"v{k}.raw"
        p.write_bytes(bytes(data))
        paths.append(p)
    return paths


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    s = Simulator(tmp_path_factory.mktemp("sim"))
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def clean_faults(sim):
    sim.control(faults={}, reset_log=True)
    yield


@pytest.fixture(scope="module")
def versions(tmp_path_factory):
    return planted_versions(tmp_path_factory.mktemp("versions"), 10)


def plant(sim, raw, vm=VM_NAME):
    sim.control(plant_disk={"vm": vm, "raw": str(raw)})


def h(sim, *args, check=True):
    return hsdk(*args[:1], *args[1:], *sim.cli_args(), check=check, env=cli_env())


def backup(sim, repo, *extra, check=True, vm=VM):
    p = hsdk("backup", *sim.cli_args(), "--vm", vm, "--repo", str(repo), "--json", *extra, check=check, env=cli_env())
    return p, (json.loads(p.stdout) if p.returncode == 0 else None)


def no_snapshots(sim, vm=VM_NAME):
    assert sim.state()["snapshots"][vm] == 0, sim.state()["snapshots"]


def folder(repo):
    return pathlib.Path(repo) / VM_NAME


def test_cbt_enable_then_ten_points_restore_at_1_5_10(sim, versions, tmp_path):
    plant(sim, versions[0])
    status = json.loads(hsdk("cbt", "status", *sim.cli_args(), "--vm", VM, "--json", env=cli_env()).stdout)
    assert status["enabled"] is False and status["disks"][0]["change_id"] == ""
    repo = tmp_path / "repo"
    p, _ = backup(sim, repo, check=False)
    assert p.returncode == 1 and "changed-block tracking is off" in p.stderr and "hsdk cbt enable" in p.stderr
    no_snapshots(sim)
    assert not folder(repo).exists() or not (folder(repo) / "state.json").exists()

    on = json.loads(hsdk("cbt", "enable", *sim.cli_args(), "--vm", VM, "--json", env=cli_env()).stdout)
    assert on["enabled"] is True and on["disks"][0]["change_id"]
    no_snapshots(sim)  # the activating snapshot is gone again

    results = []
    for k, raw in enumerate(versions):
        if k:
            plant(sim, raw)
        _, r = backup(sim, repo)
        results.append(r)
        no_snapshots(sim)
        assert r["point"] == str(k + 1)
        assert r["kind"] == ("full" if k == 0 else "incremental")
        d = r["disks"][0]
        assert d["full"] is (k == 0) and d["capacity"] == SIZE and d["change_id"]
        link = pathlib.Path(d["file"])
        assert link.parent == folder(repo)
        qemu_img("check", "-f", "qcow2", link)
        if k:
            # Only the changed blocks moved (about 5% of the disk, widened to clusters).
            assert d["bytes_read"] <= SIZE // 10, d
            assert d["backing_file"] == pathlib.Path(results[k - 1]["disks"][0]["file"]).name
            info = qemu_info(link)
            assert info["backing-filename"] == d["backing_file"] and info["backing-filename-format"] == "qcow2"
            # QEMU sees the whole disk at that point through the chain.
            qemu_img("compare", "-f", "raw", "-F", "qcow2", raw, link)
    chain = json.loads(qemu_img("info", "--backing-chain", "--output=json", results[-1]["disks"][0]["file"]).stdout)
    assert len(chain) == 10

    listed = json.loads(hsdk("backup", "list", "--repo", str(repo), "--json").stdout)
    assert [p["id"] for p in listed["vms"][0]["points"]] == [str(i) for i in range(1, 11)]
    assert listed["vms"][0]["vm"]["inventory_path"] == VM

    verified = json.loads(hsdk("chain", "verify", "--json", results[-1]["disks"][0]["file"]).stdout)
    assert verified["ok"] and verified["hashes_checked"] == 10 and len(verified["links"]) == 10

    for point in (1, 5, 10):
        out = tmp_path / f"restore-{point}"
        r = json.loads(hsdk("restore", "--repo", str(repo), "--vm", VM_NAME, "--point", str(point), "-O", "raw",
                            "--out", str(out), "--json").stdout)
        qemu_img("compare", "-f", "raw", "-F", "raw", versions[point - 1], r["files"][0])
    latest = json.loads(hsdk("restore", "--repo", str(repo), "--vm", VM, "-O", "qcow2", "--out", str(tmp_path / "latest"),
                             "--json").stdout)
    qemu_img("compare", "-f", "raw", "-F", "qcow2", versions[-1], latest["files"][0])

    # The state names no secret.
    state = (folder(repo) / "state.json").read_text()
    assert PASSWORD not in state and "password" not in state


def test_reset_tracking_gives_a_full_copy_with_a_notice(sim, versions, tmp_path):
    plant(sim, versions[0])
    hsdk("cbt", "enable", *sim.cli_args(), "--vm", VM, env=cli_env())
    repo = tmp_path / "repo"
    backup(sim, repo)
    plant(sim, versions[1])
    sim.control(cbt_reset=VM_NAME)
    _, r = backup(sim, repo)
    d = r["disks"][0]
    assert d["full"] is True and "no longer knows change id" in d["notice"] and d["backing_file"] == ""
    assert r["kind"] == "full"
    qemu_img("compare", "-f", "raw", "-F", "qcow2", versions[1], d["file"])
    # The next one is incremental again, from the new change id.
    plant(sim, versions[2])
    _, r = backup(sim, repo)
    assert r["kind"] == "incremental"
    qemu_img("compare", "-f", "raw", "-F", "qcow2", versions[2], r["disks"][0]["file"])
    no_snapshots(sim)


def test_leftover_snapshots_are_removed_and_too_many_are_refused(sim, versions, tmp_path):
    plant(sim, versions[0])
    hsdk("cbt", "enable", *sim.cli_args(), "--vm", VM, env=cli_env())
    # A crashed run's snapshot: removed before the new one is taken.
    hsdk("vms", "snapshots", "create", *sim.cli_args(), "--vm", VM, "--name", "hsdk-backup-crashed", env=cli_env())
    repo = tmp_path / "repo"
    backup(sim, repo)
    no_snapshots(sim)
    # 28 snapshots of someone else's: refused, and none of ours left.
    ids = [json.loads(hsdk("vms", "snapshots", "create", *sim.cli_args(), "--vm", VM, "--name", f"user-{i}", "--json",
                           env=cli_env()).stdout)["snapshot"] for i in range(28)]
    p, _ = backup(sim, repo, check=False)
    assert p.returncode == 1 and "already has 28 snapshots" in p.stderr
    assert sim.state()["snapshots"][VM_NAME] == 28
    for sid in ids:
        hsdk("vms", "snapshots", "remove", *sim.cli_args(), "--vm", VM, "--snapshot", sid, env=cli_env())
    no_snapshots(sim)


def test_prune_folds_the_oldest_kept_point_and_keeps_every_point_restorable(sim, versions, tmp_path):
    plant(sim, versions[0])
    hsdk("cbt", "enable", *sim.cli_args(), "--vm", VM, env=cli_env())
    repo = tmp_path / "repo"
    for k in range(5):
        if k:
            plant(sim, versions[k])
        backup(sim, repo)
    r = json.loads(hsdk("backup", "prune", "--repo", str(repo), "--vm", VM_NAME, "--keep-last", "2", "--json").stdout)
    assert r["removed_points"] == ["1", "2", "3"] and r["kept_points"] == ["4", "5"]
    assert len(r["removed_files"]) == 3 and len(r["folded_files"]) == 1
    files = sorted(p.name for p in folder(repo).glob("*.qcow2"))
    assert files == [f"{VM_NAME}-disk1.4.qcow2", f"{VM_NAME}-disk1.5.qcow2"]
    assert "backing-filename" not in qemu_info(folder(repo) / files[0])
    for point, raw in (("4", versions[3]), ("5", versions[4])):
        out = tmp_path / f"r{point}"
        res = json.loads(hsdk("restore", "--repo", str(repo), "--vm", VM_NAME, "--point", point, "-O", "raw", "--out", str(out),
                              "--json").stdout)
        qemu_img("compare", "-f", "raw", "-F", "raw", raw, res["files"][0])
    assert json.loads(hsdk("chain", "verify", "--json", str(folder(repo) / files[1])).stdout)["ok"]
    # The next incremental builds on what is left.
    plant(sim, versions[5])
    _, b = backup(sim, repo)
    assert b["kind"] == "incremental" and b["point"] == "6"
    qemu_img("compare", "-f", "raw", "-F", "qcow2", versions[5], b["disks"][0]["file"])


def test_damaged_links_and_foreign_state_are_refused(sim, versions, tmp_path):
    plant(sim, versions[0])
    hsdk("cbt", "enable", *sim.cli_args(), "--vm", VM, env=cli_env())
    repo = tmp_path / "repo"
    backup(sim, repo)
    plant(sim, versions[1])
    _, second = backup(sim, repo)
    base = folder(repo) / f"{VM_NAME}-disk1.1.qcow2"

    # A changed byte in the base: verify names the file, restore refuses and writes nothing.
    blob = bytearray(base.read_bytes())
    blob[len(blob) - 100] ^= 0xFF
    saved = base.read_bytes()
    base.write_bytes(bytes(blob))
    v = hsdk("chain", "verify", second["disks"][0]["file"], check=False)
    assert v.returncode == 1 and "the repository recorded" in v.stderr and base.name in v.stderr
    out = tmp_path / "restored"
    p = hsdk("restore", "--repo", str(repo), "--vm", VM_NAME, "-O", "raw", "--out", str(out), check=False)
    assert p.returncode == 1 and "cannot be restored" in p.stderr
    assert not out.exists() or list(out.iterdir()) == []

    # A missing link.
    base.unlink()
    v = hsdk("chain", "verify", second["disks"][0]["file"], check=False)
    assert v.returncode == 1 and "missing" in v.stderr
    base.write_bytes(saved)
    assert json.loads(hsdk("chain", "verify", "--json", second["disks"][0]["file"]).stdout)["ok"]

    # A state document of another VM in this VM's folder.
    state_path = folder(repo) / "state.json"
    state = json.loads(state_path.read_text())
    state["vm"]["instance_uuid"] = "00000000-0000-0000-0000-000000000000"
    state["vm"]["uuid"] = "00000000-0000-0000-0000-000000000001"
    state_path.write_text(json.dumps(state))
    p, _ = backup(sim, repo, check=False)
    assert p.returncode == 1 and "holds backups of another VM" in p.stderr
    no_snapshots(sim)

    # A state document that is not one.
    state_path.write_text("{not json")
    p, _ = backup(sim, repo, check=False)
    assert p.returncode == 1 and "not a backup state document" in p.stderr


def test_a_session_ending_during_the_copy_logs_in_again(sim, versions, tmp_path):
    """The simulator ends every session after the 5th datastore read (and answers 401 to reads
    with the old cookie): the reader logs in again, and so do the SOAP calls after the copy."""
    plant(sim, versions[0])
    hsdk("cbt", "enable", *sim.cli_args(), "--vm", VM, env=cli_env())
    sim.control(faults={"ds_expire_after": 5}, reset_log=True)
    repo = tmp_path / "repo"
    p, r = backup(sim, repo, "--requests", "2", "-v")
    assert r["kind"] == "full"
    assert "logging in again" in p.stderr
    statuses = [q["status"] for q in sim.state()["datastore_requests"]]
    assert 401 in statuses and statuses[-1] in (200, 206)
    assert sim.state()["calls"]["Login"] >= 2
    qemu_img("compare", "-f", "raw", "-F", "qcow2", versions[0], r["disks"][0]["file"])
    no_snapshots(sim)
    sim.control(faults={})


def plant_streamable(sim, raw, tmp_path):
    """Plants `raw`, then puts a stream-optimized VMDK of it where the VM's disk file is: what an
    export lease serves (the simulator's leases serve the disk file as it is)."""
    plant(sim, raw)
    current = sim.state()["cbt"][VM_NAME]["disks"]["204"]["file"]
    vmdk = tmp_path / (raw.stem + ".stream.vmdk")
    qemu_img("convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", raw, vmdk)
    sim.upload(current, vmdk.read_bytes())


def test_refused_datastore_reads_fall_back_to_the_export_stream(sim, versions, tmp_path):
    hsdk("cbt", "enable", *sim.cli_args(), "--vm", VM, env=cli_env())
    plant_streamable(sim, versions[0], tmp_path)
    sim.control(faults={"ds_status": 403}, reset_log=True)
    repo = tmp_path / "repo"
    p, r = backup(sim, repo)
    d = r["disks"][0]
    assert d["whole_disk_transferred"] is True and d["full"] is True
    assert "export stream" in p.stderr
    st = sim.state()
    assert st["calls"].get("ExportSnapshot", 0) == 1 and st["calls"].get("HttpNfcLeaseComplete", 0) == 1
    qemu_img("compare", "-f", "raw", "-F", "qcow2", versions[0], d["file"])
    no_snapshots(sim)

    plant_streamable(sim, versions[1], tmp_path)
    _, r = backup(sim, repo)
    d = r["disks"][0]
    assert d["whole_disk_transferred"] is True and d["full"] is False and d["backing_file"]
    assert d["bytes_written"] <= SIZE // 8  # only the changed grains were kept
    qemu_img("compare", "-f", "raw", "-F", "qcow2", versions[1], d["file"])
    assert not list(folder(repo).glob(".*"))  # no kept parts or staged links left
    no_snapshots(sim)
    sim.control(faults={})


def test_a_damaged_export_stream_adds_nothing(sim, versions, tmp_path):
    hsdk("cbt", "enable", *sim.cli_args(), "--vm", VM, env=cli_env())
    plant_streamable(sim, versions[0], tmp_path)
    sim.control(faults={"ds_status": 403, "nfc_corrupt": True}, reset_log=True)
    repo = tmp_path / "repo"
    p, _ = backup(sim, repo, check=False)
    # The flipped byte is caught by whichever check meets it first: the stream's parser (a grain
    # that no longer inflates) or the manifest's SHA-1.
    assert p.returncode == 1 and ("checksum mismatch" in p.stderr or "damaged" in p.stderr), p.stderr
    st = sim.state()
    assert st["calls"].get("HttpNfcLeaseAbort", 0) == 1 and st["calls"].get("HttpNfcLeaseComplete", 0) == 0
    assert not (folder(repo) / "state.json").exists() and not list(folder(repo).glob("*"))
    no_snapshots(sim)


def test_the_export_stream_is_checked_against_the_lease_manifest(sim, versions, tmp_path):
    hsdk("cbt", "enable", *sim.cli_args(), "--vm", VM, env=cli_env())
    plant_streamable(sim, versions[0], tmp_path)
    sim.control(faults={"ds_status": 403, "nfc_manifest_mismatch": True}, reset_log=True)
    repo = tmp_path / "repo"
    p, _ = backup(sim, repo, check=False)
    assert p.returncode == 1 and "checksum mismatch" in p.stderr and "the server's manifest says" in p.stderr
    assert sim.state()["calls"].get("HttpNfcLeaseAbort", 0) == 1
    assert not list(folder(repo).glob("*"))
    no_snapshots(sim)


def test_points_name_their_snapshot_and_prune_by_age(sim, versions, tmp_path):
    plant(sim, versions[0])
    hsdk("cbt", "enable", *sim.cli_args(), "--vm", VM, env=cli_env())
    repo = tmp_path / "repo"
    _, first = backup(sim, repo)
    # The point names its snapshot, which is gone again.
    listed = json.loads(hsdk("vms", "snapshots", "list", *sim.cli_args(), "--vm", VM, "--json", env=cli_env()).stdout)
    assert first["snapshot"] and first["snapshot"] not in [x["id"] for x in listed["snapshots"]]
    for k in (1, 2):
        plant(sim, versions[k])
        backup(sim, repo)
    # Nothing is older than a day: nothing goes.
    r = json.loads(hsdk("backup", "prune", "--repo", str(repo), "--vm", VM_NAME, "--keep-days", "1", "--json").stdout)
    assert r["removed_points"] == [] and r["kept_points"] == ["1", "2", "3"]
    # Points 1 and 2 made ten days old: they go, point 3 becomes the base.
    state_path = folder(repo) / "state.json"
    state = json.loads(state_path.read_text())
    for p in state["points"][:2]:
        p["created"] = "2026-01-01T00:00:00Z"
    state_path.write_text(json.dumps(state))
    r = json.loads(hsdk("backup", "prune", "--repo", str(repo), "--vm", VM_NAME, "--keep-days", "1", "--json").stdout)
    assert r["removed_points"] == ["1", "2"] and r["kept_points"] == ["3"] and len(r["folded_files"]) == 1
    out = tmp_path / "r3"
    res = json.loads(hsdk("restore", "--repo", str(repo), "--vm", VM_NAME, "-O", "raw", "--out", str(out), "--json").stdout)
    qemu_img("compare", "-f", "raw", "-F", "raw", versions[2], res["files"][0])
    no_snapshots(sim)


def test_a_full_repository_disk_fails_cleanly(sim, versions, tmp_path):
    """The repository is a 4 MiB tmpfs (in a user + mount namespace): ENOSPC while writing the
    link. The error says so, no link or state is left, and the snapshot is removed."""
    probe = subprocess.run(["unshare", "-r", "-m", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("user namespaces are not available here: " + probe.stderr.decode())
    plant(sim, versions[0])
    hsdk("cbt", "enable", *sim.cli_args(), "--vm", VM, env=cli_env())
    repo = tmp_path / "small"
    repo.mkdir()
    args = " ".join(f"'{a}'" for a in ["backup", *sim.cli_args(), "--vm", VM, "--repo", str(repo)])
    script = f"mount -t tmpfs -o size=4m tmpfs '{repo}' && '{HSDK}' {args}; echo rc=$?; ls -A '{repo}/{VM_NAME}'"
    p = subprocess.run(["unshare", "-r", "-m", "sh", "-c", script], capture_output=True, text=True, env=cli_env(), timeout=120)
    assert "rc=1" in p.stdout, p.stdout + p.stderr
    assert "no space" in p.stderr.lower() or "space left" in p.stderr.lower(), p.stderr
    assert p.stdout.split("rc=1", 1)[1].split() == []  # no link, no state, no temporaries
    no_snapshots(sim)


def test_full_flag_starts_a_new_chain(sim, versions, tmp_path):
    plant(sim, versions[0])
    hsdk("cbt", "enable", *sim.cli_args(), "--vm", VM, env=cli_env())
    repo = tmp_path / "repo"
    backup(sim, repo)
    plant(sim, versions[1])
    _, r = backup(sim, repo, "--full")
    assert r["kind"] == "full" and r["disks"][0]["backing_file"] == ""
    qemu_img("compare", "-f", "raw", "-F", "qcow2", versions[1], r["disks"][0]["file"])


def test_providers_without_tracking_say_so(tmp_path):
    p = hsdk("backup", "--provider", "nosuch", "--config", "{}", "--vm", "x", "--repo", str(tmp_path / "r"), check=False)
    assert p.returncode == 1 and "no provider named 'nosuch'" in p.stderr


# ---- local diffs and chains without a server ----------------------------------------------------

def test_delta_create_from_a_local_diff(tmp_path):
    versions = planted_versions(tmp_path, 3, seed=21)
    base = tmp_path / "base.qcow2"
    qemu_img("convert", "-f", "raw", "-O", "qcow2", versions[0], base)
    d1 = json.loads(hsdk("delta", "create", "-f", "raw", "--base", str(versions[0]), "--new", str(versions[1]),
                         "--backing", "base.qcow2", str(tmp_path / "d1.qcow2"), "--json").stdout)
    assert d1["backing_format"] == "qcow2" and 0 < d1["changed_bytes"] <= SIZE // 10
    d2 = json.loads(hsdk("delta", "create", "-f", "raw", "--base", str(versions[1]), "--new", str(versions[2]),
                         "--backing", "d1.qcow2", "-F", "qcow2", str(tmp_path / "d2.qcow2"), "--json").stdout)
    for link in ("d1.qcow2", "d2.qcow2"):
        qemu_img("check", "-f", "qcow2", tmp_path / link)
    qemu_img("compare", "-f", "raw", "-F", "qcow2", versions[1], tmp_path / "d1.qcow2")
    qemu_img("compare", "-f", "raw", "-F", "qcow2", versions[2], tmp_path / "d2.qcow2")
    assert qemu_info(tmp_path / "d2.qcow2")["actual-size"] < SIZE // 4
    info = json.loads(hsdk("chain", "info", "--json", str(tmp_path / "d2.qcow2")).stdout)
    assert [pathlib.Path(l["file"]).name for l in info["links"]] == ["d2.qcow2", "d1.qcow2", "base.qcow2"]
    assert d2["changed_runs"] > 0
    # Flattened at any point into any format, atomically.
    hsdk("chain", "flatten", str(tmp_path / "d1.qcow2"), "-O", "vhdx", str(tmp_path / "p1.vhdx"))
    qemu_img("compare", "-f", "raw", "-F", "vhdx", versions[1], tmp_path / "p1.vhdx")
    # A delta whose size differs from its base is refused, and nothing is written.
    small = write_pattern(tmp_path / "small.raw", SIZE // 2, seed=3)
    p = hsdk("delta", "create", "-f", "raw", "--base", str(small), "--new", str(versions[1]), "--backing", "base.qcow2",
             str(tmp_path / "bad.qcow2"), check=False)
    assert p.returncode == 1 and "differ in size" in p.stderr and not (tmp_path / "bad.qcow2").exists()
    # A flatten whose chain is broken leaves no output.
    shutil.move(tmp_path / "d1.qcow2", tmp_path / "d1.moved")
    p = hsdk("chain", "flatten", str(tmp_path / "d2.qcow2"), "-O", "raw", str(tmp_path / "broken.raw"), check=False)
    assert p.returncode == 1 and not (tmp_path / "broken.raw").exists()
