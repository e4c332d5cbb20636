"""Compressed and encrypted export and backup outputs against govmomi's vSphere simulator
(tests/sim/vsphere): OVF/OVA disk files stored gzip-compressed as ovftool --compress writes them
(ovf:compression="gzip") and read back by kvm import; raw disks and whole OVAs compressed as
streams the stock tools decode; encrypted disk files whose manifests list the digests of what is
stored, results that say how and for whom; encrypted backup links that restore, verify and prune
with their keys. qemu-img judges the images."""
import hashlib
import json
import os
import pathlib
import re
import subprocess
import tarfile

import pytest

from conftest import MiB, hsdk, qemu_img, write_pattern
from vsphere_sim import Simulator, cli_env

VM = "/DC0/vm/DC0_H0_VM0"
VM_BACKING = "[LocalDS_0] DC0_H0_VM0/disk1.vmdk"
MAGIC = b"HSDKENC\0"


@pytest.fixture(scope="module")
def disk(tmp_path_factory):
    d = tmp_path_factory.mktemp("image")
    raw = write_pattern(d / "disk.raw", 16 * MiB, seed=8080)
    vmdk = d / "disk.vmdk"
    qemu_img("convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", raw, vmdk)
    return raw, vmdk.read_bytes()


@pytest.fixture(scope="module")
def sim(tmp_path_factory, disk):
    s = Simulator(tmp_path_factory.mktemp("sim"))
    s.upload(VM_BACKING, disk[1])
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def reset(sim):
    sim.control(faults={}, reset_log=True, power_on=["DC0_H0_VM0"])
    yield


@pytest.fixture
def secret(tmp_path):
    p = tmp_path / "passphrase"
    p.write_text("export passphrase 42\n")
    return p


def export(sim, out, fmt, *extra, check=True):
    return hsdk("export", *sim.cli_args(), "--vm", VM, "--out", out, "--format", fmt, *extra, check=check, env=cli_env())


def names(folder):
    return sorted(p.name for p in pathlib.Path(folder).iterdir())


def no_snapshot_left(sim):
    assert sim.state()["snapshots"]["DC0_H0_VM0"] == 0


def test_ova_with_gzip_disk_members_as_ovftool_writes_them(sim, tmp_path, disk):
    raw, vmdk = disk
    out = tmp_path / "out"
    export(sim, out, "ova", "--compress", "gzip")
    ova = out / "DC0_H0_VM0.ova"
    assert names(out) == [ova.name]
    with tarfile.open(ova) as t:
        assert t.getnames() == ["DC0_H0_VM0.ovf", "DC0_H0_VM0.mf", "DC0_H0_VM0-disk1.vmdk"]
        stored = t.extractfile("DC0_H0_VM0-disk1.vmdk").read()
        descriptor = t.extractfile("DC0_H0_VM0.ovf").read().decode()
        manifest = t.extractfile("DC0_H0_VM0.mf").read().decode()
    assert stored[:2] == b"\x1f\x8b"
    assert subprocess.run(["gzip", "-dc"], input=stored, capture_output=True, check=True).stdout == vmdk
    assert re.search(r'<File ovf:compression="gzip" ovf:href="DC0_H0_VM0-disk1.vmdk" ovf:id="file1" ovf:size="%d"/>' % len(stored),
                     descriptor), descriptor
    assert f"SHA256(DC0_H0_VM0-disk1.vmdk)= {hashlib.sha256(stored).hexdigest()}" in manifest
    assert "verified" in hsdk("ova", "verify", ova).stdout
    # kvm import reads the gzip member as it streams out of the OVA.
    kvm = tmp_path / "kvm"
    hsdk("kvm", "import", "--from", ova, "--out", kvm, "--disk-format", "qcow2")
    qemu_img("compare", "-f", "raw", "-F", "qcow2", raw, kvm / "DC0_H0_VM0-disk1.qcow2")
    no_snapshot_left(sim)


def test_ovf_folder_with_gzip_disk_files(sim, tmp_path, disk):
    raw, vmdk = disk
    out = tmp_path / "out"
    export(sim, out, "ovf", "--compress", "gzip")
    assert names(out) == ["DC0_H0_VM0-disk1.vmdk", "DC0_H0_VM0.mf", "DC0_H0_VM0.ovf"]
    stored = (out / "DC0_H0_VM0-disk1.vmdk").read_bytes()
    assert subprocess.run(["gzip", "-dc"], input=stored, capture_output=True, check=True).stdout == vmdk
    assert 'ovf:compression="gzip"' in (out / "DC0_H0_VM0.ovf").read_text()
    hsdk("ova", "verify", out / "DC0_H0_VM0.ovf")
    kvm = tmp_path / "kvm"
    hsdk("kvm", "import", "--from", out / "DC0_H0_VM0.ovf", "--out", kvm, "--disk-format", "raw")
    qemu_img("compare", "-f", "raw", "-F", "raw", raw, kvm / "DC0_H0_VM0-disk1.raw")
    p = export(sim, tmp_path / "o2", "ovf", "--compress", "zstd", check=False)
    assert p.returncode != 0 and "gzip" in p.stderr


@pytest.mark.parametrize("method,tool", [("zstd", ["zstd", "-dcq"]), ("lz4", ["lz4", "-dc"]), ("gzip", ["gzip", "-dc"])])
def test_raw_disks_compressed_as_streams(sim, tmp_path, disk, method, tool):
    raw, _ = disk
    out = tmp_path / "out"
    p = export(sim, out, "raw", "--compress", method, "--compress-level", "3")
    suffix = {"zstd": ".zst", "lz4": ".lz4", "gzip": ".gz"}[method]
    assert names(out) == [f"DC0_H0_VM0-disk1.raw{suffix}"]
    assert subprocess.run(tool + [str(out / names(out)[0])], capture_output=True, check=True).stdout == raw.read_bytes()
    back = tmp_path / "back.qcow2"
    hsdk("convert", "-O", "qcow2", out / names(out)[0], back)
    qemu_img("compare", "-f", "raw", "-F", "qcow2", raw, back)
    no_snapshot_left(sim)


def test_whole_ova_compressed_with_zstd(sim, tmp_path, disk):
    out = tmp_path / "out"
    export(sim, out, "ova", "--compress", "zstd")
    assert names(out) == ["DC0_H0_VM0.ova.zst"]
    plain = tmp_path / "plain.ova"
    hsdk("decompress", out / "DC0_H0_VM0.ova.zst", plain)
    assert "verified" in hsdk("ova", "verify", plain).stdout


def test_encrypted_ova_manifest_lists_what_is_stored(sim, tmp_path, disk, secret):
    raw, vmdk = disk
    out = tmp_path / "out"
    p = export(sim, out, "ova", "--encrypt", "--passphrase-file", secret)
    assert "encrypted: aes-256-gcm (passphrase)" in p.stdout
    ova = out / "DC0_H0_VM0.ova"
    with tarfile.open(ova) as t:
        stored = t.extractfile("DC0_H0_VM0-disk1.vmdk").read()
        manifest = t.extractfile("DC0_H0_VM0.mf").read().decode()
        descriptor = t.extractfile("DC0_H0_VM0.ovf").read().decode()
    assert stored.startswith(MAGIC) and vmdk not in stored
    assert f"SHA256(DC0_H0_VM0-disk1.vmdk)= {hashlib.sha256(stored).hexdigest()}" in manifest
    assert f'ovf:size="{len(stored)}"' in descriptor
    assert "verified" in hsdk("ova", "verify", ova).stdout
    # Imported with the key; without it, a clear error and nothing written.
    kvm = tmp_path / "kvm"
    q = hsdk("kvm", "import", "--from", ova, "--out", kvm / "nokey", "--disk-format", "qcow2", check=False)
    assert q.returncode != 0 and "--passphrase-file" in q.stderr
    assert not (kvm / "nokey").exists() or names(kvm / "nokey") == []
    hsdk("kvm", "import", "--from", ova, "--out", kvm, "--disk-format", "qcow2", "--passphrase-file", secret)
    qemu_img("compare", "-f", "raw", "-F", "qcow2", raw, kvm / "DC0_H0_VM0-disk1.qcow2")
    no_snapshot_left(sim)


def test_encrypted_and_compressed_disk_formats_record_how(sim, tmp_path, disk, secret):
    raw, _ = disk
    age_dir = tmp_path / "age"
    age_dir.mkdir()
    subprocess.run(["age-keygen", "-o", age_dir / "key"], check=True, capture_output=True)
    public = subprocess.run(["age-keygen", "-y", age_dir / "key"], check=True, capture_output=True, text=True).stdout.strip()
    out = tmp_path / "out"
    # Through the operation model (what C, Python, Node and the daemon's /v1/ops call alike).
    request = {"connection": {"url": sim.url, "username": "exporter", "password_env": "HSDK_TEST_PASSWORD", "ca_file": str(sim.ca_file)},
               "vm": VM, "output_dir": str(out), "format": "qcow2", "encrypt": True, "encrypt_method": "age", "recipient": [public]}
    res = json.loads(hsdk("run", "export.run", "--json", "-r", json.dumps(request), env=cli_env()).stdout)
    disk_file = out / "DC0_H0_VM0-disk1.qcow2"
    assert names(out) == [disk_file.name]
    assert disk_file.read_bytes().startswith(b"age-encryption.org/v1\n")
    plain = tmp_path / "plain.qcow2"
    with open(plain, "wb") as f:
        subprocess.run(["age", "-d", "-i", age_dir / "key", disk_file], stdout=f, check=True)
    qemu_img("check", plain)
    qemu_img("compare", "-f", "raw", "-F", "qcow2", raw, plain)
    assert res["encryption"] == {"method": "age", "key": "recipients", "recipients": [public]}
    assert res["vm"]["disks"][0]["sha256"] == hashlib.sha256(disk_file.read_bytes()).hexdigest()
    # hyper2kvm hands disks to KVM as they are: refused with an encrypted output, before anything moves.
    p = export(sim, tmp_path / "o3", "qcow2", "--encrypt", "--passphrase-file", secret, "--hyper2kvm-manifest", check=False)
    assert p.returncode != 0 and "hyper2kvm" in p.stderr
    assert not (tmp_path / "o3").exists() or names(tmp_path / "o3") == []
    # Wrong key material is refused before anything moves.
    sim.control(reset_log=True)
    p = export(sim, tmp_path / "o4", "qcow2", "--encrypt", "--recipient", "age1bogus", check=False)
    assert p.returncode != 0 and "age1bogus" in p.stderr
    assert "CreateSnapshot_Task" not in sim.state()["calls"]
    no_snapshot_left(sim)


def test_export_failure_leaves_no_plaintext(sim, tmp_path, disk, secret):
    out = tmp_path / "out"
    sim.control(faults={"nfc_corrupt": True})
    p = export(sim, out, "raw", "--encrypt", "--passphrase-file", secret, "--compress", "zstd", check=False)
    assert p.returncode != 0
    left = names(out) if out.exists() else []
    assert not [n for n in left if "plain" in n or "sealed" in n or "compressed" in n], left
    assert not [n for n in left if not n.startswith(".")], left
    no_snapshot_left(sim)


# ---- encrypted backups -------------------------------------------------------------------------

BACKUP_VM_NAME = "DC0_C0_RP0_VM0"
BACKUP_VM = f"/DC0/vm/{BACKUP_VM_NAME}"


def test_encrypted_backup_chain_restores_verifies_and_prunes_with_its_key(sim, tmp_path, secret):
    versions = []
    for k in range(3):
        versions.append(write_pattern(tmp_path / f"v{k}.raw", 8 * MiB, seed=600 + k))
    sim.control(plant_disk={"vm": BACKUP_VM_NAME, "raw": str(versions[0])})
    hsdk("cbt", "enable", *sim.cli_args(), "--vm", BACKUP_VM, env=cli_env())
    repo = tmp_path / "repo"
    results = []
    for k, raw in enumerate(versions):
        if k:
            sim.control(plant_disk={"vm": BACKUP_VM_NAME, "raw": str(raw)})
        p = hsdk("backup", *sim.cli_args(), "--vm", BACKUP_VM, "--repo", repo, "--json", "--encrypt", "--passphrase-file", secret,
                 env=cli_env())
        r = json.loads(p.stdout)
        d = r["disks"][0]
        assert d["encryption"] == {"method": "aes-256-gcm", "key": "passphrase", "recipients": []}
        link = pathlib.Path(d["file"])
        assert link.read_bytes()[:8] == MAGIC
        assert d["sha256"] == hashlib.sha256(link.read_bytes()).hexdigest()
        results.append(r)
    folder = repo / BACKUP_VM_NAME
    state = json.loads((folder / "state.json").read_text())
    assert all(d["encryption"]["method"] == "aes-256-gcm" for pt in state["points"] for d in pt["disks"])
    assert "export passphrase 42" not in (folder / "state.json").read_text()
    top = results[-1]["disks"][0]["file"]

    # Without the key: a clear error naming the flags, nothing written.
    p = hsdk("restore", "--repo", repo, "--vm", BACKUP_VM_NAME, "-O", "raw", "--out", tmp_path / "nokey", check=False)
    assert p.returncode != 0 and "--passphrase-file" in p.stderr
    assert not (tmp_path / "nokey").exists() or names(tmp_path / "nokey") == []
    v = json.loads(hsdk("chain", "verify", "--json", "--passphrase-file", secret, top).stdout)
    assert v["ok"] and v["hashes_checked"] == 3 and len(v["links"]) == 3
    for point in (1, 3):
        out = tmp_path / f"r{point}"
        res = json.loads(hsdk("restore", "--repo", repo, "--vm", BACKUP_VM_NAME, "--point", str(point), "-O", "raw", "--out", out,
                              "--passphrase-file", secret, "--json").stdout)
        qemu_img("compare", "-f", "raw", "-F", "raw", versions[point - 1], res["files"][0])

    # Prune folds the oldest kept point: the folded link is encrypted again as it was.
    r = json.loads(hsdk("backup", "prune", "--repo", repo, "--vm", BACKUP_VM_NAME, "--keep-last", "2", "--passphrase-file", secret,
                        "--json").stdout)
    assert r["removed_points"] == ["1"] and len(r["folded_files"]) == 1
    folded = pathlib.Path(r["folded_files"][0])
    assert folded.read_bytes()[:8] == MAGIC
    assert json.loads(hsdk("chain", "verify", "--json", "--passphrase-file", secret, top).stdout)["ok"]
    out = tmp_path / "after-prune"
    res = json.loads(hsdk("restore", "--repo", repo, "--vm", BACKUP_VM_NAME, "-O", "qcow2", "--out", out, "--passphrase-file", secret,
                          "--json").stdout)
    qemu_img("compare", "-f", "raw", "-F", "qcow2", versions[-1], res["files"][0])
    assert sim.state()["snapshots"][BACKUP_VM_NAME] == 0
