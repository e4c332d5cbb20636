"""A disk.raw inside a .tar.gz (a Compute Engine image export), .tgz or .tar, given to hsdk as a
local file: read as a stream (nothing of the archive or the disk unpacked on the way), converted
byte for byte, sparse where the disk is zero; a corrupt or wrong archive fails, naming the file, and
leaves no output behind."""
import io
import json
import os
import random
import tarfile

import pytest

from conftest import MiB, assert_qemu_identical, hsdk, list_temporaries

SIZE = 24 * MiB


def write_disk(path, size=SIZE, seed=24):
    """A raw disk of `size` bytes: random and text regions between large zero runs, data in the
    first and the last sector (so a held-back or lost last byte shows)."""
    rng = random.Random(seed)
    data = bytearray(size)
    text = b"libhypersdk tar stream integration test, the quick brown fox. "
    for mib in range(size // MiB):
        at = mib * MiB
        kind = mib % 4
        if kind == 0:
            data[at:at + 300 * 1024] = rng.randbytes(300 * 1024)
        elif kind == 2:
            n = 200 * 1024 + 123
            data[at + 4096:at + 4096 + n] = (text * (n // len(text) + 1))[:n]
        # kinds 1 and 3: a whole MiB of zeros
    data[:512] = b"\xeb\x63\x90" + rng.randbytes(509)
    data[-4096:] = rng.randbytes(4096)
    path.write_bytes(bytes(data))
    return path


def write_archive(path, disk, arcname="disk.raw", mode="w:gz"):
    with tarfile.open(path, mode) as t:
        manifest = json.dumps({"licenses": [], "format": "raw"}).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(manifest)
        t.addfile(info, io.BytesIO(manifest))
        t.add(disk, arcname=arcname)
    return path


@pytest.fixture(scope="module")
def disk(tmp_path_factory):
    return write_disk(tmp_path_factory.mktemp("tarstream") / "disk.raw")


@pytest.fixture(scope="module")
def archive(disk):
    return write_archive(disk.parent / "disk.tar.gz", disk)


@pytest.mark.parametrize("suffix,mode", [("tar.gz", "w:gz"), ("tgz", "w:gz"), ("tar", "w")])
def test_convert_to_qcow2_is_identical(disk, archive, tmp_path, suffix, mode):
    src = archive if suffix == "tar.gz" else write_archive(tmp_path / f"disk.{suffix}", disk, mode=mode)
    out = tmp_path / "out.qcow2"
    hsdk("convert", src, out, "-O", "qcow2")
    assert_qemu_identical(disk, "raw", out, "qcow2")
    assert list_temporaries(tmp_path) == []


def test_convert_to_raw_is_identical_and_sparse(disk, archive, tmp_path):
    out = tmp_path / "out.raw"
    hsdk("convert", archive, out, "-O", "raw")
    st = os.stat(out)
    assert st.st_size == SIZE
    assert out.read_bytes() == disk.read_bytes()
    # About 7 MiB of the 24 are data; the zero runs stay holes.
    assert st.st_blocks * 512 < SIZE // 2, f"{st.st_blocks * 512 / MiB:.1f} MiB allocated of {SIZE / MiB:.0f}"


def test_info_reports_the_disk(archive):
    info = json.loads(hsdk("info", archive, "--json").stdout)
    assert info["virtual-size"] == SIZE
    assert info["format"] == "raw"


def test_corrupt_archive_fails_naming_the_file_and_leaves_no_output(archive, tmp_path):
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0x55
    bad = tmp_path / "flipped.tar.gz"
    bad.write_bytes(bytes(data))
    for fmt in ("qcow2", "raw"):
        out = tmp_path / f"out.{fmt}"
        p = hsdk("convert", bad, out, "-O", fmt, check=False)
        assert p.returncode != 0, p.stdout + p.stderr
        assert "flipped.tar.gz" in p.stderr, p.stderr
        assert "corrupt" in p.stderr, p.stderr
        assert not out.exists()
        assert list_temporaries(tmp_path) == []


def test_archive_without_disk_raw_fails(disk, tmp_path):
    other = write_archive(tmp_path / "other.tar.gz", disk, arcname="root.img")
    out = tmp_path / "out.qcow2"
    p = hsdk("convert", other, out, "-O", "qcow2", check=False)
    assert p.returncode != 0, p.stdout + p.stderr
    assert "no 'disk.raw'" in p.stderr, p.stderr
    assert "other.tar.gz" in p.stderr, p.stderr
    assert not out.exists()
    assert list_temporaries(tmp_path) == []
