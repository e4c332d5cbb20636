"""VHDX: reading qemu-img's images and our own generated variants (dirty log, differencing, 4K
sectors), writing images that qemu-img, libvhdi and we agree on."""
import hashlib
import json
import os
import shutil
import subprocess

import pytest

import gen_vhdx
from conftest import (MiB, assert_qemu_check_clean, assert_qemu_identical, hsdk, qemu_img, qemu_info, run,
                      write_pattern)

KiB = 1024


def sha256(path):
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def hsdk_info(path, *extra):
    return json.loads(hsdk("info", "--json", *extra, path).stdout)


def read_raw(path):
    with open(path, "rb") as fh:
        return fh.read()


def assert_content(raw_path, expected):
    data = read_raw(raw_path)
    assert len(data) == len(expected)
    if data != expected:
        first = next(i for i in range(len(data)) if data[i] != expected[i])
        pytest.fail(f"content differs first at offset {first:#x}")


def vhdimount_bytes(image, mountpoint):
    """The disk as libvhdi's vhdimount shows it (the top of the chain: vhdimount exposes one vhdiN
    per layer, the parent first), or None when this machine has no FUSE."""
    if not os.path.exists("/dev/fuse") or shutil.which("vhdimount") is None:
        return None
    os.makedirs(mountpoint, exist_ok=True)
    run(["vhdimount", image, mountpoint], timeout=60)
    try:
        layers = sorted(os.listdir(mountpoint), key=lambda n: int(n[4:]))
        return read_raw(os.path.join(mountpoint, layers[-1]))
    finally:
        subprocess.run(["umount", str(mountpoint)], capture_output=True, timeout=60)


def vhdiinfo(path):
    return run(["vhdiinfo", path]).stdout


# ---- reading images qemu-img made ------------------------------------------------------------

@pytest.mark.parametrize("subformat", ["dynamic", "fixed"])
@pytest.mark.parametrize("block_size", ["1M", "8M", "32M"])
def test_reads_qemu_images(workdir, subformat, block_size):
    raw = write_pattern(workdir / "src.raw", 11 * MiB + 7 * 512, seed={"1M": 1, "8M": 2, "32M": 3}[block_size] + (10 if subformat == "fixed" else 0))
    img = workdir / "q.vhdx"
    qemu_img("convert", "-f", "raw", "-O", "vhdx", "-o", f"subformat={subformat},block_size={block_size}", raw, img)
    out = workdir / "out.raw"
    hsdk("convert", "-O", "raw", img, out)
    assert_qemu_identical(raw, "raw", out, "raw")
    assert_qemu_identical(img, "vhdx", out, "raw")
    info = hsdk_info(img)
    assert info["format"] == "vhdx"
    assert info["subformat"] == subformat
    assert info["virtual-size"] == qemu_info(img)["virtual-size"]
    assert info["cluster-size"] == int(block_size[:-1]) * MiB
    assert info["dirty-flag"] is False
    assert info["format-specific"]["data"]["leave-blocks-allocated"] == (subformat == "fixed")
    hsdk("check", img)
    hsdk("compare", "-F", "raw", img, raw)


def test_map_of_a_dynamic_image_shows_holes(workdir):
    raw = workdir / "src.raw"
    with open(raw, "wb") as fh:
        fh.truncate(6 * MiB)
        fh.seek(2 * MiB + 100)
        fh.write(b"x" * 5000)
    img = workdir / "q.vhdx"
    qemu_img("convert", "-f", "raw", "-O", "vhdx", "-o", "block_size=1M", raw, img)
    runs = json.loads(hsdk("map", "--json", img).stdout)
    data = [r for r in runs if r["data"]]
    assert len(data) == 1 and data[0]["start"] == 2 * MiB and data[0]["length"] == MiB


# ---- writing ---------------------------------------------------------------------------------

@pytest.mark.parametrize("options", [
    "subformat=dynamic",
    "subformat=dynamic,block_size=1M",
    "subformat=dynamic,block_size=32M",
    "subformat=fixed,block_size=1M",
    "subformat=fixed,block_size=8M",
    "",
])
def test_writes_images_qemu_accepts(workdir, options):
    raw = write_pattern(workdir / "src.raw", 13 * MiB + 12345, seed=len(options) + 40)
    img = workdir / "out.vhdx"
    args = ["convert", "-f", "raw", "-O", "vhdx"] + (["-o", options] if options else []) + [raw, img]
    hsdk(*args)
    assert_qemu_check_clean(img, "vhdx")
    assert_qemu_identical(raw, "raw", img, "vhdx")
    q = qemu_info(img)
    assert q["format"] == "vhdx"
    assert q["virtual-size"] == -(-(13 * MiB + 12345) // 512) * 512  # rounded up to whole sectors
    assert "Format\t\t\t: VHDX" in vhdiinfo(img)
    fixed = "fixed" in options
    assert ("Disk type\t\t: Fixed" if fixed else "Disk type\t\t: Dynamic") in vhdiinfo(img)
    hsdk("check", img)
    # Zero stretches stay holes in the file even inside allocated blocks.
    assert os.stat(img).st_blocks * 512 < 13 * MiB


def test_dynamic_output_allocates_only_written_blocks(workdir):
    raw = workdir / "src.raw"
    with open(raw, "wb") as fh:
        fh.truncate(40 * MiB)
        fh.seek(33 * MiB + 5)
        fh.write(b"data" * 100)
    img = workdir / "out.vhdx"
    hsdk("convert", "-f", "raw", "-O", "vhdx", "-o", "block_size=1M", raw, img)
    report = json.loads(hsdk("check", "--json", img).stdout)
    assert report["allocated-clusters"] == 1 and report["total-clusters"] == 40
    assert_qemu_identical(raw, "raw", img, "vhdx")
    assert_qemu_check_clean(img, "vhdx")


def test_writes_4k_sector_images_libvhdi_reads(workdir):
    raw = write_pattern(workdir / "src.raw", 9 * MiB + 3000, seed=77)
    for sub in ("dynamic", "fixed"):
        img = workdir / f"{sub}.vhdx"
        hsdk("convert", "-f", "raw", "-O", "vhdx", "-o", f"subformat={sub},logical_sector_size=4096,block_size=1M",
             raw, img)
        info = vhdiinfo(img)
        assert "Bytes per sector\t: 4096 bytes" in info
        size = -(-(9 * MiB + 3000) // 4096) * 4096
        assert f"({size} bytes)" in info
        back = workdir / f"{sub}.raw"
        hsdk("convert", "-O", "raw", img, back)
        assert_qemu_identical(raw, "raw", back, "raw")
        mounted = vhdimount_bytes(img, workdir / f"mnt-{sub}")
        if mounted is not None:
            assert mounted == read_raw(raw).ljust(size, b"\0")
        # qemu 7.2 refuses logical sectors other than 512 ("Operation not supported").
        p = qemu_img("info", img, check=False)
        assert p.returncode != 0


def test_writer_options_are_validated(workdir):
    raw = write_pattern(workdir / "src.raw", 2 * MiB, seed=5)
    for bad in ("block_size=3M", "block_size=512K", "block_size=512M", "logical_sector_size=1024",
                "physical_sector_size=2048", "subformat=streamOptimized", "log_size=1M"):
        p = hsdk("convert", "-f", "raw", "-O", "vhdx", "-o", bad, raw, workdir / "x.vhdx", check=False)
        assert p.returncode == 1, bad
        assert bad.split("=")[0] in p.stderr, p.stderr
        assert not (workdir / "x.vhdx").exists()
    p = hsdk("convert", "-c", "-f", "raw", "-O", "vhdx", raw, workdir / "x.vhdx", check=False)
    assert p.returncode == 1 and "compression" in p.stderr


def test_default_block_size_follows_qemu(workdir):
    raw = workdir / "big.raw"
    with open(raw, "wb") as fh:
        fh.truncate(2 * 1024 * MiB)
    img = workdir / "big.vhdx"
    hsdk("convert", "-f", "raw", "-O", "vhdx", raw, img)
    assert hsdk_info(img)["cluster-size"] == 16 * MiB
    assert_qemu_check_clean(img, "vhdx")


# ---- dirty log -------------------------------------------------------------------------------

def test_dirty_log_is_replayed_in_memory(workdir):
    img = workdir / "dirty.vhdx"
    expected, new_id = gen_vhdx.dirty_log_image(img)
    before = sha256(img)
    info = hsdk_info(img)
    assert info["dirty-flag"] is True
    data = info["format-specific"]["data"]
    assert data["log-state"] == "log replayed in memory: 2 entries"
    assert data["virtual-disk-id"] == str(new_id)  # metadata changed by the log
    out = workdir / "out.raw"
    hsdk("convert", "-O", "raw", img, out)
    assert_content(out, expected)
    p = hsdk("check", img)
    assert "log entries are not yet applied" in p.stderr  # what check finds goes to stderr, as qemu-img prints it
    assert "No errors were found" in p.stdout
    assert sha256(img) == before  # the source is never written

    # qemu-img replays the log on a writable copy; it must agree with what we showed.
    copy = workdir / "copy.vhdx"
    shutil.copy(img, copy)
    qemu_img("check", "-r", "all", copy, check=False)
    assert_qemu_identical(copy, "vhdx", out, "raw")


def test_qemu_refuses_dirty_log_read_only_but_we_read_it(workdir):
    img = workdir / "dirty.vhdx"
    gen_vhdx.dirty_log_image(img)
    p = qemu_img("convert", "-O", "raw", img, workdir / "q.raw", check=False)
    assert p.returncode != 0 and "log" in p.stderr
    hsdk("convert", "-O", "raw", img, workdir / "ours.raw")


# ---- differencing ----------------------------------------------------------------------------

def make_parent(workdir, size=7 * MiB + 4096):
    raw = write_pattern(workdir / "parent.raw", size, seed=99, hole_fraction=0.1, zero_fraction=0.05)
    parent = workdir / "parent.vhdx"
    qemu_img("convert", "-f", "raw", "-O", "vhdx", "-o", "block_size=1M", raw, parent)
    return parent, read_raw(raw)


def test_differencing_child_over_qemu_parent(workdir):
    parent, parent_content = make_parent(workdir)
    child = workdir / "child.vhdx"
    expected = gen_vhdx.differencing_image(child, parent, parent_content)
    top, below = hsdk_info(child, "--backing-chain")
    info = dict(top, **{"backing-image": below})
    assert info["subformat"] == "differencing"
    assert info["backing-filename"] == ".\\parent.vhdx"
    assert info["backing-filename-format"] == "vhdx"
    assert info["format-specific"]["data"]["parent-locator"]["absolute_win32_path"] == "C:\\vms\\parent.vhdx"
    assert info["backing-image"]["format"] == "vhdx"
    out = workdir / "out.raw"
    hsdk("convert", "-O", "raw", child, out)
    assert_content(out, expected)
    hsdk("check", child)
    # The child alone: unallocated blocks read as zeros, the chain is not followed.
    runs = json.loads(hsdk("map", "--json", child).stdout)
    assert any(r["depth"] == 1 and r["data"] for r in runs)  # parent data shows through
    assert any(r["depth"] == 0 and r["zero"] and not r["data"] for r in runs)  # ZERO blocks hide it
    assert "Disk type\t\t: Differential" in vhdiinfo(child)
    mounted = vhdimount_bytes(child, workdir / "mnt")
    if mounted is not None:
        # libvhdi goes by the sector bitmap alone: it agrees with us on fully and partially present
        # blocks and on blocks that show the parent, but not on ZERO and UNMAPPED blocks (2 and 3),
        # which the spec says read as zeros and libvhdi shows the parent through.
        block = 2 * MiB
        assert mounted[:2 * block] == expected[:2 * block]
        assert mounted[2 * block:4 * block] == parent_content[2 * block:4 * block]


def test_differencing_4k_sectors(workdir):
    parent, parent_content = make_parent(workdir, size=6 * MiB)
    child = workdir / "child.vhdx"
    # The parent has 512-byte sectors; a 4K child of it is still a valid chain for us.
    expected = gen_vhdx.differencing_image(child, parent, parent_content, block_size=1 * MiB, lss=4096)
    out = workdir / "out.raw"
    hsdk("convert", "-O", "raw", child, out)
    assert_content(out, expected)


def test_parent_linkage_mismatch_is_corrupt(workdir):
    parent, parent_content = make_parent(workdir)
    child = workdir / "child.vhdx"
    import uuid
    wrong = uuid.UUID("aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee")
    gen_vhdx.differencing_image(child, parent, parent_content, linkage=wrong)
    p = hsdk("convert", "-O", "raw", child, workdir / "out.raw", check=False)
    assert p.returncode == 1
    assert "corrupt image" in p.stderr
    assert str(wrong) in p.stderr
    assert str(gen_vhdx.read_header_guids(parent)) in p.stderr
    assert not (workdir / "out.raw").exists()


def test_parent_outside_the_folder_is_refused(workdir):
    sub = workdir / "sub"
    sub.mkdir()
    parent, parent_content = make_parent(workdir)
    child = sub / "child.vhdx"
    gen_vhdx.differencing_image(child, parent, parent_content, relative_path="..\\parent.vhdx")
    p = hsdk("info", child, check=False)
    assert p.returncode == 1 and ".." in p.stderr
    hsdk("info", "--allow-external-files", child)
    gen_vhdx.differencing_image(child, parent, parent_content, relative_path=str(parent))
    p = hsdk("info", child, check=False)
    assert p.returncode == 1 and "absolute path" in p.stderr
    expected = gen_vhdx.differencing_image(child, parent, parent_content, relative_path=str(parent))
    out = workdir / "out.raw"
    hsdk("convert", "--allow-external-files", "-O", "raw", child, out)
    assert_content(out, expected)


def test_missing_parent_is_reported(workdir):
    parent, parent_content = make_parent(workdir)
    child = workdir / "child.vhdx"
    gen_vhdx.differencing_image(child, parent, parent_content, relative_path="gone.vhdx")
    p = hsdk("convert", "-O", "raw", child, workdir / "out.raw", check=False)
    assert p.returncode == 1 and "gone.vhdx" in p.stderr


# ---- 4K logical sectors ----------------------------------------------------------------------

def test_reads_4k_sector_image(workdir):
    img = workdir / "4k.vhdx"
    expected = gen_vhdx.four_k_image(img)
    info = hsdk_info(img)
    assert info["virtual-size"] == len(expected)
    assert info["format-specific"]["data"]["logical-sector-size"] == 4096
    out = workdir / "out.raw"
    hsdk("convert", "-O", "raw", img, out)
    assert_content(out, expected)
    assert "Bytes per sector\t: 4096 bytes" in vhdiinfo(img)
    mounted = vhdimount_bytes(img, workdir / "mnt")
    if mounted is not None:
        assert mounted == expected
    # And back to VHDX with 4K sectors, through our writer.
    again = workdir / "again.vhdx"
    hsdk("convert", "-O", "vhdx", "-o", "logical_sector_size=4096", img, again)
    hsdk("compare", img, again)
