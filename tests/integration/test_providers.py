"""The provider registry and plugins: hsdk providers, loading plugins from HSDK_PLUGIN_PATH or by
providers.load (ABI checks), and the free-space pre-flight of exports. The conformance of each
provider is test_provider_conformance.py."""
import json
import os
import pathlib
import subprocess

from conftest import BUILD, HSDK, MiB, hsdk, qemu_img

# The plugins are built by the default build (an ASan run of these tests loads them from there).
PLUGIN_DIR = pathlib.Path(os.environ.get("HSDK_PLUGIN_BUILD_DIR", BUILD / "examples" / "plugin"))
PLUGIN = PLUGIN_DIR / "hsdk_localdir_plugin.so"
FUTURE = PLUGIN_DIR / "hsdk_future_abi_plugin.so"


def env_with(path):
    return dict(os.environ, HSDK_PLUGIN_PATH=str(path))


def run_json(*args, env=None, check=True):
    p = hsdk(*args, "--json", env=env, check=False)
    if check:
        assert p.returncode == 0, p.stdout + p.stderr
    return p, json.loads(p.stdout) if p.stdout.strip() else None


def test_builtin_providers_without_plugins():
    env = {k: v for k, v in os.environ.items() if k != "HSDK_PLUGIN_PATH"}
    _, providers = run_json("providers", env=env)
    assert [p["name"] for p in providers] == ["vsphere", "aws", "azure", "gcp", "openstack"]
    v = providers[0]
    assert v["origin"] == "built-in" and "native_export" in v["capabilities"]
    # The config schema stands alone: the vSphere connection, its password write-only.
    props = v["config_schema"]["definitions"]["vsphere_connection"]["properties"]
    assert props["password"]["writeOnly"] is True
    a = providers[1]
    assert a["origin"] == "built-in" and {"snapshot", "native_export", "changed_extents"} <= set(a["capabilities"])
    props = a["config_schema"]["definitions"]["aws_connection"]["properties"]
    assert props["secret_access_key"]["writeOnly"] is True and props["session_token"]["writeOnly"] is True


def test_plugin_folder_loads_good_plugins_and_refuses_a_future_abi():
    p, providers = run_json("providers", env=env_with(PLUGIN.parent))
    names = {x["name"]: x for x in providers}
    assert set(names) == {"vsphere", "aws", "azure", "gcp", "openstack", "localdir"}
    assert names["localdir"]["origin"] == str(PLUGIN)
    assert names["localdir"]["capabilities"] == ["list", "describe", "block_reads"]
    assert "speaks plugin ABI version 99" in p.stderr and "knows versions up to 1" in p.stderr


def test_providers_load_checks_what_it_loads(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "HSDK_PLUGIN_PATH"}
    p, r = run_json("run", "providers.load", "-r", json.dumps({"path": str(FUTURE)}), env=env, check=False)
    assert r["error"]["code"] == "unsupported" and "ABI version 99" in r["error"]["message"]
    not_a_plugin = tmp_path / "libnot.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(not_a_plugin), "-x", "c", "-"], input=b"int x;", check=True)
    p, r = run_json("run", "providers.load", "-r", json.dumps({"path": str(not_a_plugin)}), env=env, check=False)
    assert r["error"]["code"] == "unsupported" and "hsdk_plugin_init" in r["error"]["message"]
    p, r = run_json("run", "providers.load", "-r", json.dumps({"path": str(tmp_path / "missing.so")}), env=env, check=False)
    assert r["error"]["code"] == "not_found"
    # Loaded twice (from the path and by name): the second is a conflict.
    p, r = run_json("run", "providers.load", "-r", json.dumps({"path": str(PLUGIN)}), env=env_with(PLUGIN), check=False)
    assert r["error"]["code"] == "conflict"


def test_config_is_checked_against_the_providers_schema(tmp_path):
    p, r = run_json("run", "vms.list", "-r", json.dumps({"provider": "localdir", "config": {"root": 5}}),
                    env=env_with(PLUGIN), check=False)
    assert r["error"]["code"] == "invalid_argument"
    assert "config of provider localdir: /root: expected string" in r["error"]["message"]
    p, r = run_json("run", "vms.list", "-r", json.dumps({"provider": "nosuch"}), env=env_with(PLUGIN), check=False)
    assert r["error"]["code"] == "not_found" and "localdir" in r["error"]["message"]


def make_vm(root, capacity, data):
    vm = root / "big"
    vm.mkdir(parents=True)
    disk = vm / "disk1.raw"
    with open(disk, "wb") as f:
        f.truncate(capacity)
        f.seek(capacity // 2)
        f.write(os.urandom(data))
    (vm / "vm.json").write_text(json.dumps({"name": "big", "disks": [{"id": "0", "capacity_bytes": capacity, "file": "disk1.raw"}]}))
    return disk


def test_export_refuses_up_front_without_room_and_no_space_check_overrides(tmp_path):
    root = tmp_path / "root"
    disk = make_vm(root, 32 * MiB, 1 * MiB)
    out = tmp_path / "small"
    out.mkdir()
    config = json.dumps({"root": str(root)})
    base = f"'{HSDK}' export --provider localdir --config '{config}' --vm big --out '{out}' --format qcow2"
    # A 24 MiB file system: a 32 MiB disk needs about 38 MiB by the 1.2x rule.
    script = (f"mount -t tmpfs -o size=24m tmpfs '{out}' && {{ {base}; echo first=$?; echo left=$(ls -A '{out}'); "
              f"{base} --no-space-check; echo second=$?; cp '{out}/big-disk1.qcow2' '{tmp_path}/'; }}")
    p = subprocess.run(["unshare", "-r", "-m", "sh", "-c", script], capture_output=True, text=True, env=env_with(PLUGIN), timeout=120)
    lines = dict(line.split("=", 1) for line in p.stdout.splitlines() if "=" in line and line.split("=", 1)[0] in ("first", "left", "second"))
    assert lines["first"] == "1", p.stdout + p.stderr
    assert "not enough space" in p.stderr and "needs about" in p.stderr and "--no-space-check" in p.stderr
    assert lines["left"] == ""  # refused before anything was written
    assert lines["second"] == "0", p.stdout + p.stderr
    qemu_img("compare", "-f", "raw", "-F", "qcow2", disk, tmp_path / "big-disk1.qcow2")


def test_snapshots_of_a_provider_without_them_are_unsupported(tmp_path):
    root = tmp_path / "root"
    make_vm(root, 4 * MiB, 4096)
    config = json.dumps({"root": str(root)})
    p, r = run_json("run", "vms.snapshots.list", "-r", json.dumps({"provider": "localdir", "config": {"root": str(root)}, "vm": "big"}),
                    env=env_with(PLUGIN), check=False)
    assert r["error"]["code"] == "unsupported" and "no snapshots" in r["error"]["message"]
    p = hsdk("vms", "snapshots", "create", "--provider", "localdir", "--config", config, "--vm", "big", "--name", "x",
             env=env_with(PLUGIN), check=False)
    assert p.returncode == 1 and "unsupported" in p.stderr
