"""qcow2: reading every variant qemu-img makes, writing images qemu-img accepts, and the
refcount check agreeing with qemu-img check."""
import json
import pathlib
import os
import shutil
import struct
import subprocess

import pytest

from conftest import (
    MiB,
    assert_qemu_check_clean,
    assert_qemu_identical,
    hsdk,
    list_temporaries,
    qemu_img,
    qemu_info,
    run,
    write_pattern,
)

# Not a multiple of any cluster size (nor of a sector: qemu rounds the virtual size up to 512).
SIZE = 5 * MiB + 12345

HAVE_QEMU_IO = shutil.which("qemu-io") is not None


def qemu_io(path, *commands, fmt="qcow2"):
    args = ["qemu-io", "-f", fmt]
    for c in commands:
        args += ["-c", c]
    p = subprocess.run(args + [str(path)], capture_output=True, text=True)
    assert p.returncode == 0 and "error" not in p.stdout.lower(), p.stdout + p.stderr


def hsdk_json(*args):
    return json.loads(hsdk(*args).stdout)


def normalized_map(entries):
    """Merges neighbouring map entries of equal kind (and, for data, contiguous host offsets) so the
    two tools' maps compare regardless of how each splits its runs."""
    out = []
    for e in entries:
        kind = (e["present"], e["zero"], e["data"], e["depth"])
        off = e.get("offset") if e["data"] else None
        if out:
            last = out[-1]
            contiguous = (last["off"] is None and off is None) or (
                last["off"] is not None and off is not None and last["off"] + last["length"] == off)
            if last["kind"] == kind and last["start"] + last["length"] == e["start"] and contiguous:
                last["length"] += e["length"]
                continue
        out.append({"start": e["start"], "length": e["length"], "kind": kind, "off": off})
    return out


def assert_maps_agree(path):
    ours = normalized_map(hsdk_json("map", "--json", path))
    theirs = normalized_map(json.loads(qemu_img("map", "--output=json", path).stdout))
    assert ours == theirs


def check_json(path):
    p = hsdk("check", "--json", path, check=False)
    return p.returncode, json.loads(p.stdout) if p.stdout.strip() else None


def qemu_check_json(path):
    # qemu resolves a relative data file name against its working directory, not the image's.
    p = run(["qemu-img", "check", "--output=json", path], check=False, cwd=pathlib.Path(path).parent)
    assert p.stdout.strip(), f"qemu-img check {path} printed nothing: {p.stderr}"
    return json.loads(p.stdout)


def assert_checks_agree(path):
    """hsdk check on a clean image reports what qemu-img check reports."""
    rc, ours = check_json(path)
    theirs = qemu_check_json(path)
    assert rc == 0, ours
    assert ours["corruptions"] == 0 and ours["leaks"] == 0 and ours["check-errors"] == 0
    assert theirs.get("check-errors", 0) == 0 and theirs.get("corruptions", 0) == 0 and theirs.get("leaks", 0) == 0
    assert ours["allocated-clusters"] == theirs["allocated-clusters"]
    assert ours["total-clusters"] == theirs["total-clusters"]
    # qemu rounds the end up to a whole cluster even past the end of the file; ours never exceeds the file.
    assert ours["image-end-offset"] == min(theirs["image-end-offset"], os.path.getsize(path))


READ_VARIANTS = {
    "v2": ["-o", "compat=0.10"],
    "v3": [],
    "cluster512": ["-o", "cluster_size=512"],
    "cluster4k": ["-o", "cluster_size=4k"],
    "cluster64k": ["-o", "cluster_size=64k"],
    "cluster2M": ["-o", "cluster_size=2M"],
    "zlib": ["-c"],
    "zstd": ["-c", "-o", "compression_type=zstd"],
    "zstd-4k": ["-c", "-o", "compression_type=zstd,cluster_size=4k"],
    "v2-compressed-512": ["-c", "-o", "compat=0.10,cluster_size=512"],
    "extended-l2": ["-o", "extended_l2=on,cluster_size=128k"],
    "refcount1": ["-o", "refcount_bits=1"],
    "refcount64": ["-o", "refcount_bits=64,cluster_size=4k"],
    "lazy-refcounts": ["-o", "lazy_refcounts=on"],
}


@pytest.mark.parametrize("name", sorted(READ_VARIANTS))
def test_reads_qemu_variants(workdir, name):
    src = write_pattern(workdir / "src.raw", SIZE, seed=len(name))
    img = workdir / "img.qcow2"
    qemu_img("convert", "-f", "raw", "-O", "qcow2", *READ_VARIANTS[name], src, img)
    out = workdir / "out.raw"
    hsdk("convert", "-O", "raw", img, out)
    assert_qemu_identical(src, "raw", out, "raw")
    assert_qemu_identical(img, "qcow2", out, "raw")

    info = hsdk_json("info", "--json", img)
    q = qemu_info(img)
    assert info["format"] == "qcow2"
    assert info["virtual-size"] == q["virtual-size"]
    assert info["cluster-size"] == q["cluster-size"]
    assert info["files"] == [str(img)]
    spec, qspec = info["format-specific"]["data"], q["format-specific"]["data"]
    for key in ("compat", "compression-type", "lazy-refcounts", "refcount-bits", "corrupt", "extended-l2"):
        if key in qspec:
            assert spec[key] == qspec[key], key
    assert_maps_agree(img)
    assert_checks_agree(img)


@pytest.mark.skipif(not HAVE_QEMU_IO, reason="qemu-io not installed")
def test_zero_clusters_with_and_without_host_cluster(workdir):
    img = workdir / "z.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", img, str(2 * MiB))
    qemu_io(img, "write -P 0x5a 0 512k",
            "write -z 0 64k",          # zero flag, host cluster kept (preallocated)
            "write -z -u 64k 64k",     # zero flag, host cluster released
            "write -z 1M 128k",        # zero flag on clusters never allocated
            "write -P 0x11 1200k 3k")  # partial cluster: the rest of it reads as zeros
    out = workdir / "z.raw"
    hsdk("convert", "-O", "raw", img, out)
    assert_qemu_identical(img, "qcow2", out, "raw")
    runs = hsdk_json("map", "--json", img)
    zero = [(r["start"], r["length"]) for r in runs if r["zero"] and r["present"]]
    assert zero == [(0, 128 * 1024), (MiB, 128 * 1024)]
    assert_maps_agree(img)
    assert_checks_agree(img)


def test_zero_clusters_from_convert_of_zero_runs(workdir):
    # qemu-img convert writes zero runs over a backing file as zero clusters.
    base_raw = write_pattern(workdir / "base.raw", SIZE, seed=21, hole_fraction=0.0, zero_fraction=0.0)
    base = workdir / "base.qcow2"
    qemu_img("convert", "-f", "raw", "-O", "qcow2", base_raw, base)
    top_raw = workdir / "top.raw"
    shutil.copy(base_raw, top_raw)
    with open(top_raw, "r+b") as f:
        f.seek(MiB)
        f.write(bytes(512 * 1024))
    top = workdir / "top.qcow2"
    qemu_img("convert", "-f", "raw", "-O", "qcow2", "-B", "base.qcow2", "-F", "qcow2", top_raw, top)
    runs = hsdk_json("map", "--json", top)
    assert any(r["zero"] and r["present"] and r["depth"] == 0 for r in runs)
    out = workdir / "out.raw"
    hsdk("convert", "-O", "raw", top, out)
    assert_qemu_identical(top_raw, "raw", out, "raw")
    assert_maps_agree(top)


@pytest.mark.parametrize("raw_data", [False, True], ids=["data-file", "data-file-raw"])
def test_external_data_file(workdir, raw_data):
    src = write_pattern(workdir / "src.raw", SIZE, seed=31)
    img = workdir / "img.qcow2"
    opts = "data_file=img.data" + (",data_file_raw=on" if raw_data else "")
    # qemu resolves the data file name against its working directory and stores it as given.
    run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", "-o", opts, src, img], cwd=workdir)
    out = workdir / "out.raw"
    hsdk("convert", "-O", "raw", img, out)
    assert_qemu_identical(src, "raw", out, "raw")
    info = hsdk_json("info", "--json", img)
    assert len(info["files"]) == 2 and info["files"][1].endswith("img.data")
    spec = info["format-specific"]["data"]
    assert spec["data-file"] == "img.data"
    assert spec["data-file-raw"] is raw_data
    assert_checks_agree(img)


def test_external_data_file_outside_folder_refused(workdir):
    src = write_pattern(workdir / "src.raw", 1 * MiB, seed=32)
    (workdir / "sub").mkdir()
    img = workdir / "sub" / "img.qcow2"
    qemu_img("convert", "-f", "raw", "-O", "qcow2", "-o", f"data_file={workdir / 'outside.data'}", src, img)
    p = hsdk("convert", "-O", "raw", img, workdir / "out.raw", check=False)
    assert p.returncode == 1
    assert "external data file" in p.stderr and "absolute path" in p.stderr
    assert not (workdir / "out.raw").exists()
    hsdk("convert", "--allow-external-files", "-O", "raw", img, workdir / "out.raw")
    assert_qemu_identical(src, "raw", workdir / "out.raw", "raw")


def make_chain(workdir):
    """base <- mid <- top, each overlay changing some data and zeroing some."""
    base_raw = write_pattern(workdir / "base.raw", SIZE, seed=41)
    base = workdir / "base.qcow2"
    qemu_img("convert", "-f", "raw", "-O", "qcow2", base_raw, base)
    mid, top = workdir / "mid.qcow2", workdir / "top.qcow2"
    if HAVE_QEMU_IO:
        qemu_img("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", mid)
        qemu_io(mid, "write -P 0x55 1M 300k", "write -z 2M 64k", "write -P 0x66 3000k 10k")
        qemu_img("create", "-q", "-f", "qcow2", "-o", "cluster_size=4k", "-b", "mid.qcow2", "-F", "qcow2", top)
        qemu_io(top, "write -P 0x77 1100k 4k", "write -z 4M 200k", "write -P 0x78 5M 12k")
    else:
        mid_raw = write_pattern(workdir / "mid.raw", SIZE, seed=42)
        qemu_img("convert", "-f", "raw", "-O", "qcow2", "-B", "base.qcow2", "-F", "qcow2", mid_raw, mid)
        top_raw = write_pattern(workdir / "top.raw", SIZE, seed=43)
        qemu_img("convert", "-f", "raw", "-O", "qcow2", "-B", "mid.qcow2", "-F", "qcow2", top_raw, top)
    return base, mid, top


def test_backing_chain_of_three(workdir):
    base, mid, top = make_chain(workdir)
    out = workdir / "out.raw"
    hsdk("convert", "-O", "raw", top, out)
    assert_qemu_identical(top, "qcow2", out, "raw")
    chain = hsdk_json("info", "--json", "--backing-chain", top)  # an array, as qemu-img prints it
    assert [i["filename"] for i in chain] == [str(top), str(mid), str(base)]
    assert chain[0]["backing-filename"] == "mid.qcow2" and chain[0]["full-backing-filename"] == str(mid)
    assert chain[0]["backing-filename-format"] == "qcow2"
    assert chain[1]["backing-filename"] == "base.qcow2"
    assert all("backing-image" not in i for i in chain) and "backing-filename" not in chain[2]
    assert_maps_agree(top)
    # Read alone, the overlay's unallocated ranges are holes.
    for img in (base, mid, top):
        assert_checks_agree(img)


def test_backing_outside_folder_refused(workdir):
    base_raw = write_pattern(workdir / "base.raw", 1 * MiB, seed=44)
    base = workdir / "base.qcow2"
    qemu_img("convert", "-f", "raw", "-O", "qcow2", base_raw, base)
    (workdir / "sub").mkdir()
    top = workdir / "sub" / "top.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-b", "../base.qcow2", "-F", "qcow2", top)
    p = hsdk("info", top, check=False)
    assert p.returncode == 1 and "'..'" in p.stderr
    hsdk("info", "--allow-external-files", top)


def test_internal_snapshots_and_bitmaps(workdir):
    src = write_pattern(workdir / "src.raw", SIZE, seed=51)
    img = workdir / "snap.qcow2"
    qemu_img("convert", "-f", "raw", "-O", "qcow2", src, img)
    qemu_img("snapshot", "-c", "first", img)
    qemu_img("bitmap", "--add", img, "bm0")
    if HAVE_QEMU_IO:
        qemu_io(img, "write -P 0x42 100k 500k", "write -z 2M 64k")
    qemu_img("snapshot", "-c", "second", img)
    ref = workdir / "ref.raw"
    qemu_img("convert", "-O", "raw", img, ref)
    out = workdir / "out.raw"
    hsdk("convert", "-O", "raw", img, out)
    assert ref.read_bytes() == out.read_bytes()
    spec = hsdk_json("info", "--json", img)["format-specific"]["data"]
    assert [s["name"] for s in spec["snapshots"]] == ["first", "second"]
    assert [b["name"] for b in spec["bitmaps"]] == ["bm0"]
    assert_checks_agree(img)


def test_dirty_and_corrupt_bits_are_reported_and_readable(workdir):
    src = write_pattern(workdir / "src.raw", 1 * MiB, seed=52)
    img = workdir / "img.qcow2"
    qemu_img("convert", "-f", "raw", "-O", "qcow2", src, img)
    with open(img, "r+b") as f:
        f.seek(72)
        f.write(struct.pack(">Q", 0b11))
    info = hsdk_json("info", "--json", img)
    assert info["dirty-flag"] is True
    assert info["format-specific"]["data"]["corrupt"] is True
    out = workdir / "out.raw"
    hsdk("convert", "-O", "raw", img, out)
    assert_qemu_identical(src, "raw", out, "raw")


@pytest.mark.parametrize("method", [1, 2], ids=["aes", "luks"])
def test_encrypted_refused(workdir, method):
    # qemu-img cannot create LUKS images here (its PBKDF benchmark needs CPU accounting), and no
    # longer creates AES ones: mark a plain image encrypted; we refuse before reading anything else.
    src = write_pattern(workdir / "src.raw", 1 * MiB, seed=53)
    img = workdir / "enc.qcow2"
    qemu_img("convert", "-f", "raw", "-O", "qcow2", src, img)
    with open(img, "r+b") as f:
        f.seek(32)
        f.write(struct.pack(">I", method))
    p = hsdk("convert", "-O", "raw", img, workdir / "out.raw", check=False)
    assert p.returncode == 1
    assert "encrypted qcow2 images are not supported" in p.stderr
    assert not (workdir / "out.raw").exists()
    assert list_temporaries(workdir) == []


# ---- writing ----------------------------------------------------------------------------

WRITE_VARIANTS = {
    "default": ([], {}),
    "cluster512": (["-o", "cluster_size=512"], {"cluster-size": 512}),
    "cluster4k": (["-o", "cluster_size=4096"], {"cluster-size": 4096}),
    "cluster2M": (["-o", "cluster_size=2M"], {"cluster-size": 2 * MiB}),
    "zlib": (["-c"], {}),
    "zlib-level12-4k": (["-c", "-o", "compression_level=12,cluster_size=4k"], {"cluster-size": 4096}),
    "zlib-512": (["-c", "-o", "cluster_size=512"], {"cluster-size": 512}),
    "zstd": (["-c", "-o", "compression_type=zstd"], {"compression-type": "zstd"}),
    "zstd-2M-level19": (["-c", "-o", "compression_type=zstd,compression_level=19,cluster_size=2M"],
                        {"compression-type": "zstd", "cluster-size": 2 * MiB}),
    "zstd-uncompressed": (["-o", "compression_type=zstd"], {"compression-type": "zstd"}),
}


@pytest.mark.parametrize("name", sorted(WRITE_VARIANTS))
def test_writes_what_qemu_accepts(workdir, name):
    args, expect = WRITE_VARIANTS[name]
    src = write_pattern(workdir / "src.raw", SIZE, seed=60 + len(name))
    img = workdir / "out.qcow2"
    hsdk("convert", "-f", "raw", "-O", "qcow2", *args, src, img)
    assert_qemu_check_clean(img, "qcow2")
    assert_qemu_identical(src, "raw", img, "qcow2")
    q = qemu_info(img, "qcow2")
    assert q["format"] == "qcow2"
    assert q["format-specific"]["data"]["compat"] == "1.1"
    assert q["cluster-size"] == expect.get("cluster-size", 65536)
    assert q["format-specific"]["data"]["compression-type"] == expect.get("compression-type", "zlib")
    assert q["virtual-size"] == (SIZE + 511) // 512 * 512
    assert_checks_agree(img)
    if "-c" in args:
        # Compression packs about as well as qemu's own.
        theirs = workdir / "qemu.qcow2"
        qemu_args = [",".join(o for o in a.split(",") if not o.startswith("compression_level=")) for a in args]
        qemu_img("convert", "-f", "raw", "-O", "qcow2", *qemu_args, src, theirs)
        # (qemu's file ends inside its last compressed cluster; ours ends with the refcount table.)
        cluster = expect.get("cluster-size", 65536)
        assert os.path.getsize(img) <= os.path.getsize(theirs) * 1.05 + cluster
    # And we read back what we wrote.
    back = workdir / "back.raw"
    hsdk("convert", "-O", "raw", img, back)
    assert_qemu_identical(src, "raw", back, "raw")


def test_write_incompressible_clusters_stay_plain(workdir):
    src = workdir / "random.raw"
    src.write_bytes(os.urandom(2 * MiB))
    img = workdir / "out.qcow2"
    hsdk("convert", "-c", "-f", "raw", "-O", "qcow2", src, img)
    assert_qemu_check_clean(img, "qcow2")
    assert_qemu_identical(src, "raw", img, "qcow2")
    report = qemu_check_json(img)
    assert report.get("compressed-clusters", 0) == 0
    assert report["allocated-clusters"] == 32


def test_write_highly_compressible_zstd_shares_clusters(workdir):
    # Tiny zstd streams pack many to a host cluster: refcounts above 1 must still be exact.
    src = workdir / "ones.raw"
    src.write_bytes(b"\x01" * (8 * MiB))
    img = workdir / "out.qcow2"
    hsdk("convert", "-c", "-f", "raw", "-O", "qcow2", "-o", "compression_type=zstd,cluster_size=4k", src, img)
    assert_qemu_check_clean(img, "qcow2")
    assert_qemu_identical(src, "raw", img, "qcow2")
    assert_checks_agree(img)
    assert os.path.getsize(img) < 256 * 1024


def test_write_overlay_with_backing_file(workdir):
    base, mid, top = make_chain(workdir)
    out = workdir / "overlay.qcow2"
    hsdk("convert", "-O", "qcow2", "-o", "backing_file=base.qcow2,backing_fmt=qcow2", top, out)
    assert_qemu_check_clean(out, "qcow2")
    assert_qemu_identical(top, "qcow2", out, "qcow2")
    q = qemu_info(out, "qcow2")
    assert q["backing-filename"] == "base.qcow2"
    assert q["backing-filename-format"] == "qcow2"
    # Only the differences are stored: far smaller than a full copy.
    full = workdir / "full.qcow2"
    hsdk("convert", "-O", "qcow2", top, full)
    assert os.path.getsize(out) < os.path.getsize(full) / 3
    # Zeros over backing data are zero clusters in the overlay.
    runs = hsdk_json("map", "--json", out)
    assert any(r["zero"] and r["present"] and r["depth"] == 0 for r in runs)
    assert_checks_agree(out)


def test_write_overlay_compressed_without_backing_format(workdir):
    base, mid, top = make_chain(workdir)
    out = workdir / "overlay.qcow2"
    hsdk("convert", "-c", "-O", "qcow2", "-o", "backing_file=mid.qcow2,compression_type=zstd", top, out)
    assert_qemu_check_clean(out, "qcow2")
    assert_qemu_identical(top, "qcow2", out, "qcow2")
    assert qemu_info(out, "qcow2")["backing-filename"] == "mid.qcow2"


@pytest.mark.parametrize("opts,needle", [
    ("bogus=1", "bogus"),
    ("cluster_size=1000", "cluster_size"),
    ("cluster_size=4M", "cluster_size"),
    ("cluster_size=256", "cluster_size"),
    ("compression_type=lzma", "compression_type"),
    ("compression_level=13", "compression_level"),
    ("compression_type=zstd,compression_level=20", "compression_level"),
    ("backing_fmt=qcow2", "backing_file"),
    ("backing_file=x.qcow2,backing_fmt=nope", "backing_fmt"),
    ("extended_l2=on", "extended_l2"),
])
def test_write_rejects_bad_options_and_leaves_nothing(workdir, opts, needle):
    src = write_pattern(workdir / "src.raw", 1 * MiB, seed=70)
    dst = workdir / "out.qcow2"
    p = hsdk("convert", "-f", "raw", "-O", "qcow2", "-o", opts, src, dst, check=False)
    assert p.returncode == 1
    assert needle in p.stderr
    assert not dst.exists()
    assert list_temporaries(workdir) == []


# ---- check against deliberate damage ----------------------------------------------------

def damage(path, mode):
    with open(path, "r+b") as f:
        h = f.read(112)
        cs = 1 << struct.unpack(">I", h[20:24])[0]
        l1 = struct.unpack(">Q", h[40:48])[0]
        rt = struct.unpack(">Q", h[48:56])[0]
        f.seek(rt)
        rb0 = struct.unpack(">Q", f.read(8))[0]
        f.seek(l1)
        l2 = struct.unpack(">Q", f.read(8))[0] & 0x00FFFFFFFFFFFE00
        f.seek(l2)
        entry = struct.unpack(">Q", f.read(8))[0]
        host = entry & 0x00FFFFFFFFFFFE00
        if mode == "refcount-zeroed":
            f.seek(rb0 + 2 * (host // cs))
            f.write(b"\0\0")
        elif mode == "leaked-cluster":
            f.seek(0, 2)
            end = f.tell()
            f.write(b"\0" * cs)
            f.seek(rb0 + 2 * (end // cs))
            f.write(struct.pack(">H", 1))
        elif mode == "copied-flag-cleared":
            f.seek(l2)
            f.write(struct.pack(">Q", entry & ~(1 << 63)))
        elif mode == "cluster-shared":
            f.seek(l2 + 8)
            f.write(struct.pack(">Q", entry))


@pytest.mark.parametrize("mode,errors,leaks", [
    ("refcount-zeroed", 2, 0),
    ("leaked-cluster", 0, 1),
    ("copied-flag-cleared", 1, 0),
    ("cluster-shared", 1, 1),
])
def test_check_finds_deliberate_damage_like_qemu(workdir, mode, errors, leaks):
    src = write_pattern(workdir / "src.raw", 2 * MiB, seed=80)
    with open(src, "r+b") as f:  # the first two clusters hold data
        f.write(os.urandom(128 * 1024))
    img = workdir / "img.qcow2"
    hsdk("convert", "-f", "raw", "-O", "qcow2", src, img)
    damage(img, mode)
    rc, ours = check_json(img)
    theirs = qemu_check_json(img)
    qemu_rc = run(["qemu-img", "check", img], check=False).returncode
    assert rc == qemu_rc == (2 if errors else 3)  # qemu-img check: 2 corruptions, 3 leaks only
    assert ours["corruptions"] == errors == theirs.get("corruptions", 0)
    assert ours["leaks"] == leaks == theirs.get("leaks", 0)
    assert ours["check-errors"] == theirs.get("check-errors", 0) == 0
    p = hsdk("check", img, check=False)
    if errors:
        assert f"{errors} errors were found on the image." in p.stdout
    if leaks:
        assert f"{leaks} leaked clusters were found on the image." in p.stdout
