"""VMDK: reading what qemu-img makes and what gen_vmdk builds (descriptors of every shape, COWD,
seSparse, damaged streams), parent chains, and the three writers judged by qemu-img and libvmdk."""
import json
import os
import random
import shutil
import struct

import pytest

import gen_vmdk as gen
from conftest import (MiB, assert_qemu_check_clean, assert_qemu_identical, hsdk, list_temporaries, qemu_img, qemu_info, run,
                      write_pattern)

GiB = 1 << 30
# Not a multiple of the 64 KiB grain, nor of 4 KiB; qemu rounds the disk up to whole sectors.
ODD_SIZE = 5 * MiB + 7 * 512 + 100


def raw_bytes(size, seed, regions=6):
    """Deterministic disk contents with a few data regions and zeros elsewhere."""
    rng = random.Random(seed)
    data = bytearray(size)
    for _ in range(regions):
        off = rng.randrange(0, size - 1)
        n = min(size - off, rng.choice([700, 4096, 70000, 200000]))
        data[off:off + n] = rng.randbytes(n)
    data[:512] = rng.randbytes(512)
    data[-1000:] = rng.randbytes(1000)
    return bytes(data)


def hsdk_raw(img, out, *extra):
    hsdk("convert", *extra, "-O", "raw", img, out)
    with open(out, "rb") as f:
        return f.read()


def info_json(img, *extra):
    return json.loads(hsdk("info", "--json", *extra, img).stdout)


def check_json(img):
    p = hsdk("check", "--json", img, check=False)
    return json.loads(p.stdout), p.returncode


# ---- images made by qemu-img ---------------------------------------------------------------------

@pytest.mark.parametrize("subformat", ["monolithicSparse", "monolithicFlat", "streamOptimized"])
def test_reads_qemu_images(workdir, subformat):
    src = write_pattern(workdir / "src.raw", ODD_SIZE, seed=11)
    img = workdir / "img.vmdk"
    qemu_img("convert", "-f", "raw", "-O", "vmdk", "-o", f"subformat={subformat}", src, img)
    out = workdir / "out.raw"
    hsdk("convert", "-O", "raw", img, out)
    assert_qemu_identical(src, "raw", out, "raw")
    assert_qemu_identical(img, "vmdk", out, "raw")
    info = info_json(img)
    assert info["format"] == "vmdk"
    assert info["subformat"] == subformat
    assert info["format-specific"]["data"]["create-type"] == subformat
    if subformat != "monolithicFlat":
        assert info["cluster-size"] == 65536
    assert info["format-specific"]["data"]["extents"][0]["virtual-size"] == info["virtual-size"]
    hsdk("check", img)


@pytest.mark.parametrize("subformat", ["twoGbMaxExtentSparse", "twoGbMaxExtentFlat"])
def test_reads_qemu_split_images(workdir, subformat):
    # qemu splits at a fixed 2 GiB, so the disk is a little larger than that, sparse, with data on
    # both sides of the boundary and in the short second extent.
    size = 2 * GiB + 3 * MiB + 5 * 512
    src = workdir / "src.raw"
    rng = random.Random(3)
    with open(src, "wb") as f:
        f.truncate(size)
        for off in (0, 2 * GiB - 100000, 2 * GiB + MiB + 17, size - 4096):
            f.seek(off)
            f.write(rng.randbytes(min(200000, size - off)))
    img = workdir / "split.vmdk"
    qemu_img("convert", "-f", "raw", "-O", "vmdk", "-o", f"subformat={subformat}", src, img)
    info = info_json(img)
    extents = info["format-specific"]["data"]["extents"]
    assert len(extents) == 2
    assert [e["virtual-size"] for e in extents] == [2 * GiB, size - 2 * GiB]
    assert len(info["files"]) == 3
    out = workdir / "out.raw"
    hsdk("convert", "-O", "raw", img, out)
    assert_qemu_identical(src, "raw", out, "raw")
    hsdk("check", img)


def test_parent_chain_with_zeroed_grains(workdir):
    base_data = bytearray(raw_bytes(4 * MiB, seed=21))
    base_data[2 * MiB:2 * MiB + 256 * 1024] = random.Random(5).randbytes(256 * 1024)
    (workdir / "base.raw").write_bytes(base_data)
    qemu_img("convert", "-f", "raw", "-O", "vmdk", workdir / "base.raw", workdir / "base.vmdk")
    # zeroed_grain: whole-grain zero writes become "zero" grain table entries that hide the parent.
    run(["qemu-img", "create", "-q", "-f", "vmdk", "-o", "zeroed_grain=on", "-b", "base.vmdk", "-F", "vmdk", "child.vmdk"],
        cwd=workdir)
    if shutil.which("qemu-io"):
        run(["qemu-io", "-f", "vmdk", "-c", "write -P 0x5a 1M 200k", "-c", "write -z 2M 128k", "-c", "write -P 7 3800k 5k",
             "child.vmdk"], cwd=workdir)
    else:
        modified = bytearray(base_data)
        modified[MiB:MiB + 200 * 1024] = b"\x5a" * (200 * 1024)
        modified[2 * MiB:2 * MiB + 128 * 1024] = bytes(128 * 1024)
        (workdir / "mod.raw").write_bytes(modified)
        os.unlink(workdir / "child.vmdk")
        run(["qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-B", "base.vmdk", "-F", "vmdk", "mod.raw", "child.vmdk"], cwd=workdir)
    ref = workdir / "ref.raw"
    qemu_img("convert", "-O", "raw", workdir / "child.vmdk", ref)
    out = workdir / "out.raw"
    hsdk("convert", "-O", "raw", workdir / "child.vmdk", out)
    assert_qemu_identical(ref, "raw", out, "raw")
    assert out.read_bytes()[2 * MiB:2 * MiB + 128 * 1024] == bytes(128 * 1024)
    top, below = info_json(workdir / "child.vmdk", "--backing-chain")
    info = dict(top, **{"backing-image": below})
    assert info["backing-filename"] == "base.vmdk"
    assert info["backing-image"]["format"] == "vmdk"
    assert info["format-specific"]["data"]["parent-cid"] == info["backing-image"]["format-specific"]["data"]["cid"]

    # A parent whose content changed (new CID) no longer matches the delta.
    # qemu writes the CID without leading zeros: replace it by another of the same length.
    raw = bytearray((workdir / "base.vmdk").read_bytes())
    at = raw.index(b"\nCID=") + 5
    end = raw.index(b"\n", at)
    old = int(raw[at:end], 16)
    new = old ^ 0x1
    raw[at:end] = f"{new:x}".rjust(end - at, "0").encode()
    (workdir / "base.vmdk").write_bytes(raw)
    p = hsdk("info", workdir / "child.vmdk", check=False)
    assert p.returncode == 1
    assert "corrupt image" in p.stderr and f"{old:08x}" in p.stderr and f"{new:08x}" in p.stderr


# ---- hand-written descriptors ----------------------------------------------------------------------

@pytest.mark.parametrize("crlf", [False, True])
def test_descriptor_shapes(workdir, crlf):
    one = raw_bytes(MiB, seed=31)
    two = raw_bytes(512 * 1024, seed=32)
    (workdir / "part one.bin").write_bytes(one)
    # The RDONLY flat extent starts 4 sectors into its file.
    (workdir / "part two.bin").write_bytes(b"\xee" * 2048 + two)
    sparse_data = raw_bytes(768 * 1024, seed=33)
    (workdir / "s.raw").write_bytes(sparse_data)
    qemu_img("convert", "-f", "raw", "-O", "vmdk", workdir / "s.raw", workdir / "third extent.vmdk")
    text = gen.descriptor("twoGbMaxExtentSparse", [
        '# a comment between extents',
        f'RW {len(one) // 512} FLAT "part one.bin" 0',
        f'RDONLY {len(two) // 512} FLAT "part two.bin" 4',
        'RW 1024 ZERO',
        f'RW {len(sparse_data) // 512} SPARSE "third extent.vmdk"',
    ], crlf=crlf)
    assert (b"\r\n" in text) == crlf
    (workdir / "d.vmdk").write_bytes(text)
    out = hsdk_raw(workdir / "d.vmdk", workdir / "out.raw")
    assert out == one + two + bytes(512 * 1024) + sparse_data
    info = info_json(workdir / "d.vmdk")
    extents = info["format-specific"]["data"]["extents"]
    assert [e["access"] for e in extents] == ["RW", "RDONLY", "RW", "RW"]
    assert [e["format"] for e in extents] == ["FLAT", "FLAT", "ZERO", "SPARSE"]
    assert info["virtual-size"] == len(out)
    # The ZERO extent maps as zeros, not as data.
    runs = json.loads(hsdk("map", "--json", workdir / "d.vmdk").stdout)
    zero_start = len(one) + len(two)
    assert any(r["start"] <= zero_start and r["start"] + r["length"] >= zero_start + 512 * 1024 and not r["data"] for r in runs)
    hsdk("check", workdir / "d.vmdk")


def test_descriptor_crlf_spaces_matches_qemu(workdir):
    # qemu reads only RW extents; with those, both readers must agree.
    a, b = raw_bytes(MiB, seed=41), raw_bytes(MiB, seed=42)
    (workdir / "a b.bin").write_bytes(a)
    (workdir / "c d.bin").write_bytes(b)
    text = gen.descriptor("monolithicFlat", ['RW 2048 FLAT "a b.bin" 0', 'RW 2048 FLAT "c d.bin" 0'], crlf=True)
    (workdir / "x.vmdk").write_bytes(text)
    out = workdir / "out.raw"
    hsdk("convert", "-O", "raw", workdir / "x.vmdk", out)
    assert_qemu_identical(workdir / "x.vmdk", "vmdk", out, "raw")
    assert out.read_bytes() == a + b


def test_noaccess_extent_fails_on_read(workdir):
    (workdir / "a.bin").write_bytes(raw_bytes(MiB, seed=51))
    text = gen.descriptor("monolithicFlat", ['RW 2048 FLAT "a.bin" 0', 'NOACCESS 2048 FLAT "missing.bin" 0'])
    (workdir / "n.vmdk").write_bytes(text)
    info = info_json(workdir / "n.vmdk")
    assert info["virtual-size"] == 2 * MiB
    p = hsdk("convert", "-O", "raw", workdir / "n.vmdk", workdir / "out.raw", check=False)
    assert p.returncode == 1
    assert "NOACCESS" in p.stderr
    assert not (workdir / "out.raw").exists()


def test_extent_paths_outside_the_folder_are_refused(workdir):
    inner = workdir / "vm"
    inner.mkdir()
    (workdir / "outside.bin").write_bytes(raw_bytes(MiB, seed=61))
    for name, ref in (("dotdot.vmdk", "../outside.bin"), ("abs.vmdk", str(workdir / "outside.bin"))):
        (inner / name).write_bytes(gen.descriptor("monolithicFlat", [f'RW 2048 FLAT "{ref}" 0']))
        p = hsdk("info", inner / name, check=False)
        assert p.returncode == 1
        assert "refusing" in p.stderr
        hsdk("info", "--allow-external-files", inner / name)


def test_raw_device_mappings_are_refused(workdir):
    (workdir / "rdm.vmdk").write_bytes(gen.descriptor("vmfsRawDeviceMap", ['RW 2048 VMFSRDM "disk-rdm.vmdk"']))
    p = hsdk("info", workdir / "rdm.vmdk", check=False)
    assert p.returncode == 1
    assert "raw device" in p.stderr
    (workdir / "rdm2.vmdk").write_bytes(gen.descriptor("vmfs", ['RW 2048 VMFSRDM "disk-rdm.vmdk"']))
    p = hsdk("info", workdir / "rdm2.vmdk", check=False)
    assert "raw device" in p.stderr


# ---- streams ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", ["normal", "stale-header", "no-gd"])
def test_stream_variants(workdir, variant):
    # 3 MiB + 7 sectors: the last grain is short.
    data = raw_bytes(3 * MiB + 7 * 512, seed=71, regions=10)
    img = workdir / "s.vmdk"
    gen.write_stream(img, data, variant, name="s.vmdk")
    assert hsdk_raw(img, workdir / "out.raw") == data
    report, rc = check_json(img)
    if variant == "normal":
        assert rc == 0 and report["corruptions"] == 0
        (workdir / "exp.raw").write_bytes(data)
        assert_qemu_identical(img, "vmdk", workdir / "exp.raw", "raw")
    else:
        # Readable, but the damage is reported.
        assert rc == 2 and report["corruptions"] >= 1  # qemu-img check's exit status for corruptions
        assert any(("footer" in m) or ("markers" in m) for m in report["messages"])
    assert info_json(img)["subformat"] == "streamOptimized"


# ---- COWD and seSparse ---------------------------------------------------------------------------------

def flat_base(workdir, data, name="base"):
    (workdir / f"{name}-flat.bin").write_bytes(data)
    (workdir / f"{name}.vmdk").write_bytes(
        gen.descriptor("monolithicFlat", [f'RW {len(data) // 512} FLAT "{name}-flat.bin" 0'], cid=0xB0B0B0B0))


def test_vmfs_sparse_cowd(workdir):
    data = raw_bytes(3 * MiB + 5 * 512, seed=81, regions=8)
    gen.write_cowd(workdir / "c-delta.vmdk", data)
    (workdir / "c.vmdk").write_bytes(gen.descriptor("vmfsSparse", [f'RW {len(data) // 512} VMFSSPARSE "c-delta.vmdk"']))
    (workdir / "exp.raw").write_bytes(data)
    assert hsdk_raw(workdir / "c.vmdk", workdir / "out.raw") == data
    # qemu reads COWD extents too: both must see the same disk.
    qemu_img("convert", "-O", "raw", workdir / "c.vmdk", workdir / "q.raw")
    assert (workdir / "q.raw").read_bytes() == data
    run(["vmdkinfo", workdir / "c.vmdk"])
    info = info_json(workdir / "c.vmdk")
    assert info["subformat"] == "vmfsSparse"
    assert info["format-specific"]["data"]["extents"][0]["format"] == "VMFSSPARSE"
    hsdk("check", workdir / "c.vmdk")


def test_vmfs_sparse_delta_over_parent(workdir):
    base = raw_bytes(2 * MiB, seed=82, regions=10)
    base = bytes(b if b else 0xAB for b in base)  # no zeros: holes of the delta must show it
    flat_base(workdir, base)
    delta = bytearray(len(base))
    delta[100 * 1024:160 * 1024] = random.Random(9).randbytes(60 * 1024)
    gen.write_cowd(workdir / "d-delta.vmdk", bytes(delta))
    (workdir / "d.vmdk").write_bytes(gen.descriptor("vmfsSparse", [f'RW {len(base) // 512} VMFSSPARSE "d-delta.vmdk"'],
                                                    parent_cid=0xB0B0B0B0, parent_hint="base.vmdk"))
    expected = bytearray(base)
    expected[100 * 1024:160 * 1024] = delta[100 * 1024:160 * 1024]
    assert hsdk_raw(workdir / "d.vmdk", workdir / "out.raw") == expected
    qemu_img("convert", "-O", "raw", workdir / "d.vmdk", workdir / "q.raw")
    assert (workdir / "q.raw").read_bytes() == expected


def test_sesparse_delta_over_parent(workdir):
    grain = 4096
    base = bytes(b if b else 0xCD for b in raw_bytes(3 * MiB, seed=91, regions=10))
    flat_base(workdir, base)
    delta = bytearray(len(base))
    rng = random.Random(92)
    for g in (0, 1, 7, 100, 101, 102, 500, 767):
        delta[g * grain:(g + 1) * grain] = rng.randbytes(grain)
    zero, unmapped = {3, 200}, {4, 300}
    # Slot numbers above 4096 exercise the split encoding of allocated entries.
    gen.write_sesparse(workdir / "s-sesparse.vmdk", bytes(delta), zero_grains=zero, unmapped_grains=unmapped, slot_base=5000)
    (workdir / "s.vmdk").write_bytes(gen.descriptor("seSparse", [f'RW {len(base) // 512} SESPARSE "s-sesparse.vmdk"'],
                                                    parent_cid=0xB0B0B0B0, parent_hint="base.vmdk"))
    expected = bytearray(base)
    for g in range(len(base) // grain):
        if g in zero or g in unmapped:
            expected[g * grain:(g + 1) * grain] = bytes(grain)
        elif any(delta[g * grain:(g + 1) * grain]):
            expected[g * grain:(g + 1) * grain] = delta[g * grain:(g + 1) * grain]
    assert hsdk_raw(workdir / "s.vmdk", workdir / "out.raw") == expected
    qemu_img("convert", "-O", "raw", workdir / "s.vmdk", workdir / "q.raw")
    assert (workdir / "q.raw").read_bytes() == expected
    info = info_json(workdir / "s.vmdk")
    assert info["subformat"] == "seSparse"
    assert info["format-specific"]["data"]["extents"][0]["cluster-size"] == 4096
    hsdk("check", workdir / "s.vmdk")


# ---- writers ---------------------------------------------------------------------------------------------

def header_of(path):
    with open(path, "rb") as f:
        h = f.read(512)
    magic, version, flags, capacity, grain, doff, dsize, gtes, rgd, gd, overhead = struct.unpack_from("<4sIIQQQQIQQQ", h)
    return dict(magic=magic, version=version, flags=flags, capacity=capacity, grain=grain, gd=gd, rgd=rgd, overhead=overhead,
                compress=struct.unpack_from("<H", h, 77)[0])


@pytest.mark.parametrize("subformat", ["monolithicSparse", "streamOptimized", "monolithicFlat"])
def test_writer(workdir, subformat):
    src = write_pattern(workdir / "src.raw", 6 * MiB + 3 * 512 + 77, seed=101)
    dst = workdir / "out.vmdk"
    hsdk("convert", "-f", "raw", "-O", "vmdk", "-o", f"subformat={subformat}", src, dst)
    assert list_temporaries(workdir) == []
    assert_qemu_check_clean(dst, "vmdk")
    assert_qemu_identical(src, "raw", dst, "vmdk")
    info = qemu_info(dst, "vmdk")
    assert info["format"] == "vmdk"
    assert info["format-specific"]["data"]["create-type"] == subformat
    run(["vmdkinfo", dst])
    # We read our own output back.
    hsdk("compare", "-f", "raw", "-F", "vmdk", src, dst)
    report, rc = check_json(dst)
    assert rc == 0 and report["corruptions"] == 0, report
    back = workdir / "back.raw"
    hsdk("convert", "-O", "raw", dst, back)
    assert_qemu_identical(src, "raw", back, "raw")

    if subformat == "streamOptimized":
        h = header_of(dst)
        assert (h["magic"], h["version"], h["flags"], h["gd"], h["compress"]) == (b"KDMV", 3, 0x30001, 0xFFFFFFFFFFFFFFFF, 1)
        raw = dst.read_bytes()
        assert raw[-512:] == bytes(512)  # end-of-stream marker
        footer_marker = struct.unpack_from("<QII", raw, len(raw) - 1536)
        assert footer_marker == (1, 0, 3)
        assert raw[-1024:-1020] == b"KDMV"
        assert os.path.getsize(dst) < os.path.getsize(src)
    elif subformat == "monolithicSparse":
        h = header_of(dst)
        assert (h["version"], h["flags"], h["compress"]) == (1, 3, 0)
    else:
        flat = workdir / "out-flat.vmdk"
        assert flat.exists()
        text = dst.read_text()
        assert 'FLAT "out-flat.vmdk" 0' in text
        assert os.path.getsize(flat) == (os.path.getsize(src) + 511) // 512 * 512
        assert sorted(info_json(dst)["files"]) == sorted([str(dst), str(workdir) + "/out-flat.vmdk"])


@pytest.mark.parametrize("subformat", ["monolithicSparse", "streamOptimized", "monolithicFlat"])
def test_writer_empty_disk(workdir, subformat):
    src = workdir / "zero.raw"
    with open(src, "wb") as f:
        f.truncate(3 * MiB)
    dst = workdir / "z.vmdk"
    hsdk("convert", "-f", "raw", "-O", "vmdk", "-o", f"subformat={subformat}", src, dst)
    assert_qemu_check_clean(dst, "vmdk")
    assert_qemu_identical(src, "raw", dst, "vmdk")
    hsdk("check", dst)


def test_writer_options(workdir):
    src = write_pattern(workdir / "src.raw", 2 * MiB, seed=111)
    # -c alone means streamOptimized.
    hsdk("convert", "-f", "raw", "-O", "vmdk", "-c", src, workdir / "c.vmdk")
    assert qemu_info(workdir / "c.vmdk")["format-specific"]["data"]["create-type"] == "streamOptimized"
    assert header_of(workdir / "c.vmdk")["compress"] == 1
    # IDE geometry, hardware version and compression levels land where VMware looks for them.
    hsdk("convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized,adapter_type=ide,hwversion=13,compression_level=1",
         src, workdir / "ide.vmdk")
    head = (workdir / "ide.vmdk").read_bytes()[512:512 * 21]
    assert b'ddb.adapterType = "ide"' in head
    assert b'ddb.geometry.heads = "16"' in head
    assert b'ddb.virtualHWVersion = "13"' in head
    assert b'createType="streamOptimized"' in head
    assert_qemu_identical(src, "raw", workdir / "ide.vmdk", "vmdk")
    hsdk("convert", "-f", "raw", "-O", "vmdk", "-o", "compression_level=12", "-c", src, workdir / "l12.vmdk")
    assert_qemu_identical(src, "raw", workdir / "l12.vmdk", "vmdk")
    info = info_json(workdir / "l12.vmdk")
    assert info["format-specific"]["data"]["adapter-type"] == "lsilogic"
    assert info["format-specific"]["data"]["hw-version"] == "4"

    for opts, compress, needle in (("subformat=monolithicFlat", True, "streamOptimized"),
                                   ("subformat=monolithicSparse,compression_level=3", False, "compression_level"),
                                   ("adapter_type=scsi", False, "adapter_type"),
                                   ("hwversion=x", False, "hwversion"),
                                   ("subformat=bogus", False, "bogus"),
                                   ("zeroed_grain=on", False, "zeroed_grain")):
        args = ["convert", "-f", "raw", "-O", "vmdk", "-o", opts] + (["-c"] if compress else []) + [src, workdir / "bad.vmdk"]
        p = hsdk(*args, check=False)
        assert p.returncode == 1, opts
        assert needle in p.stderr, (opts, p.stderr)
        assert not (workdir / "bad.vmdk").exists()
    p = hsdk("convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=twoGbMaxExtentSparse", src, workdir / "bad.vmdk", check=False)
    assert p.returncode == 1 and "unsupported" in p.stderr
    (workdir / "empty.raw").write_bytes(b"")
    p = hsdk("convert", "-f", "raw", "-O", "vmdk", workdir / "empty.raw", workdir / "bad.vmdk", check=False)
    assert p.returncode == 1 and "empty" in p.stderr
    assert list_temporaries(workdir) == []
