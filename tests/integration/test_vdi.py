"""VDI: reading qemu-made dynamic and static images, discarded blocks, odd sizes, refusing
differencing images, and the dynamic / static writers, judged by qemu-img."""
import json
import os
import struct

import pytest

from conftest import MiB, assert_qemu_check_clean, assert_qemu_identical, hsdk, list_temporaries, qemu_img, qemu_info, \
    write_pattern

SIZES = [5 * MiB + 12345, 7 * MiB + 3 * 512]

# Header fields (little-endian) at their offsets.
IMAGE_TYPE, OFFSET_BMAP, OFFSET_DATA, DISK_SIZE, BLOCK_SIZE = 0x4C, 0x154, 0x158, 0x170, 0x178
BLOCKS_IN_IMAGE, BLOCKS_ALLOCATED, UUID_LINK, UUID_PARENT = 0x180, 0x184, 0x1A8, 0x1B8


def hsdk_info(path):
    return json.loads(hsdk("info", "--json", path).stdout)


def patch(path, offset, fmt, value):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(struct.pack(fmt, value))


def read_field(path, offset, fmt):
    with open(path, "rb") as f:
        f.seek(offset)
        return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("static", ["on", "off"])
def test_reads_qemu_vdi(workdir, size, static):
    src = write_pattern(workdir / "src.raw", size, seed=size % 83)
    img = workdir / "img.vdi"
    qemu_img("convert", "-f", "raw", "-O", "vdi", "-o", f"static={static}", src, img)
    out = workdir / "out.raw"
    hsdk("convert", "-O", "raw", img, out)
    assert_qemu_identical(img, "vdi", out, "raw")
    assert_qemu_identical(src, "raw", out, "raw")
    info = hsdk_info(img)
    assert info["format"] == "vdi"
    assert info["subformat"] == ("static" if static == "on" else "dynamic")
    assert info["virtual-size"] == qemu_info(img, "vdi")["virtual-size"]
    assert info["cluster-size"] == MiB
    report = json.loads(hsdk("check", "--json", img).stdout)
    assert report["corruptions"] == 0 and report["check-errors"] == 0, report


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("static", ["on", "off"])
def test_writes_vdi(workdir, size, static):
    src = write_pattern(workdir / "src.raw", size, seed=size % 79 + 1)
    out = workdir / "out.vdi"
    hsdk("convert", "-f", "raw", "-O", "vdi", "-o", f"static={static}", src, out)
    assert list_temporaries(workdir) == []
    assert_qemu_identical(src, "raw", out, "vdi")
    assert_qemu_check_clean(out, "vdi")
    q = qemu_info(out, "vdi")
    assert q["format"] == "vdi"
    assert q["virtual-size"] == -(-size // 512) * 512
    report = json.loads(hsdk("check", "--json", out).stdout)
    assert report["corruptions"] == 0 and report["check-errors"] == 0, report
    assert report["allocated-clusters"] == read_field(out, BLOCKS_ALLOCATED, "<I")
    blocks = -(-size // MiB)
    if static == "on":
        assert report["allocated-clusters"] == blocks
        assert os.path.getsize(out) == read_field(out, OFFSET_DATA, "<I") + blocks * MiB
    else:
        # Exactly the blocks qemu-img allocates for the same source.
        ref = workdir / "ref.vdi"
        qemu_img("convert", "-f", "raw", "-O", "vdi", src, ref)
        assert report["allocated-clusters"] == read_field(ref, BLOCKS_ALLOCATED, "<I")
    assert os.stat(out).st_blocks <= os.stat(src).st_blocks + 64  # sparse, zero runs stay holes
    assert hsdk_info(out)["subformat"] == ("static" if static == "on" else "dynamic")
    back = workdir / "back.raw"
    hsdk("convert", "-O", "raw", out, back)
    assert_qemu_identical(src, "raw", back, "raw")


def test_discarded_blocks_read_as_zeros(workdir):
    src = write_pattern(workdir / "src.raw", 4 * MiB, seed=4, hole_fraction=0.0, zero_fraction=0.0)
    img = workdir / "img.vdi"
    qemu_img("convert", "-f", "raw", "-O", "vdi", src, img)
    bmap = read_field(img, OFFSET_BMAP, "<I")
    patch(img, bmap + 4, "<I", 0xFFFFFFFE)  # block 1 discarded
    runs = json.loads(hsdk("map", "--json", img).stdout)
    discarded = [r for r in runs if r["start"] <= MiB < r["start"] + r["length"]][0]
    assert discarded["present"] and discarded["zero"] and not discarded["data"]
    out = workdir / "out.raw"
    hsdk("convert", "-O", "raw", img, out)
    assert_qemu_identical(img, "vdi", out, "raw")
    assert out.read_bytes()[MiB:2 * MiB] == bytes(MiB)
    assert hsdk_info(img)["format-specific"]["data"]["discarded-blocks"] == 1


def test_odd_disk_size_rounds_up_like_qemu(workdir):
    src = write_pattern(workdir / "src.raw", 2 * MiB, seed=5)
    img = workdir / "img.vdi"
    qemu_img("convert", "-f", "raw", "-O", "vdi", src, img)
    patch(img, DISK_SIZE, "<Q", 2 * MiB - 700)  # as VBoxManage convertfromraw can leave it
    assert hsdk_info(img)["virtual-size"] == qemu_info(img, "vdi")["virtual-size"] == 2 * MiB - 512


@pytest.mark.parametrize("field,fmt,value", [
    (IMAGE_TYPE, "<I", 4),
    (UUID_LINK, "<Q", 0x1234),
    (UUID_PARENT, "<Q", 0x5678),
])
def test_differencing_vdi_is_unsupported(workdir, field, fmt, value):
    src = write_pattern(workdir / "src.raw", 1 * MiB, seed=6)
    img = workdir / "img.vdi"
    qemu_img("convert", "-f", "raw", "-O", "vdi", src, img)
    patch(img, field, fmt, value)
    p = hsdk("info", img, check=False)
    assert p.returncode == 1
    assert "unsupported: differencing VDI" in p.stderr


def test_check_reports_qemu_rule_violations(workdir):
    src = write_pattern(workdir / "src.raw", 4 * MiB, seed=7, hole_fraction=0.0, zero_fraction=0.0)
    img = workdir / "img.vdi"
    qemu_img("convert", "-f", "raw", "-O", "vdi", src, img)
    bmap = read_field(img, OFFSET_BMAP, "<I")
    patch(img, bmap + 8, "<I", 1)  # block 2 now shares data block 1 with block 1
    p = hsdk("check", "--json", img, check=False)
    assert p.returncode == 2  # corruptions
    report = json.loads(p.stdout)
    assert report["corruptions"] >= 1
    assert any("used by block map entries 1 and 2" in m for m in report["messages"])
    assert qemu_img("check", "-f", "vdi", img, check=False).returncode != 0  # qemu agrees it is corrupt


def test_bad_option_is_refused(workdir):
    src = write_pattern(workdir / "src.raw", 1 * MiB, seed=8)
    for options in ("cluster_size=2M", "static=sometimes"):
        p = hsdk("convert", "-f", "raw", "-O", "vdi", "-o", options, src, workdir / "out.vdi", check=False)
        assert p.returncode == 1
        assert options.split("=")[0] in p.stderr
    assert not (workdir / "out.vdi").exists()


def test_empty_disk(workdir):
    src = workdir / "empty.raw"
    src.write_bytes(b"")
    for static in ("on", "off"):
        out = workdir / f"out-{static}.vdi"
        hsdk("convert", "-f", "raw", "-O", "vdi", "-o", f"static={static}", src, out)
        assert_qemu_check_clean(out, "vdi")
        assert qemu_info(out, "vdi")["virtual-size"] == 0
