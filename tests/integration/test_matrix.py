"""Every readable variant qemu-img can make x every output we write, judged by qemu-img:
`qemu-img compare` identical, `qemu-img check` clean where qemu checks the format, and
`qemu-img info` shows the expected format and subformat."""
import json

import pytest

from conftest import MiB, assert_qemu_check_clean, assert_qemu_identical, hsdk, qemu_img, qemu_info, write_pattern

# A size that is not a multiple of any cluster, grain or block size (nor of a MiB).
SIZE = 5 * MiB + 3 * 4096 + 512

# name: (qemu-img format, extra qemu-img convert arguments)
SOURCES = {
    "raw": ("raw", []),
    "qcow2": ("qcow2", []),
    "qcow2-v2": ("qcow2", ["-o", "compat=0.10"]),
    "qcow2-cluster4k": ("qcow2", ["-o", "cluster_size=4096"]),
    "qcow2-zlib": ("qcow2", ["-c"]),
    "qcow2-zstd": ("qcow2", ["-c", "-o", "compression_type=zstd"]),
    "qcow2-extended-l2": ("qcow2", ["-o", "extended_l2=on,cluster_size=128k"]),
    "vmdk-monolithicSparse": ("vmdk", ["-o", "subformat=monolithicSparse"]),
    "vmdk-streamOptimized": ("vmdk", ["-o", "subformat=streamOptimized"]),
    "vmdk-monolithicFlat": ("vmdk", ["-o", "subformat=monolithicFlat"]),
    "vmdk-twoGbMaxExtentSparse": ("vmdk", ["-o", "subformat=twoGbMaxExtentSparse"]),
    "vmdk-twoGbMaxExtentFlat": ("vmdk", ["-o", "subformat=twoGbMaxExtentFlat"]),
    "vpc-dynamic": ("vpc", ["-o", "subformat=dynamic"]),
    "vpc-fixed": ("vpc", ["-o", "subformat=fixed"]),
    "vpc-force-size": ("vpc", ["-o", "subformat=dynamic,force_size=on"]),
    "vhdx-dynamic": ("vhdx", ["-o", "subformat=dynamic"]),
    "vhdx-fixed": ("vhdx", ["-o", "subformat=fixed"]),
    "vhdx-block1m": ("vhdx", ["-o", "subformat=dynamic,block_size=1M"]),
    "vdi-dynamic": ("vdi", []),
    "vdi-static": ("vdi", ["-o", "static=on"]),
}

# name: (hsdk -O, hsdk extra args, qemu format, checked by qemu-img check, expected qemu info details)
OUTPUTS = {
    "raw": ("raw", [], "raw", False, {}),
    "qcow2": ("qcow2", [], "qcow2", True, {"compat": "1.1"}),
    "qcow2-zlib": ("qcow2", ["-c"], "qcow2", True, {"compat": "1.1", "compression-type": "zlib"}),
    "qcow2-zstd": ("qcow2", ["-c", "-o", "compression_type=zstd"], "qcow2", True, {"compression-type": "zstd"}),
    "vmdk-streamOptimized": ("vmdk", ["-o", "subformat=streamOptimized"], "vmdk", True, {"create-type": "streamOptimized"}),
    "vmdk-monolithicSparse": ("vmdk", ["-o", "subformat=monolithicSparse"], "vmdk", True, {"create-type": "monolithicSparse"}),
    "vmdk-monolithicFlat": ("vmdk", ["-o", "subformat=monolithicFlat"], "vmdk", True, {"create-type": "monolithicFlat"}),
    "vhd-fixed": ("vhd", ["-o", "subformat=fixed"], "vpc", False, {}),
    "vhd-dynamic": ("vpc", ["-o", "subformat=dynamic"], "vpc", False, {}),
    "vhd-azure": ("vhd", ["-o", "subformat=fixed,azure=on"], "vpc", False, {}),
    "vhdx-dynamic": ("vhdx", ["-o", "subformat=dynamic"], "vhdx", True, {}),
    "vhdx-fixed": ("vhdx", ["-o", "subformat=fixed"], "vhdx", True, {}),
    "vdi-dynamic": ("vdi", [], "vdi", True, {}),
    "vdi-static": ("vdi", ["-o", "static=on"], "vdi", True, {}),
}


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    folder = tmp_path_factory.mktemp("matrix-sources")
    raw = write_pattern(folder / "pattern.raw", SIZE, seed=2024)
    made = {"raw": (raw, "raw")}
    for name, (fmt, args) in SOURCES.items():
        if name == "raw":
            continue
        # Each variant in its own folder: multi-file VMDKs keep their extents beside them.
        sub = folder / name
        sub.mkdir()
        path = sub / f"{name}.img"
        qemu_img("convert", "-f", "raw", "-O", fmt, *args, raw, path)
        made[name] = (path, fmt)
    return made


@pytest.mark.parametrize("out_name", sorted(OUTPUTS))
@pytest.mark.parametrize("src_name", sorted(SOURCES))
def test_convert_matrix(src_name, out_name, sources, tmp_path):
    src, src_fmt = sources[src_name]
    out_fmt, extra, qemu_fmt, checkable, details = OUTPUTS[out_name]
    dst = tmp_path / f"out.{out_name}"
    args = ["convert", "-O", out_fmt, *extra]
    if src_fmt == "raw":
        args += ["-f", "raw"]
    hsdk(*args, src, dst)
    assert_qemu_identical(src, src_fmt, dst, qemu_fmt)
    info = qemu_info(dst, qemu_fmt)
    assert info["format"] == qemu_fmt
    specific = info.get("format-specific", {}).get("data", {})
    for key, value in details.items():
        assert specific.get(key) == value, (key, specific)
    if checkable:
        assert_qemu_check_clean(dst, qemu_fmt)
    # Our own reader agrees with qemu on what we wrote.
    ours = json.loads(hsdk("info", "--json", "-f", out_fmt, dst).stdout)
    assert ours["virtual-size"] == info["virtual-size"]
