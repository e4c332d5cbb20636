"""VHD (vpc): reading qemu-made fixed and dynamic disks, differencing disks built by gen_vhd.py,
qemu's size rule, and the fixed / dynamic / Azure writers, judged by qemu-img, vhdiinfo and
vhdimount."""
import json
import os
import shutil
import struct
import subprocess

import pytest

from conftest import MiB, assert_qemu_identical, hsdk, list_temporaries, qemu_img, qemu_info, run, write_pattern
import gen_vhd

# Sizes that are whole multiples of neither the 2 MiB block, nor a CHS geometry, nor (the first)
# a sector.
SIZES = [5 * MiB + 12345, 9 * MiB + 3 * 512]


def hsdk_info(path, *extra):
    return json.loads(hsdk("info", "--json", *extra, path).stdout)


def hsdk_to_raw(image, out, *extra):
    hsdk("convert", *extra, "-O", "raw", image, out)
    return out


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("subformat", ["dynamic", "fixed"])
@pytest.mark.parametrize("force_size", ["on", "off"])
def test_reads_qemu_vhd(workdir, size, subformat, force_size):
    src = write_pattern(workdir / "src.raw", size, seed=size % 97)
    img = workdir / "img.vhd"
    qemu_img("convert", "-f", "raw", "-O", "vpc", "-o", f"subformat={subformat},force_size={force_size}", src, img)
    out = hsdk_to_raw(img, workdir / "out.raw", "-f", "vhd")
    assert_qemu_identical(img, "vpc", out, "raw")
    assert_qemu_identical(src, "raw", out, "raw")
    info = hsdk_info(img, "-f", "vhd")
    assert info["virtual-size"] == qemu_info(img, "vpc")["virtual-size"]
    assert info["subformat"] == subformat
    specific = info["format-specific"]["data"]
    assert specific["creator-application"] == ("qem2" if force_size == "on" else "qemu")
    assert specific["size-source"] == ("current-size" if force_size == "on" else "chs-geometry")
    if subformat == "dynamic":
        assert hsdk("info", img).stdout.find("file format: vhd") >= 0  # probed by its footer copy
    report = json.loads(hsdk("check", "--json", "-f", "vhd", img).stdout)
    assert report["corruptions"] == 0 and report["check-errors"] == 0, report


def write_fixed_with_footer(path, data_size, footer_bytes):
    with open(path, "wb") as f:
        f.truncate(data_size)
        f.seek(data_size)
        f.write(footer_bytes)


@pytest.mark.parametrize("creator", [b"vpc ", b"qemu", b"win ", b"qem2", b"d2v ", b"CTXS", b"tap\0", b"tap ", b"wa\0\0",
                                     b"d2v\0", b"VBox"])
@pytest.mark.parametrize("geometry", ["small", "max"])
def test_virtual_size_rule_matches_qemu(workdir, creator, geometry):
    """qemu-img 7.2 uses current_size only for the creators it trusts or the largest geometry;
    we must agree with it on every VHD."""
    current = 6 * MiB + 7 * 512
    if geometry == "max":
        chs = (65535, 16, 255)
    else:
        chs = gen_vhd.chs_geometry(current // 512 - 600)  # CHS clearly smaller than current_size
    uid = bytes(range(16))
    # Fixed disk: data area big enough for either size.
    fixed = workdir / "fixed.vhd"
    data_size = max(current, 0 if geometry == "max" else chs[0] * chs[1] * chs[2] * 512)
    write_fixed_with_footer(fixed, data_size, gen_vhd.footer(current, 2, 0xFFFFFFFFFFFFFFFF, uid, creator, geometry=chs))
    q = qemu_img("info", "--output=json", "-f", "vpc", fixed, check=False)
    if q.returncode != 0:
        # qemu refuses it (a maximal CHS with a bigger current size it cannot read): so must we, or
        # at least we must not claim a different size. Only the max geometry can get here.
        assert geometry == "max"
        return
    qsize = json.loads(q.stdout)["virtual-size"]
    info = hsdk_info(fixed, "-f", "vhd")
    assert info["virtual-size"] == qsize
    trusted = creator in (b"win ", b"qem2", b"d2v ", b"CTXS", b"tap\0") or geometry == "max"
    assert info["format-specific"]["data"]["size-source"] == ("current-size" if trusted else "chs-geometry")
    assert qsize == (current if trusted else chs[0] * chs[1] * chs[2] * 512) != (0 if trusted else current)
    # Dynamic disk with the same footer, built from scratch.
    dyn = workdir / "dyn.vhd"
    gen_vhd.write_sparse(dyn, current, 2 * MiB, {}, creator=creator)
    with open(dyn, "r+b") as f:  # give it the geometry under test
        for at in (0, os.path.getsize(dyn) - 512):
            f.seek(at)
            f.write(gen_vhd.footer(current, 3, 512, uid, creator, geometry=chs))
    q = qemu_img("info", "--output=json", "-f", "vpc", dyn, check=False)
    if q.returncode == 0:
        assert hsdk_info(dyn)["virtual-size"] == json.loads(q.stdout)["virtual-size"]


def expected_vhd_size(size, azure):
    size = -(-size // 512) * 512
    return -(-size // MiB) * MiB if azure else size


def vhdiinfo(path):
    out = run(["vhdiinfo", path]).stdout
    fields = {}
    for line in out.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            fields[k.strip()] = v.strip()
    return fields


@pytest.mark.parametrize("options,disk_type,azure", [
    ("subformat=fixed", "Fixed", False),
    ("subformat=dynamic", "Dynamic", False),
    ("subformat=dynamic,block_size=512K", "Dynamic", False),
    ("block_size=4K", "Dynamic", False),
    ("azure=on", "Fixed", True),
    ("azure=on,subformat=fixed", "Fixed", True),
])
@pytest.mark.parametrize("size", SIZES)
def test_writes_vhd(workdir, options, disk_type, azure, size):
    src = write_pattern(workdir / "src.raw", size, seed=size % 89 + len(options))
    out = workdir / "out.vhd"
    hsdk("convert", "-f", "raw", "-O", "vpc", "-o", options, src, out)
    assert list_temporaries(workdir) == []
    # Non-strict compare: with azure=on the output is bigger; the extra part reads as zeros.
    assert_qemu_identical(src, "raw", out, "vpc")
    q = qemu_info(out, "vpc")
    assert q["format"] == "vpc"
    vsize = expected_vhd_size(size, azure)
    assert q["virtual-size"] == vsize
    v = vhdiinfo(out)
    assert v["Disk type"] == disk_type
    assert f"({vsize} bytes)" in v["Media size"]
    if disk_type == "Fixed":
        assert os.path.getsize(out) == vsize + 512
    report = json.loads(hsdk("check", "--json", "-f", "vhd", out).stdout)
    assert report["corruptions"] == 0 and report["check-errors"] == 0, report
    info = hsdk_info(out, "-f", "vhd")
    assert info["virtual-size"] == vsize
    assert info["format-specific"]["data"]["creator-application"] == "win "
    # Sparse: the copy occupies about what the source's data does.
    assert os.stat(out).st_blocks <= os.stat(src).st_blocks + 64
    back = hsdk_to_raw(out, workdir / "back.raw", "-f", "vhd")
    assert_qemu_identical(src, "raw", back, "raw")


def test_vhdimount_reads_our_dynamic_vhd(workdir):
    if not fuse_usable():
        pytest.skip("FUSE not usable here")
    src = write_pattern(workdir / "src.raw", SIZES[0], seed=3)
    out = workdir / "out.vhd"
    hsdk("convert", "-f", "raw", "-O", "vhd", src, out)
    with mounted(out, workdir / "mnt") as disk:
        data = disk.read_bytes()
    raw = src.read_bytes()
    assert data[:len(raw)] == raw and data[len(raw):] == bytes(len(data) - len(raw))


def test_azure_refuses_dynamic(workdir):
    src = write_pattern(workdir / "src.raw", 1 * MiB, seed=5)
    out = workdir / "out.vhd"
    p = hsdk("convert", "-f", "raw", "-O", "vhd", "-o", "azure=on,subformat=dynamic", src, out, check=False)
    assert p.returncode == 1
    assert "Azure accepts fixed VHDs only" in p.stderr
    assert not out.exists() and list_temporaries(workdir) == []


@pytest.mark.parametrize("options,message", [
    ("force_size=on", "force_size"),
    ("subformat=stream", "subformat"),
    ("subformat=fixed,block_size=1M", "block_size"),
    ("block_size=3000", "power of two"),
    ("block_size=2K", "power of two"),
    ("azure=maybe", "azure"),
])
def test_bad_options_are_refused(workdir, options, message):
    src = write_pattern(workdir / "src.raw", 1 * MiB, seed=6)
    p = hsdk("convert", "-f", "raw", "-O", "vhd", "-o", options, src, workdir / "out.vhd", check=False)
    assert p.returncode == 1
    assert message in p.stderr


def test_differencing_chain_reads_parent_through_bitmaps(workdir):
    parent, child, expected = gen_vhd.make_parent_and_child(workdir)
    out = hsdk_to_raw(child, workdir / "out.raw")
    assert out.read_bytes() == expected
    top, below = json.loads(hsdk("info", "--json", "--backing-chain", child).stdout)
    chain = dict(top, **{"backing-image": below})
    assert chain["subformat"] == "differencing"
    assert chain["backing-filename"] == "parent.vhd"
    assert chain["backing-filename-format"] == "vhd"
    assert chain["format-specific"]["data"]["parent"]["followed"]["from"] == "W2ru locator"
    assert chain["backing-image"]["subformat"] == "dynamic"
    runs = json.loads(hsdk("map", "--json", child).stdout)
    assert {r["depth"] for r in runs if r["data"]} == {0, 1}
    # Converting the chain flattens it.
    flat = workdir / "flat.vhd"
    hsdk("convert", "-O", "vhd", child, flat)
    assert hsdk_to_raw(flat, workdir / "flat.raw").read_bytes() == expected
    # Without the parent, the child alone reads zeros where it holds nothing.
    alone = json.loads(hsdk("info", "--json", child).stdout)
    assert alone["virtual-size"] == len(expected)


def test_differencing_agrees_with_libvhdi(workdir):
    parent, child, expected = gen_vhd.make_parent_and_child(workdir, pattern="tail", seed=23)
    v = vhdiinfo(child)
    assert v["Disk type"] == "Differential"
    info = hsdk_info(child)
    assert v["Parent identifier"] == info["format-specific"]["data"]["parent"]["unique-id"]
    assert v["Parent filename"] == "parent.vhd"
    assert hsdk_to_raw(child, workdir / "out.raw").read_bytes() == expected
    if not fuse_usable():
        pytest.skip("FUSE not usable here: compared with gen_vhd.py's expected bytes only")
    with mounted(child, workdir / "mnt", layer=2) as disk:
        assert disk.read_bytes() == expected


def test_absolute_parent_locator_is_refused(workdir):
    sub = workdir / "elsewhere"
    sub.mkdir()
    absolute = "\\".join([""] + list(sub.resolve().parts[1:]) + ["parent.vhd"])  # \tmp\...\parent.vhd
    parent, child, expected = gen_vhd.make_parent_and_child(sub, locators=("W2ku",), w2ku_path=absolute)
    shutil.move(child, workdir / "child.vhd")
    child = workdir / "child.vhd"
    p = hsdk("info", child, check=False)
    assert p.returncode == 1
    assert "absolute path" in p.stderr
    assert hsdk_to_raw(child, workdir / "out.raw", "--allow-external-files").read_bytes() == expected


def test_windows_drive_letter_locator_is_refused(workdir):
    _, child, _ = gen_vhd.make_parent_and_child(workdir, locators=("W2ku",))
    p = hsdk("info", child, check=False)
    assert p.returncode == 1
    assert "'/VMs/parent.vhd' is an absolute path" in p.stderr


def test_parent_locator_climbing_out_is_refused(workdir):
    sub = workdir / "child-folder"
    sub.mkdir()
    parent, child, expected = gen_vhd.make_parent_and_child(workdir, locators=("W2ru",), w2ru_path="..\\parent.vhd")
    shutil.move(child, sub / "child.vhd")
    p = hsdk("info", sub / "child.vhd", check=False)
    assert p.returncode == 1
    assert "'..'" in p.stderr
    out = hsdk_to_raw(sub / "child.vhd", workdir / "out.raw", "--allow-external-files")
    assert out.read_bytes() == expected


def test_parent_unique_id_mismatch_is_corrupt(workdir):
    parent, child, _ = gen_vhd.make_parent_and_child(workdir)
    other = workdir / "other"
    other.mkdir()
    impostor, _, _ = gen_vhd.make_parent_and_child(other)  # same name, different unique id
    shutil.copy(impostor, parent)
    p = hsdk("info", child, check=False)
    assert p.returncode == 1
    assert "corrupt image" in p.stderr and "unique id" in p.stderr
    expected_id = uuid_text(child.read_bytes()[512 + 40:512 + 56])
    actual_id = uuid_text(parent.read_bytes()[68:84])
    assert expected_id in p.stderr and actual_id in p.stderr


def uuid_text(b):
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def test_damaged_end_footer_falls_back_to_copy(workdir):
    src = write_pattern(workdir / "src.raw", 4 * MiB + 512, seed=8)
    img = workdir / "img.vhd"
    qemu_img("convert", "-f", "raw", "-O", "vpc", src, img)
    with open(img, "r+b") as f:
        # Flip bits of a byte of the unique id (random per image): setting it to a fixed value
        # would leave the checksum matching whenever the byte already had that value.
        f.seek(-512 + 70, os.SEEK_END)
        byte = f.read(1)[0]
        f.seek(-512 + 70, os.SEEK_END)
        f.write(bytes([byte ^ 0x55]))  # checksum no longer matches
    out = hsdk_to_raw(img, workdir / "out.raw")
    assert_qemu_identical(src, "raw", out, "raw")
    assert "copy at offset 0" in hsdk_info(img)["format-specific"]["data"]["footer"]
    p = hsdk("check", "--json", img, check=False)
    assert p.returncode == 2  # corruptions
    assert json.loads(p.stdout)["corruptions"] == 1


def test_bad_footer_checksum_is_corrupt(workdir):
    src = write_pattern(workdir / "src.raw", 1 * MiB, seed=9)
    img = workdir / "img.vhd"
    qemu_img("convert", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed", src, img)
    with open(img, "r+b") as f:
        f.seek(-512 + 48, os.SEEK_END)  # current size
        f.write(b"\x01")
    p = hsdk("info", "-f", "vhd", img, check=False)
    assert p.returncode == 1
    assert "checksum mismatch" in p.stderr


def fuse_usable():
    return shutil.which("vhdimount") is not None and os.access("/dev/fuse", os.R_OK | os.W_OK) and \
        (shutil.which("fusermount") or shutil.which("fusermount3") or os.geteuid() == 0)


class mounted:
    """vhdimount IMAGE MNT for the duration of a with-block; yields the layer's file (vhdi1 is
    the bottom of the chain)."""

    def __init__(self, image, mountpoint, layer=1):
        self.image, self.mnt, self.layer = image, mountpoint, layer

    def __enter__(self):
        self.mnt.mkdir(exist_ok=True)
        subprocess.run(["vhdimount", str(self.image), str(self.mnt)], check=True, capture_output=True, timeout=60)
        return self.mnt / f"vhdi{self.layer}"

    def __exit__(self, *exc):
        for cmd in (["fusermount", "-u"], ["fusermount3", "-u"], ["umount"]):
            if shutil.which(cmd[0]) and subprocess.run(cmd + [str(self.mnt)], capture_output=True).returncode == 0:
                break
        return False


def test_fixed_vhd_is_probed_by_its_footer(workdir):
    """A fixed VHD has no signature at its start (qemu-img probes it as raw); we find its footer."""
    src = write_pattern(workdir / "src.raw", 1 * MiB, seed=10)
    img = workdir / "img.vhd"
    qemu_img("convert", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed", src, img)
    assert hsdk_info(img)["format"] == "vhd"
    assert hsdk_info(img, "-f", "vpc")["format"] == "vhd"
    # A footer with a broken checksum is not taken for a VHD: the file stays unidentified.
    with open(img, "r+b") as f:
        f.seek(-512 + 64, 2)
        f.write(b"\x00\x00\x00\x00")
    assert hsdk("info", img, check=False).returncode == 1


def test_dynamic_header_checksum_reported_by_check(workdir):
    src = write_pattern(workdir / "src.raw", 3 * MiB, seed=12)
    img = workdir / "img.vhd"
    qemu_img("convert", "-f", "raw", "-O", "vpc", src, img)
    with open(img, "r+b") as f:
        f.seek(512 + 36)
        f.write(struct.pack(">I", 0x12345678))
    assert_qemu_identical(src, "raw", hsdk_to_raw(img, workdir / "out.raw"), "raw")
    p = hsdk("check", img, check=False)
    assert p.returncode == 2  # a corruption
    assert "dynamic disk header checksum mismatch" in p.stderr and "1 errors were found" in p.stdout


def test_empty_disk(workdir):
    src = workdir / "empty.raw"
    src.write_bytes(b"")
    out = workdir / "out.vhd"
    hsdk("convert", "-f", "raw", "-O", "vhd", src, out)
    assert qemu_info(out, "vpc")["virtual-size"] == 0
    assert vhdiinfo(out)["Disk type"] == "Dynamic"
    assert json.loads(hsdk("check", "--json", out).stdout)["image-end-offset"] == os.path.getsize(out)
    # qemu-img writes a lone footer for an empty fixed VHD, which nobody can read back: refused.
    p = hsdk("convert", "-f", "raw", "-O", "vhd", "-o", "subformat=fixed", src, workdir / "fixed.vhd", check=False)
    assert p.returncode == 1 and "empty disk" in p.stderr
