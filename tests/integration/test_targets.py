"""Where a conversion writes: block devices (a loop device) and character devices written in place,
never replaced by a regular file; symbolic links followed; FIFOs refused; -n into an existing raw
file; temporaries that carry their owner's PID and are cleaned up after a kill -9; SIGINT and
SIGTERM exiting 130 and 143 with nothing left behind."""
import json
import os
import random
import shutil
import signal
import stat
import subprocess
import time

import pytest

from conftest import HSDK, MiB, hsdk, list_temporaries, qemu_img, run, write_pattern


def block_device_or_skip():
    if os.geteuid() != 0 or not shutil.which("losetup"):
        pytest.skip("no loop device here: needs root and losetup (the device tests run where both exist)")
    return True


@pytest.fixture
def loop(tmp_path):
    """A 32 MiB loop device over a file, filled with random bytes (old data a conversion must not keep)."""
    block_device_or_skip()
    backing = tmp_path / "loop.img"
    backing.write_bytes(random.Random(7).randbytes(32 * MiB))
    p = run(["losetup", "--find", "--show", backing], check=False)
    if p.returncode != 0:
        pytest.skip(f"losetup cannot attach a loop device here: {p.stderr.strip()}")
    dev = p.stdout.strip()
    yield dev
    run(["losetup", "-d", dev], check=False)


def read_device(dev, length, offset=0):
    with open(dev, "rb") as f:
        f.seek(offset)
        return f.read(length)


def test_raw_into_a_block_device_writes_it_in_place(tmp_path, loop):
    src = write_pattern(tmp_path / "src.raw", 8 * MiB, seed=1)
    tail_before = read_device(loop, MiB, 24 * MiB)
    hsdk("convert", "-f", "raw", "-O", "raw", src, loop)
    assert stat.S_ISBLK(os.stat(loop).st_mode), "the device node must still be a device"
    # Holes of the source were zeroed over the old random bytes; past the image nothing changed.
    assert read_device(loop, 8 * MiB) == src.read_bytes()
    assert read_device(loop, MiB, 24 * MiB) == tail_before
    assert not list_temporaries("/dev")


def test_qcow2_onto_a_block_device_is_an_image_qemu_reads(tmp_path, loop):
    src = write_pattern(tmp_path / "src.raw", 8 * MiB, seed=2)
    hsdk("convert", "-f", "raw", "-O", "qcow2", src, loop)
    assert qemu_img("check", "-f", "qcow2", loop).returncode == 0
    qemu_img("compare", "-f", "raw", "-F", "qcow2", src, loop)
    assert stat.S_ISBLK(os.stat(loop).st_mode)


def test_a_device_too_small_is_refused_and_stays_a_device(tmp_path, loop):
    src = tmp_path / "big.raw"
    with open(src, "wb") as f:
        f.truncate(64 * MiB)
        f.write(b"data")
    p = hsdk("convert", "-f", "raw", "-O", "raw", src, loop, check=False)
    assert p.returncode == 1
    assert f"device '{loop}' holds {32 * MiB} bytes" in p.stderr
    assert stat.S_ISBLK(os.stat(loop).st_mode)


def test_target_is_zero_skips_zeroing_and_zeroing_uses_the_device(tmp_path, loop):
    if not shutil.which("strace"):
        pytest.skip("strace is missing (scripts/setup installs it)")
    src = write_pattern(tmp_path / "src.raw", 4 * MiB, seed=3)
    trace = tmp_path / "trace"
    run(["strace", "-f", "-qq", "-e", "trace=ioctl", "-o", trace, HSDK, "convert", "-f", "raw", "-O", "raw", src, loop])
    assert "BLKZEROOUT" in trace.read_text()
    assert read_device(loop, 4 * MiB) == src.read_bytes()
    with open(loop, "r+b") as f:
        f.write(bytes(8 * MiB))
    run(["strace", "-f", "-qq", "-e", "trace=ioctl", "-o", trace, HSDK, "convert", "--target-is-zero", "-f", "raw", "-O", "raw",
         src, loop])
    assert "BLKZEROOUT" not in trace.read_text()
    assert read_device(loop, 4 * MiB) == src.read_bytes()


def test_a_symlink_to_a_device_is_written_through(tmp_path, loop):
    src = write_pattern(tmp_path / "src.raw", 2 * MiB, seed=4)
    link = tmp_path / "disk"
    link.symlink_to(loop)
    hsdk("convert", "-f", "raw", "-O", "raw", src, link)
    assert link.is_symlink() and os.readlink(link) == loop
    assert read_device(loop, 2 * MiB) == src.read_bytes()


def test_a_failed_image_on_a_device_loses_its_header(tmp_path, loop):
    """A conversion that fails part way leaves no image that looks whole on the device."""
    small = write_pattern(tmp_path / "small.raw", 4 * MiB, seed=5)
    hsdk("convert", "-f", "raw", "-O", "qcow2", small, loop)  # a valid image on the device first
    big = tmp_path / "big.raw"
    big.write_bytes(random.Random(5).randbytes(40 * MiB))  # its qcow2 does not fit the 32 MiB device
    p = hsdk("convert", "-f", "raw", "-O", "qcow2", big, loop, check=False)
    assert p.returncode == 1 and f"device '{loop}' holds" in p.stderr
    assert read_device(loop, MiB) == bytes(MiB)
    assert qemu_img("info", "-f", "qcow2", loop, check=False).returncode != 0


def test_character_devices_are_written_not_replaced(tmp_path):
    src = write_pattern(tmp_path / "src.raw", 2 * MiB, seed=6)
    p = hsdk("convert", "-f", "raw", "-O", "raw", src, "/dev/full", check=False)
    assert p.returncode == 1 and "/dev/full" in p.stderr and "No space left" in p.stderr
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)
    hsdk("convert", "-f", "raw", "-O", "qcow2", src, "/dev/null")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert not list_temporaries("/dev")


def test_a_fifo_is_refused(tmp_path):
    src = write_pattern(tmp_path / "src.raw", MiB, seed=7)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    p = hsdk("convert", "-f", "raw", "-O", "raw", src, fifo, check=False)
    assert p.returncode == 1 and "is a FIFO or socket" in p.stderr
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert not list_temporaries(tmp_path)


def test_a_symlink_to_a_file_stays_a_link(tmp_path):
    src = write_pattern(tmp_path / "src.raw", 2 * MiB, seed=8)
    (tmp_path / "store").mkdir()
    target = tmp_path / "store" / "disk.qcow2"
    target.write_bytes(b"old content")
    link = tmp_path / "disk.qcow2"
    link.symlink_to("store/disk.qcow2")
    hsdk("convert", "-f", "raw", "-O", "qcow2", src, link)
    assert link.is_symlink() and os.readlink(link) == "store/disk.qcow2"
    qemu_img("compare", "-f", "raw", "-F", "qcow2", src, target)
    assert not list_temporaries(tmp_path) and not list_temporaries(tmp_path / "store")
    # A dangling link: the file it names is created.
    dangling = tmp_path / "new.raw"
    dangling.symlink_to("store/new.raw")
    hsdk("convert", "-f", "raw", "-O", "raw", src, dangling)
    assert dangling.is_symlink() and (tmp_path / "store" / "new.raw").read_bytes() == src.read_bytes()


def test_skip_create_writes_into_an_existing_raw_file(tmp_path):
    src = write_pattern(tmp_path / "src.raw", 4 * MiB, seed=9)
    target = tmp_path / "target.raw"
    target.write_bytes(random.Random(1).randbytes(6 * MiB))
    tail = target.read_bytes()[4 * MiB:]
    inode = target.stat().st_ino
    hsdk("convert", "-n", "-f", "raw", "-O", "raw", src, target)
    data = target.read_bytes()
    assert target.stat().st_ino == inode, "-n writes into the file, it does not replace it"
    assert len(data) == 6 * MiB and data[:4 * MiB] == src.read_bytes() and data[4 * MiB:] == tail
    # As qemu-img convert -n: a smaller target is an error and is left as it was.
    small = tmp_path / "small.raw"
    small.write_bytes(b"x" * MiB)
    p = hsdk("convert", "-n", "-f", "raw", "-O", "raw", src, small, check=False)
    assert p.returncode == 1 and "holds 1048576 bytes, fewer than the image's 4194304" in p.stderr
    assert small.read_bytes() == b"x" * MiB
    p = hsdk("convert", "-n", "-f", "raw", "-O", "qcow2", src, target, check=False)
    assert p.returncode == 1 and "writing into an existing qcow2 image is not supported" in p.stderr
    p = hsdk("convert", "-n", "-f", "raw", "-O", "raw", src, tmp_path / "missing.raw", check=False)
    assert p.returncode == 1 and "does not exist" in p.stderr and not (tmp_path / "missing.raw").exists()


# ---- temporaries, signals ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def slow_source(tmp_path_factory):
    """A source whose conversion takes seconds, not milliseconds: 64 MiB of word-like text, which the
    slowest deflate level (compression_level=12) works hard on, so it can be interrupted part way."""
    src = tmp_path_factory.mktemp("slow") / "text.raw"
    rng = random.Random(11)
    words = [bytes(rng.choice(b"abcdefghijklmnop") for _ in range(rng.randint(2, 9))) for _ in range(500)]
    chunk = b" ".join(rng.choice(words) for _ in range(200_000))
    with open(src, "wb") as f:
        for _ in range(64 * MiB // len(chunk) + 1):
            f.write(bytes(rng.choice(words)) + b" " + chunk)
        f.truncate(64 * MiB)
    return src


def start_slow_convert(src, dest):
    proc = subprocess.Popen([str(HSDK), "convert", "-c", "-o", "compression_level=12", "-t", "writeback", "-f", "raw", "-O", "qcow2",
                             str(src), str(dest)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Wait (by state, not by a fixed time) until its temporary exists.
    temps = []
    for _ in range(5000):
        temps = list_temporaries(dest.parent)
        if temps or proc.poll() is not None:
            break
        time.sleep(0.002)
    assert proc.poll() is None, "the conversion ended before it could be interrupted"
    return proc, temps


@pytest.mark.parametrize("sig,status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_cancels_cleans_up_and_exits_128_plus_it(tmp_path, slow_source, sig, status):
    dest = tmp_path / "out.qcow2"
    proc, temps = start_slow_convert(slow_source, dest)
    assert temps and f".out.qcow2.hsdk-{proc.pid}-" in temps[0].name, "the temporary carries its owner's PID"
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == status, stderr
    assert f"cancelled by {signal.Signals(sig).name}" in stderr
    assert not dest.exists() and not list_temporaries(tmp_path)


def test_a_killed_conversion_leaves_a_temporary_the_next_run_removes(tmp_path, slow_source):
    dest = tmp_path / "out.qcow2"
    proc, temps = start_slow_convert(slow_source, dest)
    proc.kill()
    proc.wait()
    left = list_temporaries(tmp_path)
    assert left and all(f"-{proc.pid}-" in t.name for t in left), "kill -9 leaves the temporary: nothing can remove it then"
    src = write_pattern(tmp_path / "small.raw", MiB, seed=12)
    hsdk("convert", "-f", "raw", "-O", "qcow2", src, dest)
    assert not list_temporaries(tmp_path), "the next run for the same destination removes what a dead process left"
    qemu_img("compare", "-f", "raw", "-F", "qcow2", src, dest)


def test_a_temporary_of_a_live_process_is_kept(tmp_path):
    import fcntl
    src = write_pattern(tmp_path / "src.raw", MiB, seed=13)
    live = tmp_path / f".out.raw.hsdk-{os.getpid()}-0000beef.part"
    live.write_bytes(b"in progress")
    dead_pid = subprocess.Popen(["true"])  # a PID that no longer runs
    dead_pid.wait()
    dead = tmp_path / f".out.raw.hsdk-{dead_pid.pid}-0000dead.part"
    dead.write_bytes(b"left behind")
    locked = tmp_path / f".out.raw.hsdk-{dead_pid.pid}-0000f00d.part"
    locked.write_bytes(b"held by a process in another PID namespace")
    with open(locked, "rb") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        hsdk("convert", "-f", "raw", "-O", "raw", src, tmp_path / "out.raw")
    assert live.exists() and locked.exists() and not dead.exists()


def test_errors_name_the_destination_not_its_temporary(tmp_path):
    src = write_pattern(tmp_path / "src.raw", 2 * MiB, seed=14)
    p = hsdk("convert", "-f", "raw", "-O", "raw", src, "/dev/full", check=False)
    assert ".hsdk-" not in p.stderr
    if os.geteuid() == 0:
        return  # root may write anywhere: the unwritable-folder case needs an ordinary user
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    p = hsdk("convert", "-f", "raw", "-O", "raw", src, ro / "out.raw", check=False)
    assert p.returncode == 1 and "out.raw" in p.stderr and ".hsdk-" not in p.stderr
