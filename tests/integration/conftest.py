"""Shared helpers for the integration tests: run hsdk and the peers (qemu-img, libvhdi/libvmdk
tools), and make deterministic test images."""
import json
import os
import pathlib
import random
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("HSDK_BUILD_DIR", ROOT / "build" / "default"))
HSDK = BUILD / "tools" / "hsdk" / "hsdk"

MiB = 1 << 20


def run(cmd, check=True, timeout=600, **kw):
    """Runs a command, returning CompletedProcess with text output; raises with both streams on failure."""
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


def hsdk(*args, check=True, **kw):
    return run([HSDK, *args], check=check, **kw)


def qemu_img(*args, check=True):
    return run(["qemu-img", *args], check=check)


def qemu_info(path, fmt=None):
    args = ["info", "--output=json"]
    if fmt:
        args += ["-f", fmt]
    return json.loads(qemu_img(*args, path).stdout)


def assert_qemu_identical(a, fmt_a, b, fmt_b):
    p = qemu_img("compare", "-f", fmt_a, "-F", fmt_b, a, b, check=False)
    assert p.returncode == 0, f"qemu-img compare {a} ({fmt_a}) {b} ({fmt_b}): {p.stdout}{p.stderr}"


def assert_qemu_check_clean(path, fmt):
    p = qemu_img("check", "-f", fmt, "--output=json", path, check=False)
    assert p.returncode == 0, f"qemu-img check {path}: exit {p.returncode}\n{p.stdout}{p.stderr}"
    report = json.loads(p.stdout)
    assert report.get("check-errors", 0) == 0, report  # qemu's keys: check-errors means the check itself failed
    assert report.get("leaks", 0) == 0, report
    assert report.get("corruptions", 0) == 0, report


def write_pattern(path, size, seed, hole_fraction=0.35, zero_fraction=0.15):
    """Writes a sparse raw image of `size` bytes with a seeded mix of random data, compressible
    text, explicitly written zeros and holes, in regions of uneven length (so nothing lines up with
    clusters, grains or blocks). Returns the path."""
    rng = random.Random(seed)
    text = b"libhypersdk test pattern: the quick brown fox jumps over the lazy dog. "
    with open(path, "wb") as f:
        f.truncate(size)
        pos = 0
        while pos < size:
            length = min(size - pos, rng.choice([512, 4096, 7 * 1024 + 512, 33 * 1024, 64 * 1024, 130 * 1024, 300 * 1024]))
            # Misalign starts now and then.
            if rng.random() < 0.3:
                length = min(size - pos, length + rng.randrange(1, 4096))
            roll = rng.random()
            if roll < hole_fraction:
                pass  # hole
            elif roll < hole_fraction + zero_fraction:
                f.seek(pos)
                f.write(bytes(length))
            elif roll < 0.75:
                f.seek(pos)
                f.write(rng.randbytes(length))
            else:
                f.seek(pos)
                reps = length // len(text) + 1
                f.write((text * reps)[:length])
            pos += length
        # Always some data at the very start and the very end.
        f.seek(0)
        f.write(b"\xeb\x63\x90" + rng.randbytes(509))
        tail = min(size, 1000)
        f.seek(size - tail)
        f.write(rng.randbytes(tail))
    return path


@pytest.fixture
def workdir(tmp_path):
    return tmp_path


def list_temporaries(folder):
    return [p for p in pathlib.Path(folder).iterdir() if ".hsdk-" in p.name]


def run_on_pty(args, columns=80, timeout=120):
    """Runs hsdk with stderr on a pseudo-terminal `columns` wide; returns (exit status, what it drew)."""
    import fcntl
    import pty
    import struct
    import termios
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    p = subprocess.run([str(HSDK), *map(str, args)], stdout=subprocess.PIPE, stderr=slave, timeout=timeout)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the terminal is closed once everything was read
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return p.returncode, b"".join(chunks).decode(errors="replace")


# The AWS simulator's fixtures (aws_sim, aws_sim_auth): importing them here registers them.
from conftest_aws import aws_sim, aws_sim_auth  # noqa: E402,F401
# Azurite (the Azure Storage emulator) for the Azure tests: fixture azurite.
from conftest_azure import azurite  # noqa: E402,F401
