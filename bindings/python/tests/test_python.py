"""The Python bindings: images, conversion with progress and cancel, errors, KVM entry points."""
import hashlib
import json
import os
import pathlib
import random
import subprocess
import threading

import pytest

import hypersdk

ROOT = pathlib.Path(__file__).resolve().parents[3]
OVF_DIR = ROOT / "tests" / "data" / "ovf"
MiB = 1 << 20


def make_raw(path, size=4 * MiB, seed=1):
    rng = random.Random(seed)
    with open(path, "wb") as f:
        f.truncate(size)
        for off in range(0, size, 512 * 1024):
            f.seek(off)
            f.write(rng.randbytes(64 * 1024))
    return path


def test_version_matches_header():
    header = (ROOT / "capi" / "include" / "hypersdk.h").read_text()
    parts = [line.split()[2] for line in header.splitlines()
             if line.startswith(("#define HSDK_VERSION_MAJOR", "#define HSDK_VERSION_MINOR", "#define HSDK_VERSION_PATCH"))]
    assert hypersdk.__version__ == ".".join(parts) == hypersdk.version()


def test_open_read_block_status(tmp_path):
    raw = make_raw(tmp_path / "d.raw")
    with pytest.raises(hypersdk.UnsupportedError) as e:
        hypersdk.open_image(str(raw))
    assert e.value.code == "unsupported" and e.value.status == -3
    with hypersdk.open_image(str(raw), format="raw") as img:
        assert img.virtual_size == 4 * MiB
        data = img.read(0, 16)
        assert data == raw.read_bytes()[:16]
        runs = img.block_status()
        assert sum(r["length"] for r in runs) == 4 * MiB
        assert runs[0]["kind"] == "data"
        assert img.info["format"] == "raw"
        with pytest.raises(hypersdk.InvalidArgumentError):
            img.read(4 * MiB - 8, 16)
    with pytest.raises(ValueError):
        img.read(0, 1)  # closed


def test_not_found_is_also_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        hypersdk.open_image(str(tmp_path / "nope.qcow2"))
    assert isinstance(e.value, hypersdk.Error)
    assert e.value.code == "not_found"


def test_convert_with_progress_and_compare(tmp_path):
    raw = make_raw(tmp_path / "d.raw")
    seen = []
    stats = hypersdk.convert(str(raw), str(tmp_path / "o.raw"), "raw", source_format="raw",
                             progress=lambda p: seen.append(p) and None)
    assert stats["virtual_size"] == 4 * MiB
    assert seen and seen[-1]["finished"]
    r = hypersdk.compare(str(raw), str(tmp_path / "o.raw"), a_format="raw", b_format="raw")
    assert r["identical"] and r["first_difference"] is None


def test_cancel_from_progress_and_token(tmp_path):
    raw = make_raw(tmp_path / "d.raw")
    with pytest.raises(hypersdk.CancelledError):
        hypersdk.convert(str(raw), str(tmp_path / "o.raw"), "raw", source_format="raw", progress=lambda p: True)
    assert not (tmp_path / "o.raw").exists()
    token = hypersdk.CancelToken()
    token.cancel()
    assert token.cancelled
    with pytest.raises(hypersdk.CancelledError):
        hypersdk.convert(str(raw), str(tmp_path / "o.raw"), "raw", source_format="raw", cancel=token)
    assert not (tmp_path / "o.raw").exists()


def test_exception_in_progress_callback_propagates(tmp_path):
    raw = make_raw(tmp_path / "d.raw")

    def boom(p):
        raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        hypersdk.convert(str(raw), str(tmp_path / "o.raw"), "raw", source_format="raw", progress=boom)
    assert not (tmp_path / "o.raw").exists()


def test_bad_options_raise_value_error(tmp_path):
    raw = make_raw(tmp_path / "d.raw")
    with pytest.raises(ValueError, match="nonsense"):
        hypersdk.convert(str(raw), str(tmp_path / "o.raw"), "raw", source_format="raw", options={"nonsense": 1})


def test_cache_modes(tmp_path):
    raw = make_raw(tmp_path / "d.raw")
    for cache in ("none", "writeback", "unsafe"):
        out = tmp_path / f"o-{cache}.qcow2"
        hypersdk.convert(str(raw), str(out), "qcow2", source_format="raw", cache=cache)
        assert hypersdk.compare(str(raw), str(out), a_format="raw")["identical"]
    with pytest.raises(ValueError, match="'always'"):
        hypersdk.convert(str(raw), str(tmp_path / "never.qcow2"), "qcow2", source_format="raw", cache="always")
    assert not (tmp_path / "never.qcow2").exists()


def test_gil_is_released_during_conversion(tmp_path):
    raw = make_raw(tmp_path / "d.raw", size=64 * MiB)
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(1)
            stop.wait(0.001)

    t = threading.Thread(target=ticker)
    t.start()
    hypersdk.convert(str(raw), str(tmp_path / "o.raw"), "raw", source_format="raw")
    stop.set()
    t.join()
    assert ticks  # the other thread ran while C++ worked


def test_log_handler(tmp_path):
    lines = []
    hypersdk.set_log_handler(lambda level, msg: lines.append((level, msg)), "debug")
    hypersdk.set_log_handler(None)
    with pytest.raises(ValueError):
        hypersdk.set_log_handler(print, "loud")


def test_kvm_entry_points(tmp_path):
    vm = hypersdk.load_vm(OVF_DIR / "linux-uefi-secureboot.ovf")
    assert vm["firmware"] == "efi" and vm["secure_boot"]
    xml = hypersdk.kvm_domain_xml(vm, disk_dir=tmp_path, bridge_map={"Front": "br0"})
    assert "<source bridge='br0'/>" in xml and str(tmp_path) in xml
    xml2 = hypersdk.kvm_domain_xml(str(OVF_DIR / "windows2019-efi.ovf"), windows_virtio=True)
    assert "bus='virtio'" in xml2
    with pytest.raises(TypeError):
        hypersdk.kvm_domain_xml(vm, no_such_option=1)
    # Manifest over real converted disks.
    for name in ("db01-disk1.qcow2", "db01-disk2.qcow2"):
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(tmp_path / name), "1M"], check=True)
    m = hypersdk.kvm_manifest(vm, disk_dir=tmp_path)
    assert m["manifest_version"] == 1
    assert m["disks"][0]["sha256"] == hashlib.sha256((tmp_path / "db01-disk1.qcow2").read_bytes()).hexdigest()
    hypersdk.write_json(tmp_path / "m.json", m)
    assert json.loads((tmp_path / "m.json").read_text())["vm"]["cpu"]["count"] == 8
    parsed = hypersdk.parse_ovf((OVF_DIR / "virtualbox-debian.ovf").read_text())
    assert parsed["producer"] == "virtualbox" and len(parsed["files"]) == 2
    text = hypersdk.write_ovf(vm, [("a.vmdk", 1), ("b.vmdk", 2)])
    assert hypersdk.parse_ovf(text)["vm"]["cpus"] == 8
    with pytest.raises(hypersdk.CorruptImageError):
        hypersdk.parse_ovf("<not-ovf/>")


def test_create_image_from_own_data(tmp_path):
    """Writing an image from Python data: qemu-img must read it back as what was written."""
    size = 8 * MiB
    expected = bytearray(size)
    rng = random.Random(9)
    pieces = []
    for off in range(0, size, 700 * 1024):
        data = rng.randbytes(100 * 1024)
        expected[off: off + len(data)] = data
        pieces.append((off, data))
    raw = tmp_path / "expected.raw"
    raw.write_bytes(bytes(expected))
    for fmt, qemu in (("qcow2", "qcow2"), ("vhdx", "vhdx"), ("vmdk", "vmdk"), ("vhd", "vpc"), ("vdi", "vdi")):
        out = tmp_path / f"made.{fmt}"
        with hypersdk.create_image(str(out), size, fmt) as w:
            assert not w.random_access
            for off, data in pieces:
                w.write(off, data)
            assert not out.exists()
        p = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", qemu, str(raw), str(out)], capture_output=True, text=True)
        assert p.returncode == 0, (fmt, p.stdout, p.stderr)
    # An exception inside the block leaves nothing behind.
    out = tmp_path / "failed.qcow2"
    with pytest.raises(RuntimeError):
        with hypersdk.create_image(str(out), size, "qcow2") as w:
            w.write(0, b"x" * 4096)
            raise RuntimeError("producer failed")
    del w
    import gc
    gc.collect()
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if ".hsdk-" in p.name]
    with hypersdk.create_image(str(tmp_path / "r.raw"), MiB, "raw") as w:
        assert w.random_access
        w.write(4096, b"b" * 10)
        w.write(0, b"a" * 10)
    assert (tmp_path / "r.raw").read_bytes()[:10] == b"a" * 10
