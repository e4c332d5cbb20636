"""The hsdk command line: exit codes, error wording, usage errors, raw conversion basics."""
import os
import pathlib

import pytest

from conftest import HSDK, MiB, run_on_pty, assert_qemu_check_clean, assert_qemu_identical, hsdk, list_temporaries, run, write_pattern


def test_version_and_help():
    p = hsdk("--version")
    assert p.stdout.startswith("hsdk ")
    p = hsdk("--help")
    for cmd in ("info", "convert", "compare", "map", "check", "sha256"):
        assert cmd in p.stdout


def test_usage_errors_exit_2():
    p = hsdk(check=False)
    assert p.returncode == 2
    assert p.stderr.startswith("hsdk: ")
    p = hsdk("convert", "only-one-arg", check=False)
    assert p.returncode == 2
    p = hsdk("no-such-command", check=False)
    assert p.returncode == 2


def test_missing_file_exits_1_with_message(workdir):
    p = hsdk("info", workdir / "missing.img", check=False)
    assert p.returncode == 1
    assert p.stderr.startswith("hsdk: ")
    assert "missing.img" in p.stderr


def test_raw_is_never_guessed(workdir):
    img = write_pattern(workdir / "disk.raw", 2 * MiB, seed=1)
    p = hsdk("info", img, check=False)
    assert p.returncode == 1
    assert "cannot determine the format" in p.stderr
    p = hsdk("info", "-f", "raw", img)
    assert "file format: raw" in p.stdout


def test_raw_to_raw_sparse_and_identical(workdir):
    src = write_pattern(workdir / "src.raw", 8 * MiB + 12345, seed=2)
    dst = workdir / "dst.raw"
    hsdk("convert", "-f", "raw", "-O", "raw", src, dst)
    assert_qemu_identical(src, "raw", dst, "raw")
    assert os.path.getsize(dst) == os.path.getsize(src)
    # Holes stay holes: the copy occupies no more than the source.
    assert os.stat(dst).st_blocks <= os.stat(src).st_blocks
    p = hsdk("compare", "-f", "raw", "-F", "raw", src, dst)
    assert "identical" in p.stdout


def test_compare_reports_first_difference(workdir):
    a = write_pattern(workdir / "a.raw", 4 * MiB, seed=3)
    b = workdir / "b.raw"
    hsdk("convert", "-f", "raw", "-O", "raw", a, b)
    with open(b, "r+b") as f:
        f.seek(3 * MiB + 17)
        old = f.read(1)
        f.seek(3 * MiB + 17)
        f.write(bytes([old[0] ^ 0xFF]))
    p = hsdk("compare", "-f", "raw", "-F", "raw", a, b, check=False)
    assert p.returncode == 1
    assert f"offset {3 * MiB + 17}" in p.stdout
    p = hsdk("compare", "-f", "raw", "-F", "raw", a, workdir / "nope.raw", check=False)
    assert p.returncode == 2  # qemu-img compare: 2 when an image cannot be opened
    assert "nope.raw" in p.stderr


def test_unknown_option_is_refused_and_leaves_nothing(workdir):
    src = write_pattern(workdir / "src.raw", 1 * MiB, seed=4)
    dst = workdir / "out.img"
    p = hsdk("convert", "-f", "raw", "-O", "raw", "-o", "bogus=1", src, dst, check=False)
    assert p.returncode == 1
    assert "bogus" in p.stderr
    assert not dst.exists()
    assert list_temporaries(workdir) == []


def test_refuses_to_overwrite_its_source(workdir):
    src = write_pattern(workdir / "src.raw", 1 * MiB, seed=5)
    before = src.read_bytes()
    p = hsdk("convert", "-f", "raw", "-O", "raw", src, src, check=False)
    assert p.returncode == 1
    assert "source" in p.stderr
    assert src.read_bytes() == before


def test_unwritable_destination_leaves_nothing(workdir):
    src = write_pattern(workdir / "src.raw", 1 * MiB, seed=6)
    p = hsdk("convert", "-f", "raw", "-O", "raw", src, workdir / "no-such-dir" / "out.raw", check=False)
    assert p.returncode == 1
    assert "no-such-dir" in p.stderr


def test_sha256_manifest_lines(workdir):
    f = workdir / "x.bin"
    f.write_bytes(b"abc")
    p = hsdk("sha256", f)
    assert p.stdout.strip() == f"SHA256({f})= ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_progress_bar_on_a_terminal(workdir):
    """-p draws a bar with percentage, rate and ETA when stderr is a terminal, and nothing otherwise."""
    src = write_pattern(workdir / "src.raw", 16 * MiB, seed=8)
    rc, shown = run_on_pty(["convert", "-p", "-f", "raw", "-O", "qcow2", src, workdir / "o.qcow2"])
    assert rc == 0
    assert "converting [" in shown and "100.0%" in shown and "ETA" in shown and "/s" in shown
    # Not a terminal: no bar, plain lines instead (at least the first and the last).
    p = hsdk("convert", "-p", "-f", "raw", "-O", "qcow2", src, workdir / "o2.qcow2")
    assert "\r" not in p.stderr and "[" not in p.stderr
    assert p.stderr.splitlines()[-1].startswith("hsdk: converting: 100.0%")


def fsync_calls(*args):
    """Runs hsdk under strace and returns how many fsync/fdatasync calls it made."""
    p = run(["strace", "-f", "-qq", "-e", "trace=fsync,fdatasync", "-o", "/dev/stderr", HSDK, *args], check=False)
    assert p.returncode == 0, p.stderr
    return sum(1 for line in p.stderr.splitlines() if "fsync(" in line or "fdatasync(" in line)


@pytest.mark.parametrize("cache", ["none", "writeback", "unsafe"])
def test_cache_modes_write_the_same_image(workdir, cache):
    src = write_pattern(workdir / "src.raw", 6 * MiB + 4096, seed=11)
    dst = workdir / f"dst-{cache}.qcow2"
    hsdk("convert", "-t", cache, "-f", "raw", "-O", "qcow2", src, dst)
    assert_qemu_identical(src, "raw", dst, "qcow2")
    assert_qemu_check_clean(dst, "qcow2")
    assert list_temporaries(workdir) == []


def test_only_the_unsafe_cache_mode_skips_fsync(workdir):
    if run(["strace", "-qq", "-o", "/dev/null", "true"], check=False).returncode != 0:
        pytest.skip("strace cannot trace processes here")
    src = write_pattern(workdir / "src.raw", 3 * MiB, seed=12)
    # Default: the image and its folder are flushed before and after the rename.
    assert fsync_calls("convert", "-f", "raw", "-O", "qcow2", src, workdir / "durable.qcow2") >= 2
    assert fsync_calls("convert", "-t", "writeback", "-f", "raw", "-O", "qcow2", src, workdir / "wb.qcow2") >= 2
    assert fsync_calls("convert", "-t", "unsafe", "-f", "raw", "-O", "qcow2", src, workdir / "fast.qcow2") == 0
    assert_qemu_identical(src, "raw", workdir / "fast.qcow2", "qcow2")


def test_unknown_cache_mode_is_a_usage_error(workdir):
    src = write_pattern(workdir / "src.raw", MiB, seed=13)
    p = hsdk("convert", "-t", "directsync", "-f", "raw", "-O", "qcow2", src, workdir / "x.qcow2", check=False)
    assert p.returncode == 2
    assert "cache" in p.stderr
    assert not (workdir / "x.qcow2").exists()
