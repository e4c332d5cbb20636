"""One result, every surface: the same requests run through the C ABI (examples/c/run_operation.c),
Python (hypersdk.run), Node (require('hypersdk').run) and `hsdk run --json` give the same result
JSON. Only a conversion's wall time ("seconds") may differ between runs, so it is compared for its
type and dropped.

Needs the in-tree Python module (build/default/bindings/python) and the Node addon that
scripts/test builds in bindings/node before this suite runs."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import BUILD, HSDK, MiB, ROOT, run, write_pattern
from conftest_openstack import openstack, openstack_disks, openstack_server  # noqa: F401
from openstack_fixtures import os_env

C_RUNNER = BUILD / "examples" / "c" / "hsdk_c_run_operation"
PYTHON_PATH = BUILD / "bindings" / "python"
NODE_ADDON = ROOT / "bindings" / "node" / "build" / "Release" / "hypersdk.node"
OVF = ROOT / "tests" / "data" / "ovf" / "linux-uefi-secureboot.ovf"


def via_c(op, request):
    return json.loads(run([C_RUNNER, op, json.dumps(request)]).stdout)


def via_python(op, request):
    code = "import hypersdk, json, sys; print(json.dumps(hypersdk.run(sys.argv[1], json.loads(sys.argv[2]))))"
    env = dict(os.environ, PYTHONPATH=str(PYTHON_PATH))
    return json.loads(run([sys.executable, "-c", code, op, json.dumps(request)], env=env).stdout)


def via_node(op, request):
    code = ("const h = require(process.argv[1]);"
            "h.run(process.argv[2], JSON.parse(process.argv[3])).then((r) => console.log(JSON.stringify(r)),"
            " (e) => { console.error(e.message); process.exit(1); });")
    return json.loads(run(["node", "-e", code, str(ROOT / "bindings" / "node"), op, json.dumps(request)]).stdout)


def via_cli(op, request):
    return json.loads(run([HSDK, "run", op, "--request", json.dumps(request), "--json"]).stdout)


SURFACES = {"c": via_c, "python": via_python, "node": via_node, "cli": via_cli}


@pytest.fixture(scope="module")
def surfaces_ready():
    missing = [str(p) for p in (C_RUNNER, PYTHON_PATH / "hypersdk", NODE_ADDON) if not p.exists()]
    assert not missing, f"build these first (scripts/test does): {missing}"
    assert shutil.which("node"), "node is required (scripts/setup checks for it)"


def results_everywhere(op, request_for):
    """{surface: result} for one operation; request_for(surface) lets each write its own output."""
    out = {}
    for name, call in SURFACES.items():
        result = call(op, request_for(name))
        if op == "image.convert":
            assert isinstance(result.pop("seconds"), (int, float))
        out[name] = result
    return out


def assert_same(results):
    first = results["c"]
    for name, result in results.items():
        assert result == first, f"{name} differs from c:\n{json.dumps(result, indent=1)}\n{json.dumps(first, indent=1)}"


def test_the_same_result_through_every_surface(tmp_path, surfaces_ready):
    raw = write_pattern(tmp_path / "disk.raw", 24 * MiB, seed=41)
    qcow = tmp_path / "disk.qcow2"
    run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, qcow])

    assert_same(results_everywhere("image.info", lambda s: {"path": str(qcow)}))
    assert_same(results_everywhere("image.check", lambda s: {"path": str(qcow)}))
    assert_same(results_everywhere("image.compare", lambda s: {"a": str(raw), "a_format": "raw", "b": str(qcow)}))

    converted = results_everywhere("image.convert", lambda s: {
        "source": str(qcow), "destination": str(tmp_path / f"out-{s}.vhdx"), "output_format": "vhdx"})
    assert_same(converted)
    assert converted["c"]["virtual_size"] == 24 * MiB
    for s in SURFACES:
        run(["qemu-img", "compare", "-f", "raw", "-F", "vhdx", raw, tmp_path / f"out-{s}.vhdx"])

    domains = results_everywhere("kvm.domain", lambda s: {"from": str(OVF), "disk_dir": str(tmp_path), "network_map": {"VM Network": "default"}})
    assert_same(domains)
    assert domains["c"]["xml"].startswith("<domain")


def test_the_same_error_through_every_surface(tmp_path, surfaces_ready):
    """A bad request fails alike everywhere, naming the field by JSON pointer."""
    request = json.dumps({"path": str(tmp_path / "x.qcow2"), "colour": "blue"})
    for cmd in ([C_RUNNER, "image.info", request], [HSDK, "run", "image.info", "--request", request]):
        p = run(cmd, check=False)
        assert p.returncode != 0 and "/colour: unknown field" in p.stderr, p.stderr
    with pytest.raises(AssertionError, match="/colour: unknown field"):
        via_python("image.info", json.loads(request))
    with pytest.raises(AssertionError, match="/colour: unknown field"):
        via_node("image.info", json.loads(request))


def test_aws_through_every_surface(aws_sim, monkeypatch, surfaces_ready):
    """The aws provider and an ebs:// image through the one operation model, on every surface (the
    AWS simulator of tests/sim/aws; settings from the environment as the AWS SDKs read them)."""
    for k, v in aws_sim.env().items():
        if k.startswith("AWS_"):
            monkeypatch.setenv(k, v)
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(k, raising=False)
    data = bytes(range(256)) * 4096
    inst = aws_sim.make_instance([data], name="surfaces")
    assert_same(results_everywhere("vms.describe", lambda s: {"provider": "aws", "vm": inst["instance_id"]}))
    snap = aws_sim.boto3("ec2").create_snapshot(VolumeId=inst["volumes"][0]["volume_id"])["SnapshotId"]
    infos = results_everywhere("image.info", lambda s: {"path": "ebs://" + snap})
    assert_same(infos)
    assert infos["c"]["format"] == "raw" and infos["c"]["virtual-size"] == 1 << 30


def test_openstack_through_every_surface(openstack, monkeypatch, surfaces_ready):
    """The openstack provider and a glance:// image through the one operation model, on every
    surface (Keystone / Nova / Cinder / Glance fixtures of openstack_fixtures.py; settings from
    the OS_* variables as openstacksdk reads them)."""
    for k in list(os.environ):
        if k.startswith("OS_"):
            monkeypatch.delenv(k)
    for k, v in os_env(openstack, base={}).items():
        monkeypatch.setenv(k, v)
    described = results_everywhere("vms.describe", lambda s: {"provider": "openstack", "vm": "web01"})
    assert_same(described)
    assert described["c"]["vm"]["cpus"] == 1
    infos = results_everywhere("image.info", lambda s: {"path": "glance://" + openstack.qcow2_image.id})
    assert_same(infos)
    assert infos["c"]["format"] == "qcow2" and infos["c"]["virtual-size"] == 16 * MiB
