"""hsdk batch run / python3 -m hypersdk.batch run: a plan of VMs against the vSphere simulator on a
local Ray cluster (127.0.0.1). The simulator records the export leases open per ESX host and per
datastore (tests/sim/vsphere/export_record.go), so the limits are checked from the server's side:
never more than --max-per-host exports of one host at once, and more than one (the limit is really
exercised). Also: a VM whose first lease fails is retried (attempts 2), one that fails every time is
reported failed while the others finish (exit status 1), a warm VM runs migrate.warm, every output
equals its planted disk (qemu-img compare), and the password never shows."""
import importlib.util
import json
import os
import pathlib
import re
import signal
import subprocess
import sys

import pytest

from conftest import BUILD, HSDK, hsdk, qemu_img, write_pattern
from vsphere_sim import PASSWORD, USERNAME, Simulator, cli_env
from test_backup import planted_versions

MAX_PER_HOST = 3
MAX_PER_DATASTORE = 5
HOSTS = ("DC0_H0", "DC0_H1")
VMS = [f"{h}_VM{i}" for h in HOSTS for i in range(10)]  # 20 VMs, 10 per standalone host
RETRIED = "DC0_H0_VM3"  # its first lease fails
BROKEN = "DC0_C0_RP0_VM0"  # every lease fails (on a host of the cluster)
WARM = "DC0_C0_RP0_VM1"  # migrate.warm


BATCH = [str(HSDK), "batch", "run"]


class BatchSimulator(Simulator):
    """The simulator with two standalone hosts of ten VMs each (-standalone-host 2 -vm 10)."""

    def __init__(self, workdir):
        super().__init__(workdir, extra_args=["-standalone-host", "2", "-vm", "10"])


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    e = cli_env()
    e["PYTHONPATH"] = str(BUILD / "bindings" / "python")
    e.pop("RAY_ADDRESS", None)
    e["RAY_USAGE_STATS_ENABLED"] = "0"
    # Everything on loopback: Ray otherwise advertises the address other machines would use.
    e["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    return e


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory, env):
    """A local Ray cluster (2 CPUs, 80 MB object store, no dashboard) in a process of its own, whose
    environment the workers inherit (PYTHONPATH, the password variable); stopped when its stdin closes."""
    if importlib.util.find_spec("ray") is None:
        raise AssertionError("Ray is missing: scripts/setup installs it (pip install ray)")
    script = ("import ray, sys\n"
              "ctx = ray.init(address='local', num_cpus=2, include_dashboard=False, object_store_memory=80 << 20,\n"
              "               _node_ip_address='127.0.0.1', logging_level='WARNING')\n"
              "print(ctx.address_info['gcs_address'], flush=True)\n"
              "sys.stdin.read()\n"
              "ray.shutdown()\n")
    log = open(tmp_path_factory.mktemp("ray") / "cluster.log", "w")
    p = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                         env=env, text=True)
    address = p.stdout.readline().strip()
    if not address:
        p.wait(timeout=30)
        raise AssertionError(f"the Ray cluster did not start: {pathlib.Path(log.name).read_text()}")
    yield address
    p.stdin.close()
    try:
        p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    log.close()


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    s = BatchSimulator(tmp_path_factory.mktemp("sim"))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def disks(tmp_path_factory, sim):
    """Distinct 1-2 MiB disks: a stream-optimized VMDK per exported VM (what its lease serves),
    and for the warm VM a planted raw disk with change tracking on. Returns {VM name: raw}."""
    d = tmp_path_factory.mktemp("disks")
    raws = {}
    for n, name in enumerate(VMS + [BROKEN]):
        raw = write_pattern(d / f"{name}.raw", (1 + n % 2) << 20, seed=1000 + n)
        vmdk = d / f"{name}.vmdk"
        qemu_img("convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", raw, vmdk)
        sim.upload(f"[LocalDS_0] {name}/disk1.vmdk", vmdk.read_bytes())
        raws[name] = raw
    warm = planted_versions(d, 1, seed=77)[0]
    sim.control(plant_disk={"vm": WARM, "raw": str(warm)})
    hsdk("cbt", "enable", *sim.cli_args(), "--vm", f"/DC0/vm/{WARM}", "--json", env=cli_env())
    raws[WARM] = warm
    return raws


def write_plan(path, sim, out):
    """Hosts and datastores left out: the driver looks them up (vms.list)."""
    vms = [{"vm": f"/DC0/vm/{name}"} for name in VMS]
    vms.append({"vm": f"/DC0/vm/{BROKEN}"})
    vms.append({"vm": f"/DC0/vm/{WARM}", "warm": True, "params": {"downtime_budget": 60}})
    plan = {
        "defaults": {
            "provider": "vsphere",
            "connection": {"url": sim.url, "username": USERNAME, "password_env": "HSDK_TEST_PASSWORD", "ca_file": sim.ca_file},
            "format": "qcow2",
            "output_dir": str(out / "{name}"),
        },
        "retries": 2,
        "retry_backoff": 0.5,
        "ray": {"task_cpus": 0.1},
        "vms": vms,
    }
    if path.suffix == ".json":
        path.write_text(json.dumps(plan, indent=1))
    else:
        import yaml
        path.write_text(yaml.safe_dump(plan))
    assert PASSWORD not in path.read_text()
    return path


def run_batch(env, plan, *flags):
    return subprocess.run([*BATCH, str(plan), *flags], capture_output=True, text=True, env=env, timeout=300)


def test_twenty_vms_on_ray_within_the_host_limit(sim, disks, ray_cluster, env, tmp_path):
    # Every download waits 300 ms first, so the leases of one host overlap whenever the batch lets them.
    sim.control(faults={"nfc_latency_ms": 300, "lease_error_vms": {RETRIED: 1, BROKEN: -1}}, reset_log=True)
    out = tmp_path / "out"
    plan = write_plan(tmp_path / "plan.yaml", sim, out)
    p = run_batch(env, plan, "--ray-address", ray_cluster, "--max-per-host", str(MAX_PER_HOST),
                  "--max-per-datastore", str(MAX_PER_DATASTORE), "--json")
    assert PASSWORD not in p.stdout and PASSWORD not in p.stderr
    assert p.returncode == 1, f"exit {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    lines = [json.loads(line) for line in p.stdout.splitlines()]
    results = {r["vm"]: r for r in lines if r["event"] == "result"}
    assert len(results) == 22, p.stdout

    # From the simulator's side: at most 3 export leases of one host open at once, and more than 1.
    exports = sim.state()["exports"]
    print("the simulator's export record:", json.dumps(exports))
    for host in HOSTS:
        assert 1 < exports["hosts"][host]["peak"] <= MAX_PER_HOST, exports
        assert exports["hosts"][host]["active"] == 0
    assert exports["hosts"]["DC0_H0"]["total"] == 11 and exports["hosts"]["DC0_H1"]["total"] == 10, exports
    assert all(c["peak"] <= MAX_PER_HOST for c in exports["hosts"].values()), exports
    assert 1 < exports["datastores"]["LocalDS_0"]["peak"] <= MAX_PER_DATASTORE, exports

    # Every exported VM equals its planted disk.
    for name in VMS:
        r = results[name]
        assert r["status"] == "done" and r["operation"] == "export.run", r
        assert r["host"] == name.rsplit("_", 1)[0] and r["datastores"] == ["LocalDS_0"], r  # looked up by the driver
        assert r["bytes"] > 0 and r["output"] == [str(out / name / f"{name}-disk1.qcow2")], r
        qemu_img("compare", "-f", "raw", "-F", "qcow2", disks[name], r["output"][0])
        expected = 2 if name == RETRIED else 1
        assert r["attempts"] == expected, r
    assert "injected lease failure" in results[RETRIED]["errors"][0] and results[RETRIED]["error"] is None

    broken = results[BROKEN]
    assert broken["status"] == "failed" and broken["attempts"] == 3 and broken["host"].startswith("DC0_C0_H"), broken
    assert "injected lease failure" in broken["error"] and len(broken["errors"]) == 3

    warm = results[WARM]
    assert warm["status"] == "done" and warm["operation"] == "migrate.warm", warm
    target = [f for f in warm["output"] if f.endswith(".qcow2")]
    assert len(target) == 1, warm
    qemu_img("compare", "-f", "raw", "-F", "qcow2", disks[WARM], target[0])

    # Progress: one line per state change, gathered in the driver.
    states = {}
    for e in lines:
        if e["event"] == "state":
            states.setdefault(e["vm"], []).append(e["state"])
    assert states[VMS[0]][0] == "queued" and states[VMS[0]][-1] == "done" and "started" in states[VMS[0]]
    assert states[RETRIED].count("running") == 2 and "retrying" in states[RETRIED]
    assert states[BROKEN].count("retrying") == 2 and states[BROKEN][-1] == "failed"
    summary = lines[-1]
    assert summary["event"] == "summary" and summary["done"] == 21 and summary["failed"] == 1


def test_human_output_table_and_clean_exit(sim, disks, ray_cluster, env, tmp_path):
    """Four VMs of one host, none failing: exit 0, a line per state change, the result table."""
    sim.control(faults={}, reset_log=True)
    out = tmp_path / "out"
    plan = {
        "defaults": {"connection": {"url": sim.url, "username": USERNAME, "password_env": "HSDK_TEST_PASSWORD",
                                    "ca_file": sim.ca_file},
                     "format": "raw", "output_dir": str(out / "{host}" / "{name}")},
        "ray": {"task_cpus": 0.1},
        "vms": [{"vm": f"/DC0/vm/{name}", "host": "DC0_H1"} for name in VMS[10:14]],
    }
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    p = run_batch(env, path, "--ray-address", ray_cluster, "--max-per-host", "2")
    assert p.returncode == 0, f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    assert PASSWORD not in p.stdout + p.stderr
    text = p.stdout
    assert "VM" in text and "HOST" in text and "STATUS" in text and "ATTEMPTS" in text and "OUTPUT / ERROR" in text
    assert "4 of 4 VM(s) done, 0 failed" in text
    for name in VMS[10:14]:
        disk = out / "DC0_H1" / name / f"{name}-disk1.raw"
        qemu_img("compare", "-f", "raw", "-F", "raw", disks[name], disk)
        assert f"{name}" in text and str(disk) in text
        assert any(re.match(rf"\[ *[0-9.]+s\] {name} +done ", line) for line in text.splitlines()), text
    assert sim.state()["exports"]["hosts"]["DC0_H1"]["peak"] <= 2


def test_plan_with_an_inline_password_is_refused(tmp_path, env):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"defaults": {"connection": {"url": "https://127.0.0.1:1/sdk", "password": PASSWORD}},
                                "vms": [{"vm": "/DC0/vm/x", "output_dir": str(tmp_path)}]}))
    p = subprocess.run([sys.executable, "-m", "hypersdk.batch", "run", str(plan)], capture_output=True, text=True,
                       env=env, timeout=120)
    assert p.returncode == 2
    assert "password_env" in p.stderr and PASSWORD not in p.stderr + p.stdout


def test_missing_ray_names_pip_install(tmp_path, env):
    """Without Ray the command says how to get it (a `ray` that cannot be imported stands in)."""
    fake = tmp_path / "noray"
    fake.mkdir()
    (fake / "ray.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"vms": [{"vm": "/DC0/vm/x", "output_dir": str(tmp_path / "out")}]}))
    e = dict(env, PYTHONPATH=f"{fake}{os.pathsep}{env['PYTHONPATH']}")
    p = subprocess.run([sys.executable, "-m", "hypersdk.batch", "run", str(plan)], capture_output=True, text=True,
                       env=e, timeout=120)
    assert p.returncode == 2 and "pip install ray" in p.stderr, p.stderr


def test_sigterm_cancels_the_exports_in_flight_and_cleans_up(sim, disks, ray_cluster, env, tmp_path):
    """Stopped mid-run (SIGTERM, as a scheduler stops a job): the exports in flight are cancelled,
    which aborts their leases and removes their snapshots, and every VM is reported."""
    names = VMS[4:8]
    sim.control(faults={"nfc_latency_ms": 60_000}, reset_log=True)
    plan = {
        "defaults": {"connection": {"url": sim.url, "username": USERNAME, "password_env": "HSDK_TEST_PASSWORD",
                                    "ca_file": sim.ca_file},
                     "format": "qcow2", "output_dir": str(tmp_path / "out" / "{name}")},
        "ray": {"task_cpus": 0.1},
        "vms": [{"vm": f"/DC0/vm/{name}", "host": "DC0_H0"} for name in names],
    }
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    p = subprocess.Popen([*BATCH, str(path), "--ray-address", ray_cluster, "--max-per-host", "3", "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    exporting = set()
    try:
        for line in p.stdout:  # until the three allowed are downloading (held by the latency)
            e = json.loads(line)
            if e.get("state") == "phase" and e["detail"].startswith("exporting"):
                exporting.add(e["vm"])
                if len(exporting) == 3:
                    break
        p.send_signal(signal.SIGTERM)
        rest, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 1, err
    results = {r["vm"]: r for r in map(json.loads, rest.splitlines()) if r["event"] == "result"}
    assert all(r["status"] == "failed" for r in results.values()) and set(results) == set(names)
    for name in exporting:
        assert results[name]["error"] == "interrupted: the operation was cancelled", results[name]
    queued = set(names) - exporting
    assert all(results[n]["attempts"] == 0 and "before it started" in results[n]["error"] for n in queued)
    st = sim.state()
    assert st["calls"]["HttpNfcLeaseAbort"] == 3 and "HttpNfcLeaseComplete" not in st["calls"]
    assert st["exports"]["hosts"]["DC0_H0"]["active"] == 0
    assert all(st["snapshots"][n] == 0 for n in names), st["snapshots"]
    assert not list((tmp_path / "out").rglob("*.qcow2"))
