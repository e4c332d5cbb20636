"""The provider conformance suite: what every provider must do, each against its own simulator.

- vsphere: govmomi's vSphere simulator (tests/sim/vsphere), the planted disk served by its NFC lease.
- aws: the AWS simulator (tests/sim/aws: moto's server with access control on, so SigV4 is
  checked, plus our extensions: volume contents and EC2 snapshots the EBS direct APIs read); the
  planted disk is the instance's volume, read through snapshots of ours that must be gone after.
- azure: request/response fixtures shaped like the Azure REST API reference (Entra ID tokens, ARM
  Compute and Network, tests/integration/azure_fixtures.py) with the disk's contents in Azurite (a
  page blob holding the planted disk as a fixed VHD); every access grant must be ended and no
  snapshot of ours left.
- gcp: request/response fixtures shaped like Google's REST references (OAuth2 token endpoint with
  real RS256 JWT checks, Compute Engine, Cloud Build's image export; tests/integration/gcp_fixtures.py)
  with the export objects in fake-gcs-server (tests/sim/gcs); the planted disk is 1 GiB (the 16 MiB
  pattern, then zeros); no image, object or build of ours may be left.
- openstack: request/response fixtures shaped like the Keystone v3, Nova, Cinder and Glance API
  references (tests/integration/openstack_fixtures.py); the planted disk is the image-backed
  server's root image, read back from Glance with its checksums; no image of ours may be left.
- localdir: the example plugin (examples/plugin), loaded from HSDK_PLUGIN_PATH, over a folder the
  test plants; a real shared object speaking the plugin ABI, not a fixture.

Each provider: list and describe a planted VM; export to raw and qcow2 equal to the planted content
(qemu-img compare); an OVA whose manifest verifies; a cancel in the middle of a disk leaves nothing
behind (no snapshot or lease on the server, no file that looks finished); wrong credentials are
auth_failed; an unknown VM is not_found. A later provider joins by adding a harness below."""
import json
import os
import pathlib
import signal
import subprocess
import time

import pytest

from conftest import BUILD, HSDK, MiB, hsdk, qemu_img, write_pattern
from aws_sim import AwsSim
from azure_fixtures import VM, AzureState, Nic, arm_routes, blob_routes, make_disk
from azure_sim import Azurite
from fixture_server import FixtureServer
from gcp_harness import GcpHarness
from openstack_harness import OpenStackHarness
from vsphere_sim import PASSWORD, USERNAME, Simulator, cli_env

# The plugin is built by the default build (an ASan run of these tests loads it from there).
PLUGIN_DIR = pathlib.Path(os.environ.get("HSDK_PLUGIN_BUILD_DIR", BUILD / "examples" / "plugin"))


class VsphereHarness:
    name = "vsphere"
    vm = "/DC0/vm/DC0_H0_VM0"

    def __init__(self, tmp):
        self.planted = write_pattern(tmp / "planted.raw", 16 * MiB, seed=4242)
        vmdk = tmp / "planted.vmdk"
        qemu_img("convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", self.planted, vmdk)
        self.sim = Simulator(tmp / "sim")
        self.sim.upload("[LocalDS_0] DC0_H0_VM0/disk1.vmdk", vmdk.read_bytes())
        self.env = cli_env()

    def config(self, password_env="HSDK_TEST_PASSWORD"):
        return {"url": self.sim.url, "username": USERNAME, "password_env": password_env, "ca_file": self.sim.ca_file}

    def bad_config(self):
        self.env["HSDK_WRONG_PASSWORD"] = "not-" + PASSWORD
        return self.config("HSDK_WRONG_PASSWORD")

    def reset(self):
        self.sim.control(faults={}, reset_log=True, power_on=["DC0_H0_VM0"])

    def slow_down(self):
        self.sim.control(faults={"nfc_stall_after": 500_000})
        return {}

    def assert_nothing_left(self):
        st = self.sim.state()
        assert st["snapshots"]["DC0_H0_VM0"] == 0, st
        leases = st["calls"].get("HttpNfcLeaseComplete", 0) + st["calls"].get("HttpNfcLeaseAbort", 0)
        assert leases >= st["calls"].get("ExportVm", 0) + st["calls"].get("ExportSnapshot", 0), st

    def stop(self):
        self.sim.stop()


class AwsHarness:
    name = "aws"
    vm = "web01"

    def __init__(self, tmp):
        self.planted = write_pattern(tmp / "planted.raw", 16 * MiB, seed=4242)
        self.sim = AwsSim(tmp / "sim", auth=True)
        self.sim.make_instance([self.planted.read_bytes()], name=self.vm)
        self.env = {k: v for k, v in self.sim.env().items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
        self.env["HSDK_TEST_AWS_SECRET"] = self.sim.secret_access_key
        self.rate = 0

    def config(self, secret_env="HSDK_TEST_AWS_SECRET"):
        c = {"endpoint_url": self.sim.url, "region": self.sim.region, "access_key_id": self.sim.access_key_id,
             "secret_access_key_env": secret_env}
        if self.rate:
            c["rate"] = self.rate
        return c

    def bad_config(self):
        self.env["HSDK_WRONG_AWS_SECRET"] = "wrong-t0ken"
        return self.config("HSDK_WRONG_AWS_SECRET")

    def reset(self):
        self.rate = 0

    def slow_down(self):
        self.rate = 4  # GetSnapshotBlock calls per second: 32 blocks take 8 s
        return {}

    def assert_nothing_left(self):
        ec2 = self.sim.boto3("ec2")
        ours = ec2.describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "tag-key", "Values": ["hsdk:created-by"]}])["Snapshots"]
        assert not ours, ours

    def stop(self):
        self.sim.stop()


class AzureHarness:
    name = "azure"
    vm = "web01"

    def __init__(self, tmp):
        self.planted = write_pattern(tmp / "planted.raw", 16 * MiB, seed=4242)
        vhd = tmp / "planted.vhd"
        qemu_img("convert", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed,force_size=on", self.planted, vhd)
        self.azurite = Azurite(tmp / "azurite")
        self.state = AzureState(azurite=self.azurite)
        disk = make_disk(self.state, "web01-os", vhd.read_bytes(), vhd.stat().st_size, os_type="Linux", hyper_v_generation="V2")
        disk.size_bytes = 16 * MiB
        self.state.add_vm(VM("web01", disk, [], [Nic("web01-nic", "00-0D-3A-12-34-56")]))
        self.server = FixtureServer(arm_routes(self.state) + blob_routes(self.state))
        self.state.blob_endpoint = self.server.url
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_")}
        self.env.update(AZURE_TENANT_ID=self.state.tenant, AZURE_CLIENT_ID=self.state.client_id,
                        AZURE_SUBSCRIPTION_ID=self.state.subscription, HSDK_TEST_AZURE_SECRET=self.state.client_secret)

    def config(self, secret_env="HSDK_TEST_AZURE_SECRET"):
        return {"arm_endpoint": self.server.url, "authority": self.server.url, "poll_interval_ms": 20,
                "client_id": self.state.client_id, "client_secret_env": secret_env}

    def bad_config(self):
        self.env["HSDK_WRONG_AZURE_SECRET"] = "wrong-t0ken"
        return self.config("HSDK_WRONG_AZURE_SECRET")

    def reset(self):
        self.state.data_read_delay = 0

    def slow_down(self):
        self.state.data_read_delay = 0.5
        return {}

    def assert_nothing_left(self):
        assert not self.state.open_grants(), self.state.access_events
        assert not self.state.snapshots_left(), self.state.snapshots_left()

    def stop(self):
        self.server.stop()
        self.azurite.stop()


class LocaldirHarness:
    name = "localdir"
    vm = "web01"

    def __init__(self, tmp):
        self.root = tmp / "root"
        (self.root / "web01").mkdir(parents=True)
        self.planted = write_pattern(self.root / "web01" / "disk1.raw", 16 * MiB, seed=4242)
        (self.root / "web01" / "vm.json").write_text(json.dumps({
            "name": "web01", "cpus": 2, "memory_mib": 1024, "firmware": "efi", "guest_id": "debian12_64Guest",
            "disks": [{"id": "0", "label": "Hard disk 1", "capacity_bytes": 16 * MiB, "file": "disk1.raw", "controller": "scsi"}],
            "nics": [{"id": "0", "mac": "00:50:56:01:02:03", "network": "VM Network", "adapter_type": "vmxnet3"}]}))
        (self.root / ".token").write_text("t0ken-for-tests\n")
        self.env = dict(os.environ, HSDK_PLUGIN_PATH=str(PLUGIN_DIR / "hsdk_localdir_plugin.so"))
        self.throttle = 0

    def config(self):
        c = {"root": str(self.root), "token": "t0ken-for-tests"}
        if self.throttle:
            c["throttle_bytes_per_sec"] = self.throttle
        return c

    def bad_config(self):
        return {"root": str(self.root), "token": "wrong-t0ken"}

    def reset(self):
        self.throttle = 0

    def slow_down(self):
        self.throttle = 2 * MiB
        return {}

    def assert_nothing_left(self):
        pass  # the plugin creates nothing on its side

    def stop(self):
        pass


@pytest.fixture(scope="module", params=[VsphereHarness, AwsHarness, AzureHarness, GcpHarness, OpenStackHarness, LocaldirHarness], ids=lambda h: h.name)
def provider(request, tmp_path_factory):
    h = request.param(tmp_path_factory.mktemp(request.param.name))
    yield h
    h.stop()


@pytest.fixture(autouse=True)
def reset(provider):
    provider.reset()
    yield


def run_op(provider, operation, request, check=True):
    p = hsdk("run", operation, "-r", json.dumps(request), "--json", check=False, env=provider.env)
    out = json.loads(p.stdout) if p.stdout.strip() else {}
    if check:
        assert p.returncode == 0, p.stdout + p.stderr
        return out
    assert p.returncode != 0, p.stdout
    return out["error"]


def test_providers_list_names_it_with_its_capabilities(provider):
    listed = {p["name"]: p for p in run_op(provider, "providers.list", {})["providers"]}
    assert provider.name in listed
    p = listed[provider.name]
    assert {"list", "describe"} <= set(p["capabilities"])
    assert p["config_schema"]["$schema"].startswith("http://json-schema.org/draft-07")


def test_list_and_describe_the_planted_vm(provider):
    vms = run_op(provider, "vms.list", {"provider": provider.name, "config": provider.config()})["vms"]
    vm = run_op(provider, "vms.describe", {"provider": provider.name, "config": provider.config(), "vm": provider.vm})["vm"]
    assert any(v["name"] == vm["name"] for v in vms)
    assert vm["disks"] and vm["disks"][0]["capacity_bytes"] >= 16 * MiB
    assert vm["provider"] == provider.name


@pytest.mark.parametrize("fmt,qemu_fmt", [("raw", "raw"), ("qcow2", "qcow2")])
def test_export_equals_the_planted_disk(provider, tmp_path, fmt, qemu_fmt):
    out = tmp_path / "out"
    r = run_op(provider, "export.run", {"provider": provider.name, "config": provider.config(), "vm": provider.vm,
                                        "output_dir": str(out), "format": fmt})
    disks = [f for f in r["files"] if f.endswith("." + fmt)]
    assert len(disks) == 1 and sorted(os.listdir(out)) == [pathlib.Path(disks[0]).name]
    qemu_img("compare", "-f", "raw", "-F", qemu_fmt, provider.planted, disks[0])
    provider.assert_nothing_left()


def test_ova_with_a_verified_manifest(provider, tmp_path):
    out = tmp_path / "out"
    r = run_op(provider, "export.run", {"provider": provider.name, "config": provider.config(), "vm": provider.vm,
                                        "output_dir": str(out), "format": "ova"})
    ova = [f for f in r["files"] if f.endswith(".ova")][0]
    assert sorted(os.listdir(out)) == [pathlib.Path(ova).name]  # nothing staged or received is left beside it
    report = run_op(provider, "ova.verify", {"path": ova})
    assert report["ok"], report
    members = {m["name"] for m in run_op(provider, "ova.list", {"path": ova})["members"]}
    assert any(n.endswith(".mf") for n in members) and any(n.endswith(".vmdk") for n in members)
    provider.assert_nothing_left()


def test_cancel_mid_disk_leaves_nothing_behind(provider, tmp_path):
    extra = provider.slow_down()
    out = tmp_path / "out"
    args = [str(HSDK), "export", "--provider", provider.name, "--config", json.dumps({**provider.config(), **extra}),
            "--vm", provider.vm, "--out", str(out), "--format", "qcow2", "-p"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=provider.env)
    # Wait (by progress, not by time) until a disk is moving, then interrupt.
    line = ""
    while "disk 1" not in line:
        line = proc.stderr.readline()
        assert line or proc.poll() is None, "the export ended before it reported progress"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    left = sorted(os.listdir(out)) if out.exists() else []
    assert not [n for n in left if n.endswith(".qcow2")], left  # nothing that looks finished
    assert not [n for n in left if ".hsdk" in n], left  # no temporaries either
    provider.assert_nothing_left()


def test_wrong_credentials_are_auth_failed(provider, tmp_path):
    bad = provider.bad_config()
    e = run_op(provider, "vms.list", {"provider": provider.name, "config": bad}, check=False)
    assert e["code"] == "auth_failed", e
    secret = json.dumps(bad)
    assert "wrong-t0ken" not in e["message"] and "not-" + PASSWORD not in e["message"], secret
    e = run_op(provider, "export.run", {"provider": provider.name, "config": bad, "vm": provider.vm,
                                        "output_dir": str(tmp_path / "out"), "format": "raw"}, check=False)
    assert e["code"] == "auth_failed", e
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")


def test_unknown_vm_is_not_found(provider, tmp_path):
    e = run_op(provider, "vms.describe", {"provider": provider.name, "config": provider.config(), "vm": "no-such-vm"}, check=False)
    assert e["code"] == "not_found", e
    e = run_op(provider, "export.run", {"provider": provider.name, "config": provider.config(), "vm": "/DC0/vm/no-such-vm"
                                        if provider.name == "vsphere" else "no-such-vm",
                                        "output_dir": str(tmp_path / "out"), "format": "raw"}, check=False)
    assert e["code"] == "not_found", e
