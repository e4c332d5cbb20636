"""Warm migration against the vSphere simulator (tests/sim/vsphere: planted disk versions, changeIds
and QueryChangedDiskAreas computed from the real content, datastore files served with Range and an
optional per-request latency, ShutdownGuest from govmomi's simulator): hsdk migrate --warm, run
whole and one step at a time, with disk versions planted between rounds and kill -9 at each step.
Targets are judged by qemu-img (check, compare against the planted raw version)."""
import json
import os
import pathlib
import signal
import subprocess
import time

import pytest

from conftest import HSDK, hsdk, qemu_img, qemu_info
from test_backup import SIZE, VM, VM_NAME, planted_versions, plant, no_snapshots
from vsphere_sim import PASSWORD, Simulator, cli_env


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    s = Simulator(tmp_path_factory.mktemp("sim"))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def versions(tmp_path_factory):
    return planted_versions(tmp_path_factory.mktemp("versions"), 5, seed=11)


@pytest.fixture(autouse=True)
def fresh_vm(sim, versions):
    """Each test starts from version 0 on a running VM with tracking on and no faults."""
    sim.control(faults={}, reset_log=True, power_on=[VM_NAME])
    plant(sim, versions[0])
    hsdk("cbt", "enable", *sim.cli_args(), "--vm", VM, "--json", env=cli_env())
    yield
    sim.control(faults={})


def migrate(sim, out, *extra, check=True):
    p = hsdk("migrate", "--warm", *sim.cli_args(), "--vm", VM, "--out", str(out), "--format", "qcow2", "--json", *extra,
             check=check, env=cli_env())
    return p, (json.loads(p.stdout) if p.returncode == 0 else None)


def target_of(result):
    return pathlib.Path(result["disks"][0]["file"])


def assert_target_is(target, raw):
    qemu_img("check", "-f", "qcow2", target)
    qemu_img("compare", "-f", "raw", "-F", "qcow2", raw, target)


def state(out):
    return json.loads((pathlib.Path(out) / "warm-migration.json").read_text())


def test_steps_precopy_rounds_then_cutover(sim, versions, tmp_path):
    out = tmp_path / "out"
    _, r0 = migrate(sim, out, "--step", "precopy")
    no_snapshots(sim)
    assert r0["phase"] == "precopy" and [r["kind"] for r in r0["rounds"]] == ["full"]
    assert r0["predicted_downtime_seconds"] < 0 and r0["next_round_in_seconds"] == 0  # no rates measured yet
    target = target_of(r0)
    assert target.parent == out and target.suffix == ".qcow2"
    assert_target_is(target, versions[0])
    info = qemu_info(target)
    assert info["format"] == "qcow2" and info["virtual-size"] == SIZE
    st = state(out)
    assert st["phase"] == "precopy" and st["pending"] is None and st["disks"][0]["change_id"]
    assert PASSWORD not in (out / "warm-migration.json").read_text()

    for k in (1, 2):
        plant(sim, versions[k])
        _, r = migrate(sim, out, "--step", "precopy", "--downtime-budget", "60s", "--interval", "30m")
        no_snapshots(sim)
        last = r["rounds"][-1]
        assert last["kind"] == "delta" and last["round"] == k
        # Only the changed blocks moved (about 5% of the disk).
        assert 0 < last["bytes_read"] <= SIZE // 8, last
        assert last["dirty_rate"] > 0 and last["transfer_rate"] > 0
        assert r["predicted_downtime_seconds"] >= 0 and r["converged"] is True
        assert 0 <= r["next_round_in_seconds"] <= 30 * 60
        assert_target_is(target, versions[k])

    # The target file is updated in place: the same inode throughout.
    inode = target.stat().st_ino
    plant(sim, versions[3])
    _, done = migrate(sim, out, "--step", "cutover")
    no_snapshots(sim)
    assert done["phase"] == "done" and done["stopped"] == "guest_shutdown"
    assert done["rounds"][-1]["kind"] == "final"
    assert target.stat().st_ino == inode
    assert_target_is(target, versions[3])
    last = done["rounds"][-1]
    # Downtime <= last delta / transfer rate + 60 s.
    assert done["measured_downtime_seconds"] is not None
    assert done["measured_downtime_seconds"] <= last["bytes_read"] / last["transfer_rate"] + 60
    names = {pathlib.Path(f).name for f in done["files"]}
    assert {target.name, f"{VM_NAME}.json", f"{VM_NAME}.xml", f"{VM_NAME}.hyper2kvm.json"} <= names
    domain = (out / f"{VM_NAME}.xml").read_text()
    assert str(target) in domain and "type='qcow2'" in domain
    manifest = json.loads((out / f"{VM_NAME}.hyper2kvm.json").read_text())
    assert json.dumps(manifest).count(target.name) >= 1

    # Repeating a finished step changes nothing; status needs no connection.
    _, again = migrate(sim, out, "--step", "cutover")
    assert again["phase"] == "done" and len(again["rounds"]) == len(done["rounds"])
    p = hsdk("migrate", "--warm", "--step", "status", "--out", str(out), "--json")
    status = json.loads(p.stdout)
    assert status["phase"] == "done" and status["measured_downtime_seconds"] == done["measured_downtime_seconds"]
    text = hsdk("migrate", "--warm", "--step", "status", "--out", str(out)).stdout
    assert "measured downtime" in text and "round 0 (full)" in text

    # A precopy after the cutover began is refused.
    p, _ = migrate(sim, out, "--step", "precopy", check=False)
    assert p.returncode != 0


def test_run_converges_then_cuts_over(sim, versions, tmp_path):
    out = tmp_path / "out"
    plant(sim, versions[2])
    _, r = migrate(sim, out, "--downtime-budget", "60s")
    no_snapshots(sim)
    kinds = [x["kind"] for x in r["rounds"]]
    assert kinds[0] == "full" and "delta" in kinds and kinds[-1] == "final", kinds
    assert r["phase"] == "done" and r["converged"] is True and r["predicted_downtime_seconds"] >= 0
    assert_target_is(target_of(r), versions[2])


def test_raw_target_and_format_refused(sim, versions, tmp_path):
    out = tmp_path / "raw"
    p = hsdk("migrate", "--warm", *sim.cli_args(), "--vm", VM, "--out", str(out), "--format", "raw", "--step", "precopy", "--json",
             env=cli_env())
    r = json.loads(p.stdout)
    target = target_of(r)
    assert target.suffix == ".raw"
    qemu_img("compare", "-f", "raw", "-F", "raw", versions[0], target)
    # Sparse: the holes of the planted disk stay holes.
    assert os.stat(target).st_blocks * 512 < SIZE
    p = hsdk("migrate", "--warm", *sim.cli_args(), "--vm", VM, "--out", str(tmp_path / "vmdk"), "--format", "vmdk", check=False, env=cli_env())
    assert p.returncode == 2 and "vmdk" in p.stderr
    p = hsdk("run", "migrate.warm", "--json", "-r", json.dumps({"out": str(tmp_path / "v2"), "vm": VM, "format": "vdi"}), check=False)
    assert p.returncode != 0
    # Another format for the same folder is refused, nothing overwritten.
    p, _ = migrate(sim, out, "--step", "precopy", check=False)
    assert p.returncode != 0 and "raw" in p.stderr


def test_pipelined_reads_with_latency(sim, versions, tmp_path):
    """With 20 ms per datastore request, a disk's reads overlap: at least 8 in flight."""
    sim.control(faults={"ds_latency_ms": 20})
    _, r = migrate(sim, tmp_path / "out", "--step", "precopy")
    assert r["rounds"][0]["peak_requests_in_flight"] >= 8, r["rounds"][0]
    _, one = migrate(sim, tmp_path / "one", "--step", "precopy", "--requests-in-flight", "1")
    assert one["rounds"][0]["peak_requests_in_flight"] == 1
    assert_target_is(target_of(one), versions[0])


def start_killable(sim, out, *extra):
    args = [str(HSDK), "migrate", "--warm", *sim.cli_args(), "--vm", VM, "--out", str(out), "--format", "qcow2", "--json", *extra]
    return subprocess.Popen(args, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_state(proc, out, predicate, timeout=60):
    deadline = time.monotonic() + timeout
    path = pathlib.Path(out) / "warm-migration.json"
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            st = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            st = None
        if st is not None and predicate(st):
            return st
        time.sleep(0.02)
    raise AssertionError(f"the state never got there: {path.read_text() if path.exists() else 'no state'}")


def kill9(proc):
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def snapshots(sim):
    return sim.state()["snapshots"][VM_NAME]


def pending_done(st):
    p = st["pending"]
    return sum(l for runs in p["done"].values() for _, l in runs) if p else 0


def test_kill_during_the_initial_copy_resumes_without_copying_again(sim, versions, tmp_path):
    out = tmp_path / "out"
    sim.control(faults={"ds_latency_ms": 150})
    proc = start_killable(sim, out, "--step", "precopy", "--requests-in-flight", "2")
    st = wait_for_state(proc, out, lambda s: pending_done(s) > 0)
    kill9(proc)
    copied = pending_done(state(out))
    assert copied > 0 and state(out)["pending"]["kind"] == "full"
    assert snapshots(sim) == 1  # the killed run's snapshot, until the next run
    sim.control(faults={})
    plant(sim, versions[1])  # the VM went on writing meanwhile
    _, r = migrate(sim, out, "--step", "precopy")
    no_snapshots(sim)
    resumed = r["rounds"][0]
    assert len(r["rounds"]) == 1 and resumed["kind"] == "full"
    # What reached the target before the kill was not read again (only what changed since).
    planned = sum(l for runs in st["pending"]["plan"].values() for _, l in runs)
    assert resumed["bytes_read"] < planned, (resumed, planned, copied)
    assert_target_is(target_of(r), versions[1])


def test_kill_between_snapshot_and_read(sim, versions, tmp_path):
    out = tmp_path / "out"
    migrate(sim, out, "--step", "precopy")
    plant(sim, versions[1])
    sim.control(faults={"ds_latency_ms": 3000})
    proc = start_killable(sim, out, "--step", "precopy")
    st = wait_for_state(proc, out, lambda s: s["pending"] is not None)
    kill9(proc)
    assert pending_done(st) == 0 and snapshots(sim) == 1
    sim.control(faults={})
    plant(sim, versions[2])
    _, r = migrate(sim, out, "--step", "precopy")
    no_snapshots(sim)
    assert [x["kind"] for x in r["rounds"]] == ["full", "delta"]
    assert_target_is(target_of(r), versions[2])


def test_kill_during_cutover_then_cutover_again(sim, versions, tmp_path):
    out = tmp_path / "out"
    migrate(sim, out, "--step", "precopy")
    plant(sim, versions[4])
    sim.control(faults={"ds_latency_ms": 300})
    proc = start_killable(sim, out, "--step", "cutover", "--requests-in-flight", "1")
    wait_for_state(proc, out, lambda s: s["phase"] == "cutover" and s["pending"] is not None and s["pending"]["kind"] == "final")
    kill9(proc)
    assert snapshots(sim) == 1
    sim.control(faults={})
    p, _ = migrate(sim, out, "--step", "precopy", check=False)
    assert p.returncode != 0 and "--step cutover" in p.stderr
    _, r = migrate(sim, out, "--step", "cutover")
    no_snapshots(sim)
    assert r["phase"] == "done" and r["stopped"] == "guest_shutdown"  # recorded by the killed run
    assert_target_is(target_of(r), versions[4])


def test_errors_name_the_problem(sim, tmp_path):
    p = hsdk("migrate", "--warm", "--step", "status", "--out", str(tmp_path / "none"), check=False)
    assert p.returncode != 0 and "no warm migration" in p.stderr
    p = hsdk("migrate", *sim.cli_args(), "--vm", VM, "--out", str(tmp_path / "x"), check=False, env=cli_env())
    assert p.returncode == 2 and "--warm" in p.stderr
    # A folder holding a file of the same name is not overwritten.
    out = tmp_path / "taken"
    out.mkdir()
    p, _ = migrate(sim, tmp_path / "ok", "--step", "precopy")
    name = pathlib.Path(json.loads(p.stdout)["disks"][0]["file"]).name
    (out / name).write_bytes(b"keep me")
    p, _ = migrate(sim, out, "--step", "precopy", check=False)
    assert p.returncode != 0 and "not overwriting" in p.stderr
    assert (out / name).read_bytes() == b"keep me"
    no_snapshots(sim)
    # Wrong credentials: a clear error, nothing created in the VM.
    p = hsdk("migrate", "--warm", *sim.cli_args(), "--vm", VM, "--out", str(tmp_path / "auth"), check=False, env=cli_env("wrong"))
    assert p.returncode != 0 and "wrong" not in p.stderr
    no_snapshots(sim)


def test_hung_guest_times_out_then_is_powered_off_only_when_asked(sim, versions, tmp_path):
    out = tmp_path / "out"
    migrate(sim, out, "--step", "precopy")
    sim.control(faults={"guest_shutdown_ignored": True})
    p, _ = migrate(sim, out, "--step", "cutover", "--shutdown-timeout", "2s", check=False)
    assert p.returncode != 0 and "did not shut down within 2 s" in p.stderr and "--force-power-off" in p.stderr
    no_snapshots(sim)
    assert state(out)["phase"] == "cutover" and state(out)["cutover"]["stopped"] == ""
    plant(sim, versions[1])
    _, r = migrate(sim, out, "--step", "cutover", "--shutdown-timeout", "1s", "--force-power-off")
    no_snapshots(sim)
    assert r["phase"] == "done" and r["stopped"] == "forced_power_off"
    assert_target_is(target_of(r), versions[1])


def test_several_disks_migrate_together(sim, tmp_path):
    """A VM with two disks (the simulator's add_disk): every round copies both, each target ends
    equal to its disk's last planted version."""
    name = "DC0_C0_RP0_VM1"
    path = f"/DC0/vm/{name}"
    sim.control(add_disk={"vm": name, "capacity_kb": 8 * 1024})
    described = json.loads(hsdk("vms", "describe", *sim.cli_args(), "--vm", path, "--json", env=cli_env()).stdout)
    keys = [d["id"] for d in described["disks"]]
    assert len(keys) == 2
    (tmp_path / "a").mkdir()
    first = planted_versions(tmp_path / "a", 3, seed=21)
    second = []
    for k in range(3):
        raw = tmp_path / f"b{k}.raw"
        raw.write_bytes(first[k].read_bytes()[: 8 * 1024 * 1024][::-1])  # another disk's content, changing with the first
        second.append(raw)

    def plant_both(k):
        sim.control(plant_disk={"vm": name, "raw": str(first[k]), "disk_key": int(keys[0])})
        sim.control(plant_disk={"vm": name, "raw": str(second[k]), "disk_key": int(keys[1])})

    plant_both(0)
    hsdk("cbt", "enable", *sim.cli_args(), "--vm", path, "--json", env=cli_env())
    out = tmp_path / "out"

    def step(*extra):
        p = hsdk("migrate", "--warm", *sim.cli_args(), "--vm", path, "--out", str(out), "--json", *extra, env=cli_env())
        return json.loads(p.stdout)

    r = step("--step", "precopy")
    assert len(r["disks"]) == 2 and len({d["file"] for d in r["disks"]}) == 2
    for k in (1, 2):
        plant_both(k)
        r = step("--step", "cutover" if k == 2 else "precopy")
        for d, raws in zip(r["disks"], (first, second)):
            assert_target_is(pathlib.Path(d["file"]), raws[k])
    assert r["phase"] == "done" and [x["kind"] for x in r["rounds"]] == ["full", "delta", "final"]
    assert sim.state()["snapshots"][name] == 0
    manifest = json.loads((out / f"{name}.hyper2kvm.json").read_text())
    assert len(json.dumps(manifest)) > 0 and all(pathlib.Path(d["file"]).name in json.dumps(manifest) for d in r["disks"])


def test_guest_without_tools_is_powered_off_only_when_asked(sim, versions, tmp_path):
    out = tmp_path / "out"
    migrate(sim, out, "--step", "precopy")
    sim.control(faults={"guest_tools_missing": True})
    p, _ = migrate(sim, out, "--step", "cutover", check=False)
    assert p.returncode != 0 and "ShutdownGuest" in p.stderr and "ToolsUnavailable" in p.stderr
    no_snapshots(sim)
    _, r = migrate(sim, out, "--step", "cutover", "--force-power-off")
    assert r["phase"] == "done" and r["stopped"] == "forced_power_off"
    assert_target_is(target_of(r), versions[0])
    no_snapshots(sim)


def test_a_provider_that_cannot_stop_a_vm_is_refused_before_anything_is_made(tmp_path):
    """AWS has changed extents (EBS ListChangedBlocks) but no power operations here: refused at
    once, without a connection, so no snapshot is left for a cutover that could not happen."""
    out = tmp_path / "out"
    p = hsdk("migrate", "--warm", "--provider", "aws", "--vm", "i-0123456789abcdef0", "--out", str(out), "--step", "precopy",
             check=False, env=dict(os.environ, AWS_ENDPOINT_URL="http://127.0.0.1:9", AWS_ACCESS_KEY_ID="AKIDEXAMPLE",
                                   AWS_SECRET_ACCESS_KEY="not-a-real-secret", AWS_REGION="us-east-1"))
    assert p.returncode != 0 and "unsupported" in p.stderr and "stopping the VM" in p.stderr, p.stderr
    assert not out.exists()
    providers = json.loads(hsdk("providers", "--json").stdout)
    caps = {x["name"]: x["capabilities"] for x in (providers["providers"] if isinstance(providers, dict) else providers)}
    assert "power" in caps["vsphere"] and "changed_extents" in caps["vsphere"]
