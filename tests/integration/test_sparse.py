"""Sparse in, sparse out: a 64 GiB disk holding 100 MiB converts to every output format writing
about 100 MiB, and qemu-img calls the result identical. (No timing assertion: the work done, not
the clock, is what is checked.)"""
import os
import random

import pytest

from conftest import MiB, assert_qemu_identical, hsdk, qemu_img

GiB = 1 << 30
DATA = 100 * MiB


@pytest.fixture(scope="module")
def big_sparse(tmp_path_factory):
    path = tmp_path_factory.mktemp("sparse") / "big.raw"
    rng = random.Random(64)
    with open(path, "wb") as f:
        f.truncate(64 * GiB)
        # 100 chunks of 1 MiB spread over the disk, half random, half text.
        for i in range(100):
            f.seek(rng.randrange(0, 64 * GiB - MiB) // 4096 * 4096)
            f.write(rng.randbytes(MiB) if i % 2 else (b"sparse disk text " * (MiB // 17 + 1))[:MiB])
    return path


OUTPUTS = [
    ("raw", [], "raw"),
    ("qcow2", [], "qcow2"),
    ("vmdk", ["-o", "subformat=monolithicSparse"], "vmdk"),
    ("vmdk", ["-o", "subformat=streamOptimized"], "vmdk"),
    ("vhd", ["-o", "subformat=dynamic"], "vpc"),
    # Small blocks: qemu-img compare reads every present block whole, and 32 MiB blocks around
    # 1 MiB of data would make the judge, not us, slow.
    ("vhdx", ["-o", "block_size=1M"], "vhdx"),
    ("vdi", [], "vdi"),
]


def allocated(path):
    return sum(os.stat(p).st_blocks * 512 for p in [path])


@pytest.mark.parametrize("fmt,extra,qemu_fmt", OUTPUTS, ids=[f"{o[0]}{'-' + o[1][1] if o[1] else ''}" for o in OUTPUTS])
def test_sparse_in_sparse_out(big_sparse, tmp_path, fmt, extra, qemu_fmt):
    dst = tmp_path / f"out.{fmt}"
    hsdk("convert", "-f", "raw", "-O", fmt, *extra, big_sparse, dst)
    # About the data, plus metadata (tables for a 64 GiB disk are a few MiB at most).
    assert allocated(dst) < DATA + 16 * MiB, f"{fmt}: {allocated(dst) / MiB:.1f} MiB allocated"
    info = qemu_img("info", "--output=json", "-f", qemu_fmt, dst).stdout
    assert '"virtual-size": 68719476736' in info or fmt == "vhd"  # VHD may round to its geometry
    if fmt == "vhdx":
        # qemu 7.2's vhdx driver reports no allocation, so `qemu-img compare` would read all 64 GiB:
        # qemu checks the metadata, our compare (which follows the BAT) checks the bytes.
        qemu_img("check", "-f", "vhdx", dst)
        hsdk("compare", "-f", "raw", "-F", "vhdx", big_sparse, dst)
    else:
        assert_qemu_identical(big_sparse, "raw", dst, qemu_fmt)
