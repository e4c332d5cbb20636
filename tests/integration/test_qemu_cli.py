"""The qemu-img contract of hsdk's image commands, where users script them: check finds truncation
and exits as qemu-img check does, --output=json with qemu's keys, compare's exit codes, info
--backing-chain as an array, convert's -S/-B/-W/-m/-o compat, usage errors that point at the
subcommand's help, format hints naming the right flag, the progress bar fitted to the terminal, -v,
and KVM output libvirt opens."""
import json
import os
import re

import pytest

from conftest import MiB, hsdk, qemu_img, run, run_on_pty, write_pattern

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OVF = os.path.join(ROOT, "tests", "data", "ovf", "linux-uefi-secureboot.ovf")


def json_of(*args, status=0):
    p = hsdk(*args, check=False)
    assert p.returncode == status, p.stdout + p.stderr
    return json.loads(p.stdout)


# ---- check ----------------------------------------------------------------------------------------

def test_check_finds_a_truncated_qcow2_as_qemu_does(tmp_path):
    src = write_pattern(tmp_path / "src.raw", 8 * MiB, seed=20, hole_fraction=0.1)
    img = tmp_path / "d.qcow2"
    qemu_img("convert", "-f", "raw", "-O", "qcow2", src, img)
    truncated = tmp_path / "t.qcow2"
    truncated.write_bytes(img.read_bytes()[:330000])
    theirs = run(["qemu-img", "check", "--output=json", truncated], check=False)
    assert theirs.returncode == 2
    ours = json_of("check", "--output=json", truncated, status=2)
    assert ours["corruptions"] == json.loads(theirs.stdout)["corruptions"] > 0
    assert ours["check-errors"] == 0 and ours["leaks"] == 0 and ours["clean"] is False
    assert ours["image-end-offset"] <= truncated.stat().st_size
    assert {"filename", "format", "corruptions", "leaks", "check-errors", "image-end-offset"} <= set(ours)
    human = hsdk("check", truncated, check=False)
    assert human.returncode == 2 and "errors were found on the image" in human.stdout
    assert "exceeding the end of the file" in human.stderr
    # The same file, whole, is clean; something that cannot be checked at all is exit 1.
    assert json_of("check", "--json", img)["clean"] is True
    assert hsdk("check", "-f", "qcow2", src, check=False).returncode == 1
    assert hsdk("check", tmp_path / "missing.qcow2", check=False).returncode == 1


@pytest.mark.parametrize("fmt", ["vpc", "vhdx", "vdi", "vmdk"])
def test_check_reports_truncation_of_every_format_with_tables(tmp_path, fmt):
    src = write_pattern(tmp_path / "src.raw", 8 * MiB, seed=21, hole_fraction=0.05)
    img = tmp_path / f"d.{fmt}"
    qemu_img("convert", "-f", "raw", "-O", fmt, src, img)
    assert hsdk("check", "-f", fmt, img).returncode == 0
    truncated = tmp_path / f"t.{fmt}"
    truncated.write_bytes(img.read_bytes()[: img.stat().st_size // 2])
    report = json_of("check", "-f", fmt, "--output=json", truncated, status=2)
    assert report["corruptions"] >= 1 and report["clean"] is False
    assert any("end of the file" in m for m in report["messages"]), report["messages"]


# ---- compare ---------------------------------------------------------------------------------------

def test_compare_exit_codes_size_warning_and_errors(tmp_path):
    a = write_pattern(tmp_path / "a.raw", 2 * MiB, seed=22)
    longer = tmp_path / "longer.raw"
    longer.write_bytes(a.read_bytes() + bytes(MiB))
    p = hsdk("compare", "-f", "raw", "-F", "raw", a, longer)
    assert p.returncode == 0 and "Warning: Image size mismatch!" in p.stdout and "Images are identical." in p.stdout
    p = hsdk("compare", "-s", "-f", "raw", "-F", "raw", a, longer, check=False)
    assert p.returncode == 1 and "Strict mode: Image size mismatch!" in p.stdout
    theirs = run(["qemu-img", "compare", "-s", "-f", "raw", "-F", "raw", a, longer], check=False)
    assert theirs.returncode == 1
    p = hsdk("compare", "-f", "raw", a, tmp_path / "gone.qcow2", check=False)
    assert p.returncode == 2 and "gone.qcow2" in p.stderr
    # The hint names the flag of the image that needs it.
    p = hsdk("compare", "-f", "raw", a, longer, check=False)
    assert p.returncode == 2 and "give '-F raw'" in p.stderr and "longer.raw" in p.stderr
    p = hsdk("compare", a, longer, check=False)
    assert "give '-f raw'" in p.stderr and "a.raw" in p.stderr


# ---- info, map, json everywhere --------------------------------------------------------------------

def test_info_backing_chain_json_is_an_array_like_qemus(tmp_path):
    src = write_pattern(tmp_path / "src.raw", 2 * MiB, seed=23)
    base = tmp_path / "base.qcow2"
    qemu_img("convert", "-f", "raw", "-O", "qcow2", src, base)
    top = tmp_path / "top.qcow2"
    qemu_img("create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", top)
    ours = json_of("info", "--backing-chain", "--output=json", top)
    theirs = json.loads(qemu_img("info", "--backing-chain", "--output=json", top).stdout)
    assert isinstance(ours, list) and len(ours) == len(theirs) == 2
    for key in ("filename", "format", "virtual-size", "backing-filename", "full-backing-filename", "backing-filename-format"):
        assert ours[0][key] == theirs[0][key], key
    assert ours[1]["filename"] == theirs[1]["filename"]
    assert json_of("info", "--output=json", top)["full-backing-filename"] == theirs[0]["full-backing-filename"]


def test_output_json_is_accepted_wherever_json_is(tmp_path):
    img = write_pattern(tmp_path / "a.raw", MiB, seed=24)
    assert json_of("map", "-f", "raw", "--output=json", img)
    assert json_of("ops", "--output=json")
    assert json_of("run", "image.formats", "--output=json")["writable"]
    p = hsdk("info", "--output=xml", img, check=False)
    assert p.returncode == 2 and "hsdk info --help" in p.stderr


# ---- convert ---------------------------------------------------------------------------------------

def allocated(path):
    return os.stat(path).st_blocks * 512


def test_convert_sparse_size(tmp_path):
    src = tmp_path / "src.raw"
    with open(src, "wb") as f:  # 64 KiB of data, 64 KiB of zeros written out (allocated), ...
        for _ in range(0, 8 * MiB, 128 * 1024):
            f.write(os.urandom(64 * 1024) + bytes(64 * 1024))
    default = tmp_path / "default.raw"
    hsdk("convert", "-f", "raw", "-O", "raw", src, default)
    coarse = tmp_path / "coarse.raw"
    hsdk("convert", "-S", "256k", "-f", "raw", "-O", "raw", src, coarse)
    full = tmp_path / "full.raw"
    hsdk("convert", "-S", "0", "-f", "raw", "-O", "raw", src, full)
    for out in (default, coarse, full):
        assert out.read_bytes() == src.read_bytes()
    assert allocated(default) <= 5 * MiB  # the 64 KiB zero runs stay holes
    assert allocated(coarse) >= 8 * MiB  # zero runs shorter than 256 KiB are written
    assert allocated(full) >= 8 * MiB
    qcow = tmp_path / "full.qcow2"
    hsdk("convert", "-S", "0", "-f", "raw", "-O", "qcow2", src, qcow)
    mapped = json.loads(qemu_img("map", "--output=json", qcow).stdout)
    assert all(e["data"] for e in mapped), "-S 0: every cluster allocated"
    p = hsdk("convert", "-S", "1000", "-f", "raw", "-O", "raw", src, tmp_path / "x.raw", check=False)
    assert p.returncode == 2 and "/sparse_size" in p.stderr
    p = hsdk("convert", "-S", "lots", "-f", "raw", "-O", "raw", src, tmp_path / "x.raw", check=False)
    assert p.returncode == 2 and "-S 'lots' is not a size" in p.stderr


def test_convert_with_a_backing_file_writes_only_the_difference(tmp_path):
    base_raw = write_pattern(tmp_path / "base.raw", 4 * MiB, seed=25, hole_fraction=0.0)
    base = tmp_path / "base.qcow2"
    hsdk("convert", "-f", "raw", "-O", "qcow2", base_raw, base)
    changed = tmp_path / "changed.raw"
    data = bytearray(base_raw.read_bytes())
    data[MiB:MiB + 4096] = os.urandom(4096)
    changed.write_bytes(bytes(data))
    top = tmp_path / "top.qcow2"
    hsdk("convert", "-f", "raw", "-O", "qcow2", "-B", "base.qcow2", "-F", "qcow2", changed, top)
    info = json.loads(qemu_img("info", "--output=json", top).stdout)
    assert info["backing-filename"] == "base.qcow2" and info["backing-filename-format"] == "qcow2"
    assert top.stat().st_size < MiB
    qemu_img("compare", "-f", "raw", "-F", "qcow2", changed, top)
    assert qemu_img("check", top).returncode == 0
    p = hsdk("convert", "-f", "raw", "-O", "qcow2", "-F", "qcow2", changed, tmp_path / "x.qcow2", check=False)
    assert p.returncode == 2 and "give -B too" in p.stderr


def test_convert_accepts_qemu_img_flags_it_maps(tmp_path):
    src = write_pattern(tmp_path / "src.raw", 2 * MiB, seed=26)
    out = tmp_path / "o.qcow2"
    hsdk("convert", "-W", "-m", "16", "-o", "compat=1.1,preallocation=off", "-f", "raw", "-O", "qcow2", src, out)
    assert json.loads(qemu_img("info", "--output=json", out).stdout)["format-specific"]["data"]["compat"] == "1.1"
    p = hsdk("convert", "-o", "compat=0.10", "-f", "raw", "-O", "qcow2", src, tmp_path / "v2.qcow2", check=False)
    assert p.returncode == 1 and "compat=0.10" in p.stderr and "version 3" in p.stderr
    assert not (tmp_path / "v2.qcow2").exists()


def test_usage_errors_point_at_the_subcommand_help(tmp_path):
    src = write_pattern(tmp_path / "src.raw", MiB, seed=27)
    p = hsdk("convert", "-O", "qcow3", src, tmp_path / "o", check=False)
    assert p.returncode == 2
    assert "unknown output format 'qcow3': expected raw, qcow2, vmdk, vhd (vpc), vhdx or vdi" in p.stderr
    assert "see hsdk convert --help" in p.stderr
    p = hsdk("convert", "-O", "raw", src, check=False)
    assert p.returncode == 2 and "see hsdk convert --help" in p.stderr
    p = hsdk("kvm", "domain", "--bogus", check=False)
    assert p.returncode == 2 and "see hsdk kvm domain --help" in p.stderr
    p = hsdk("convert", "-O", "qcow2", src, tmp_path / "o.qcow2", check=False)
    assert p.returncode == 1 and "give '-f raw'" in p.stderr and "src.raw" in p.stderr


def test_verbose_says_what_a_conversion_does(tmp_path):
    src = write_pattern(tmp_path / "src.raw", 2 * MiB, seed=28)
    p = hsdk("-v", "convert", "-t", "writeback", "-f", "raw", "-O", "vhdx", src, tmp_path / "o.vhdx")
    log = p.stderr
    assert re.search(r"convert: raw source of 2097152 bytes -> '.*o.vhdx' \(vhdx\), \d+ worker threads, cache mode writeback", log), log
    assert re.search(r"convert: read \d+ bytes, wrote \d+ bytes of data; '.*o.vhdx' holds \d+ bytes", log), log
    quiet = hsdk("convert", "-f", "raw", "-O", "vhdx", src, tmp_path / "q.vhdx")
    assert quiet.stderr == ""


def test_help_claims_only_what_exists():
    """Every subcommand the help lists answers its own --help (nothing is listed that is not there)."""
    text = hsdk("--help").stdout
    listed = re.findall(r"^  ([a-z][a-z0-9-]*)\s", text.split("Subcommands:", 1)[1], re.M)
    assert {"convert", "export", "backup", "restore", "cbt", "chain", "delta"} <= set(listed), listed
    for command in listed:
        assert hsdk(command, "--help").returncode == 0, command


# ---- progress --------------------------------------------------------------------------------------

@pytest.mark.parametrize("columns", [80, 44])
def test_the_bar_fits_the_terminal(tmp_path, columns):
    src = write_pattern(tmp_path / "src.raw", 32 * MiB, seed=29)
    rc, shown = run_on_pty(["convert", "-p", "-f", "raw", "-O", "qcow2", src, tmp_path / "o.qcow2"], columns)
    assert rc == 0
    frames = [f.replace("\x1b[K", "") for f in re.split(r"[\r\n]", shown) if f.strip()]
    assert frames and all(len(f) < columns for f in frames), [f for f in frames if len(f) >= columns]
    assert any("100.0%" in f for f in frames)
    if columns >= 80:
        assert any(re.search(r"MiB / [\d.]+ MiB", f) for f in frames) and any("ETA" in f for f in frames)


def test_a_message_after_the_bar_starts_on_its_own_line(tmp_path):
    good = tmp_path / "g.qcow2"
    src = write_pattern(tmp_path / "src.raw", 16 * MiB, seed=30, hole_fraction=0.0)
    hsdk("convert", "-f", "raw", "-O", "qcow2", src, good)
    # A data cluster beyond the end of the file: found only while converting, after the bar has started.
    broken = tmp_path / "b.qcow2"
    data = good.read_bytes()
    broken.write_bytes(data[: len(data) - 3 * 65536])
    rc, shown = run_on_pty(["convert", "-p", "-O", "raw", broken, tmp_path / "o.raw"], 80)
    assert rc == 1
    at = shown.index("hsdk: ")
    assert at == 0 or shown[at - 1] == "\n", repr(shown[max(0, at - 40):at + 20])


# ---- KVM output ------------------------------------------------------------------------------------

def test_kvm_disk_types_are_libvirts_names(tmp_path):
    xml = hsdk("kvm", "domain", "--from", OVF, "--disk-dir", tmp_path, "--disk-format", "vhd").stdout
    assert "<driver name='qemu' type='vpc'" in xml and "type='vhd'" not in xml
    for fmt, dtype in (("raw", "raw"), ("qcow2", "qcow2"), ("vmdk", "vmdk"), ("vhdx", "vhdx"), ("vdi", "vdi"), ("vpc", "vpc")):
        assert f"type='{dtype}'" in hsdk("kvm", "domain", "--from", OVF, "--disk-format", fmt).stdout
    p = hsdk("kvm", "domain", "--from", OVF, "--disk-format", "bogus", check=False)
    assert p.returncode == 2 and "bogus" in p.stderr


def test_kvm_network_maps_that_match_no_nic(tmp_path):
    p = hsdk("kvm", "domain", "--from", OVF, "--map-network", "Nowhere=default")
    assert "network map entry 'Nowhere=default' matches no NIC" in p.stderr
    p = hsdk("kvm", "domain", "--from", OVF, "--map-bridge", "Nowhere=br0", "--strict", check=False)
    assert p.returncode != 0 and "bridge map entry 'Nowhere=br0' matches no NIC" in p.stderr
