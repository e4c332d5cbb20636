"""The azure provider against request/response fixtures shaped like the Azure REST API reference
(tests/integration/azure_fixtures.py: Entra ID tokens, ARM Compute and Network, the blob
endpoint's page-range diffs) with the disks' contents in Azurite (the emulator's own page blobs,
SAS and Get Page Ranges). Every test checks that each beginGetAccess was followed by an
endGetAccess and that no snapshot of ours is left."""
import json
import os
import random

import pytest

from azure_fixtures import VM, AzureState, Nic, arm_routes, blob_routes, make_disk
from conftest import MiB, hsdk, qemu_img
from fixture_server import FixtureServer

SECRET = "hsdk-fixture-client-secret"


def vhd_of(tmp_path, name, size, seed, regions):
    """(raw path, fixed VHD bytes) of a disk of `size` bytes with data in `regions`."""
    rng = random.Random(seed)
    data = bytearray(size)
    for start, length in regions:
        data[start:start + length] = rng.randbytes(length)
    raw = tmp_path / f"{name}.raw"
    raw.write_bytes(bytes(data))
    vhd = tmp_path / f"{name}.vhd"
    qemu_img("convert", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed,force_size=on", raw, vhd)
    return raw, vhd.read_bytes()


def add_disk(state, tmp_path, name, size, seed, regions, **kw):
    raw, vhd = vhd_of(tmp_path, name, size, seed, regions)
    disk = make_disk(state, name, vhd, len(vhd), **kw)
    disk.size_bytes = size  # ARM's diskSizeBytes is the virtual size; the blob holds the VHD footer too
    return raw, disk


@pytest.fixture
def cloud(azurite, tmp_path):
    state = AzureState(azurite=azurite)
    import hashlib
    state.disk_container = "disks-" + hashlib.sha1(str(tmp_path).encode()).hexdigest()[:16]  # a name Azure allows
    os_raw, os_disk = add_disk(state, tmp_path, "web01-os", 8 * MiB, 1, [(0, 100_000), (5 * MiB, 700_000)],
                               os_type="Linux", hyper_v_generation="V2")
    data_raw, data_disk = add_disk(state, tmp_path, "web01-data0", 4 * MiB, 2, [(MiB, 300_000)])
    state.add_vm(VM("web01", os_disk, [(0, data_disk)], [Nic("web01-nic", "00-0D-3A-12-34-56")], vm_size="Standard_D2s_v5"))
    other_raw, other_disk = add_disk(state, tmp_path, "db01-os", 4 * MiB, 3, [(0, 4096)], os_type="Linux", hyper_v_generation="V1")
    state.add_vm(VM("db01", other_disk, [], [Nic("db01-nic", "00-0D-3A-AA-BB-CC")], vm_size="Standard_E4s_v5",
                    security_type=None, secure_boot=False))
    with FixtureServer(arm_routes(state) + blob_routes(state)) as srv:
        state.blob_endpoint = srv.url
        state.raws = {"web01": [os_raw, data_raw]}
        state.srv = srv
        yield state
    assert not state.open_grants(), state.access_events


def env_for(state):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_")}
    env.update(AZURE_TENANT_ID=state.tenant, AZURE_CLIENT_ID=state.client_id, AZURE_CLIENT_SECRET=state.client_secret,
               AZURE_SUBSCRIPTION_ID=state.subscription)
    return env


def config(state, **more):
    return {"arm_endpoint": state.srv.url, "authority": state.srv.url, "poll_interval_ms": 20, **more}


def run_op(state, operation, request, check=True, env=None):
    p = hsdk("run", operation, "-r", json.dumps(request), "--json", check=False, env=env or env_for(state))
    assert SECRET not in p.stdout + p.stderr
    out = json.loads(p.stdout) if p.stdout.strip() else {}
    if check:
        assert p.returncode == 0, p.stdout + p.stderr
        return out
    assert p.returncode != 0, p.stdout
    return out["error"]


def test_discovery(cloud):
    vms = run_op(cloud, "vms.list", {"provider": "azure", "config": config(cloud)})["vms"]
    assert sorted(v["name"] for v in vms) == ["db01", "web01"]  # two pages (page_size 1): nextLink followed
    vm = run_op(cloud, "vms.describe", {"provider": "azure", "config": config(cloud), "vm": "web01"})["vm"]
    assert vm["provider"] == "azure" and vm["cpus"] == 2 and vm["memory_mib"] == 8192
    assert vm["firmware"] == "efi" and vm["secure_boot"] is True
    assert [d["capacity_bytes"] for d in vm["disks"]] == [8 * MiB, 4 * MiB]
    assert vm["disks"][0]["boot_order"] == 1 and "LUN 0" in vm["disks"][1]["label"]
    assert vm["nics"][0]["mac"] == "00:0d:3a:12:34:56"
    db = run_op(cloud, "vms.describe", {"provider": "azure", "config": config(cloud), "vm": "db01"})["vm"]
    assert db["firmware"] == "bios" and db["memory_mib"] == 32768
    e = run_op(cloud, "vms.describe", {"provider": "azure", "config": config(cloud), "vm": "nope"}, check=False)
    assert e["code"] == "not_found", e


@pytest.mark.parametrize("fmt", ["qcow2", "raw"])
def test_export_reads_the_snapshots_sparsely_and_cleans_up(cloud, tmp_path, fmt):
    out = tmp_path / "out"
    r = run_op(cloud, "export.run", {"provider": "azure", "config": config(cloud), "vm": "web01", "output_dir": str(out), "format": fmt})
    disks = sorted(f for f in r["files"] if f.endswith("." + fmt))
    assert len(disks) == 2
    for raw, disk in zip(cloud.raws["web01"], disks):
        qemu_img("compare", "-f", "raw", "-F", fmt, raw, disk)
    assert r["snapshot_used"]
    assert not cloud.snapshots_left() and len(cloud.created_snapshots) == 2
    assert not cloud.open_grants()


def test_keep_snapshots_keeps_them_but_ends_access(cloud, tmp_path):
    run_op(cloud, "export.run", {"provider": "azure", "config": config(cloud, keep_snapshots=True), "vm": "web01",
                                 "output_dir": str(tmp_path / "out"), "format": "raw"})
    assert len(cloud.snapshots_left()) == 2 and not cloud.open_grants()


def test_a_refused_access_grant_ends_every_grant_and_deletes_our_snapshots(cloud, tmp_path):
    cloud.fail_get_access = "post"
    cloud.fail_get_access_snapshots = None
    e = run_op(cloud, "export.run", {"provider": "azure", "config": config(cloud), "vm": "web01", "output_dir": str(tmp_path / "out"),
                                     "format": "raw"}, check=False)
    assert e["code"] in ("conflict", "remote_error", "invalid_argument"), e
    assert not cloud.snapshots_left() and not cloud.open_grants()
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")


def test_throttling_is_waited_out(cloud, tmp_path):
    cloud.throttle = {"get_disk": 2, "list_vms": 1}
    vm = run_op(cloud, "vms.describe", {"provider": "azure", "config": config(cloud), "vm": "web01"})["vm"]
    assert vm["name"] == "web01"
    assert cloud.calls["get_disk"] >= 4


def test_a_wrong_client_secret_is_auth_failed_and_never_shown(cloud, tmp_path):
    env = dict(env_for(cloud), AZURE_CLIENT_SECRET="wrong-" + SECRET)
    p = hsdk("run", "vms.list", "-r", json.dumps({"provider": "azure", "config": config(cloud)}), "--json", check=False, env=env)
    e = json.loads(p.stdout)["error"]
    assert e["code"] == "auth_failed", e
    assert "wrong-" + SECRET not in p.stdout + p.stderr


def test_backups_full_then_incremental_from_page_range_diffs(cloud, tmp_path):
    repo = tmp_path / "repo"
    cfg = config(cloud)
    first = run_op(cloud, "backup.run", {"provider": "azure", "config": cfg, "vm": "web01", "repo": str(repo)})
    assert first["kind"] == "full"
    assert len(cloud.snapshots_left()) == 2  # kept for the next diff
    # The OS disk changes one MiB; its new snapshot's diff says so (the fixture's diff answer).
    raw = bytearray(cloud.raws["web01"][0].read_bytes())
    raw[2 * MiB:3 * MiB] = random.Random(9).randbytes(MiB)
    cloud.azurite.write_pages(cloud.disk_container, "web01-os", 2 * MiB, bytes(raw[2 * MiB:3 * MiB]))
    changed_raw = tmp_path / "changed.raw"
    changed_raw.write_bytes(bytes(raw))
    second = run_op(cloud, "backup.run", {"provider": "azure", "config": cfg, "vm": "web01", "repo": str(repo)})
    assert second["kind"] == "incremental", second
    os_disk = second["disks"][0]
    assert not os_disk["full"] and os_disk["changed_bytes"] == MiB, os_disk
    assert second["disks"][1]["changed_bytes"] == 0
    assert len(cloud.snapshots_left()) == 2 and not set(cloud.snapshots_left()) & {s.rsplit("/", 1)[1] for s in first["snapshot"].split(",")}
    r = json.loads(hsdk("restore", "--repo", str(repo), "--vm", "web01", "-O", "raw", "--out", str(tmp_path / "r"), "--json").stdout)
    qemu_img("compare", "-f", "raw", "-F", "raw", changed_raw, sorted(r["files"])[1 if "data0" in sorted(r["files"])[0] else 0])
    assert json.loads(hsdk("chain", "verify", "--json", os_disk["file"]).stdout)["ok"]


def test_managed_identity_and_a_given_token(cloud, tmp_path):
    bare = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_")}
    bare["AZURE_SUBSCRIPTION_ID"] = cloud.subscription
    imds = cloud.srv.url + "/metadata/identity/oauth2/token"
    vm = run_op(cloud, "vms.describe", {"provider": "azure", "vm": "web01",
                                        "config": config(cloud, managed_identity=True, imds_endpoint=imds)}, env=bare)["vm"]
    assert vm["name"] == "web01"
    assert cloud.calls["imds"] >= 1
    # A token obtained elsewhere, given through a variable: used as it is.
    import urllib.request
    req = urllib.request.Request(imds + "?api-version=2018-02-01&resource=https://management.azure.com/", headers={"Metadata": "true"})
    token = json.loads(urllib.request.urlopen(req, timeout=30).read())["access_token"]
    env = dict(bare, MY_ARM_TOKEN=token)
    vm = run_op(cloud, "vms.describe", {"provider": "azure", "vm": "web01", "config": config(cloud, access_token_env="MY_ARM_TOKEN")},
                env=env)["vm"]
    assert vm["name"] == "web01"


def test_cli_flags_name_the_endpoints(cloud, tmp_path):
    env = env_for(cloud)
    env.pop("AZURE_SUBSCRIPTION_ID")
    p = hsdk("vms", "describe", "--provider", "azure", "--arm-endpoint", cloud.srv.url, "--authority", cloud.srv.url,
             "--subscription", cloud.subscription, "--vm", "web01", "--json", env=env)
    assert json.loads(p.stdout)["name"] == "web01"
    p = hsdk("vms", "list", "--provider", "vsphere", "--arm-endpoint", cloud.srv.url, check=False, env=env)
    assert p.returncode != 0 and "--provider azure" in p.stderr


def test_a_refused_diff_gives_a_full_copy_with_a_notice(cloud, tmp_path):
    repo = tmp_path / "repo"
    cfg = config(cloud, max_attempts=2)
    run_op(cloud, "backup.run", {"provider": "azure", "config": cfg, "vm": "web01", "repo": str(repo)})
    cloud.throttle = {"pagelist_diff": 100}
    second = run_op(cloud, "backup.run", {"provider": "azure", "config": cfg, "vm": "web01", "repo": str(repo)})
    cloud.throttle = {}
    assert all(d["full"] and "diff" in d["notice"] for d in second["disks"]), second
    assert len(cloud.snapshots_left()) == 2


def test_a_page_blob_without_a_vhd_footer_is_refused_clearly(azurite, tmp_path):
    azurite.create_container("nofooter")
    azurite.make_page_blob("nofooter", "raw.bin", os.urandom(4096) + bytes(MiB - 4096))
    url = azurite.sas_url("nofooter", "raw.bin")
    p = hsdk("run", "image.convert", "-r", json.dumps({"source": url, "destination": str(tmp_path / "o.raw"), "output_format": "raw",
                                                        "source_format": "vpc"}), "--json", check=False)
    assert p.returncode != 0
    e = json.loads(p.stdout)["error"]
    assert e["code"] in ("corrupt_image", "unsupported"), e
    assert not (tmp_path / "o.raw").exists()


def test_a_snapshot_deleted_mid_read_fails_cleanly(cloud, tmp_path):
    """The snapshot's blob disappears while its pages are being read (someone deleted it): the
    export fails naming what is gone, every grant is still ended, our snapshots are deleted, and
    nothing that looks finished is left."""
    import signal
    import subprocess
    import threading
    from conftest import HSDK
    cloud.data_read_delay = 0.3
    out = tmp_path / "out"
    args = [str(HSDK), "export", "--provider", "azure", "--config", json.dumps(config(cloud)), "--vm", "web01", "--out", str(out),
            "--format", "qcow2", "-p"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env_for(cloud))
    line = ""
    while "disk 1" not in line:
        line = proc.stderr.readline()
        assert line or proc.poll() is None, "the export ended before it reported progress"
    # Delete the Azurite copies behind both snapshots while the first is being read.
    for name in list(cloud.snapshots_left()):
        container, blob = cloud.snapshot_blob(name)
        cloud.azurite.delete_blob(container, blob)
    _, stderr = proc.communicate(timeout=120)
    cloud.data_read_delay = 0
    assert proc.returncode != 0 and proc.returncode != 130, stderr
    assert "not_found" in stderr or "BlobNotFound" in stderr or "no such" in stderr.lower() or "404" in stderr, stderr
    assert SECRET not in stderr and "sig=" not in stderr
    assert not cloud.open_grants() and not cloud.snapshots_left()
    left = os.listdir(out) if out.exists() else []
    assert not [n for n in left if n.endswith(".qcow2")], left


def test_a_snapshot_that_is_not_a_page_blob_is_refused(cloud, tmp_path, monkeypatch):
    """A snapshot SAS must name a page blob (a fixed VHD); a block blob in its place (here: the
    fixture's copy made a block blob) is refused before any data is read, naming the blob type,
    and nothing of ours is left."""
    az = cloud.azurite

    def block_copy(src_container, src_name, dst_container, dst_name, src_snapshot=None):
        data = az.read(src_container, src_name, src_snapshot)
        status, h, body = az.request("PUT", az.path(dst_container, dst_name), headers={"x-ms-blob-type": "BlockBlob"}, body=data)
        assert status == 201, (status, body)
        return len(data)

    monkeypatch.setattr(az, "copy_page_blob", block_copy)
    e = run_op(cloud, "export.run", {"provider": "azure", "config": config(cloud), "vm": "web01", "output_dir": str(tmp_path / "out"),
                                     "format": "raw"}, check=False)
    assert e["code"] == "unsupported" and "BlockBlob" in e["message"] and "sig=" not in e["message"], e
    assert not cloud.open_grants() and not cloud.snapshots_left()
