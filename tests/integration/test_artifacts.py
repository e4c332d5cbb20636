"""Compressed and encrypted files through hsdk, judged by the stock tools: gzip, pigz, zstd and lz4
decode what hsdk compresses and hsdk reads what they write (docs/compression.md); Debian's age and
GnuPG decrypt what hsdk encrypts with age and gpg, and hsdk decrypts what they write (both ways);
encrypted and compressed images are read directly by every image command. qemu-img judges the
images. Export and backup outputs are in test_artifact_exports.py."""
import json
import os
import pathlib
import shutil
import subprocess

import pytest

from conftest import MiB, hsdk, qemu_img, write_pattern

TOOLS = {"gzip": ["gzip", "-dc"], "zstd": ["zstd", "-dcq"], "lz4": ["lz4", "-dc"]}
SUFFIX = {"gzip": ".gz", "zstd": ".zst", "lz4": ".lz4"}


def run(cmd, **kw):
    kw.setdefault("capture_output", True)
    return subprocess.run([str(c) for c in cmd], check=True, timeout=300, **kw)


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    d = tmp_path_factory.mktemp("img")
    raw = write_pattern(d / "disk.raw", 11 * MiB + 4096 * 3, seed=4242)
    q = d / "disk.qcow2"
    qemu_img("convert", "-f", "raw", "-O", "qcow2", raw, q)
    return raw, q


def hidden(folder):
    return sorted(p.name for p in pathlib.Path(folder).iterdir() if p.name.startswith("."))


# ---- compression -------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["gzip", "zstd", "lz4"])
def test_convert_compress_output_is_decoded_by_the_stock_tool_and_read_back(tmp_path, image, method):
    raw, q = image
    out = tmp_path / f"out.raw{SUFFIX[method]}"
    hsdk("convert", "-f", "qcow2", "-O", "raw", "--compress", method, q, out)
    decoded = run(TOOLS[method] + [out]).stdout
    assert decoded == raw.read_bytes()
    # Read back directly as an image (random access through the unit index), judged by qemu-img.
    back = tmp_path / "back.qcow2"
    hsdk("convert", "-O", "qcow2", out, back)
    qemu_img("compare", "-f", "raw", "-F", "qcow2", raw, back)
    # As the issue writes it: the name says raw inside, the output's extension says qcow2.
    again = tmp_path / "again.qcow2"
    hsdk("convert", out, again)
    qemu_img("compare", "-f", "raw", "-F", "qcow2", raw, again)
    info = json.loads(hsdk("info", "--output=json", out).stdout)
    assert info["virtual-size"] == raw.stat().st_size and info["format"] == "raw"
    assert hidden(tmp_path) == []


def test_compress_level_and_the_bare_flag_keep_their_meanings(tmp_path, image):
    raw, q = image
    fast, best = tmp_path / "fast.raw.zst", tmp_path / "best.raw.zst"
    hsdk("convert", "-O", "raw", "--compress=zstd", "--compress-level", "1", q, fast)
    hsdk("convert", "-O", "raw", "--compress", "zstd", "--compress-level", "19", q, best)
    assert best.stat().st_size <= fast.stat().st_size
    # A bare --compress (and -c) is still the format's own compression (qemu-img's -c), and does
    # not swallow the next word.
    native = tmp_path / "native.qcow2"
    hsdk("convert", "--compress", "-O", "qcow2", q, native)
    assert json.loads(qemu_img("info", "--output=json", native).stdout)["format"] == "qcow2"
    qemu_img("compare", "-f", "raw", "-F", "qcow2", raw, native)
    # A destination named as a compressed stream is written as one (the format from the name too).
    implied = tmp_path / "implied.raw.lz4"
    hsdk("convert", q, implied)
    assert run(TOOLS["lz4"] + [implied]).stdout == raw.read_bytes()
    p = hsdk("convert", "-O", "qcow2", "--compress", "zstd", q, tmp_path / "x.qcow2", check=False)
    assert p.returncode != 0 and "applies to raw outputs" in p.stderr and not (tmp_path / "x.qcow2").exists()
    p = hsdk("convert", "-O", "raw", "--compress", "gzip", "--compress-level", "12", q, tmp_path / "x.gz", check=False)
    assert p.returncode != 0 and "out of range" in p.stderr and not (tmp_path / "x.gz").exists()


STOCK = {
    "gzip": "gzip -c {src}",
    "pigz": "pigz -c -p 2 {src}",
    "zstd": "zstd -qc {src}",
    "zstd-stdin": "cat {src} | zstd -qc",  # no content size in the frame
    "lz4": "lz4 -qc {src}",
    "lz4-content-size": "lz4 -qc --content-size {src}",
    "lz4-linked": "lz4 -qc -BD {src}",
}


@pytest.mark.parametrize("kind", sorted(STOCK))
def test_streams_the_stock_tools_write_are_read_directly(tmp_path, image, kind):
    raw, q = image
    for src, fmt in ((raw, "raw"), (q, "qcow2")):
        # disk.raw.gz names its content raw (which is never guessed); disk.qcow2.gz is probed.
        packed = tmp_path / f"{kind}-disk.{fmt}{SUFFIX[kind.split('-')[0].replace('pigz', 'gzip')]}"
        with open(packed, "wb") as f:
            subprocess.run(STOCK[kind].format(src=src), shell=True, check=True, stdout=f)
        out = tmp_path / f"{fmt}-{kind}.qcow2"
        hsdk("convert", "-O", "qcow2", packed, out)
        qemu_img("compare", "-f", fmt, "-F", "qcow2", src, out)


def test_compress_and_decompress_commands(tmp_path, image):
    raw, _ = image
    for method in ("gzip", "zstd", "lz4"):
        c, d = tmp_path / f"c{SUFFIX[method]}", tmp_path / f"d-{method}.raw"
        res = json.loads(hsdk("compress", "--method", method, raw, c, "--json").stdout)
        assert res["method"] == method and res["bytes"] == c.stat().st_size
        assert run(TOOLS[method] + [c]).stdout == raw.read_bytes()
        hsdk("decompress", c, d)
        assert d.read_bytes() == raw.read_bytes()
        # Runs of zeros stay holes.
        assert d.stat().st_blocks * 512 < raw.stat().st_size
    # A damaged stream: an error naming it, and no output.
    bad = tmp_path / "bad.zst"
    data = bytearray((tmp_path / "c.zst").read_bytes())
    data[len(data) // 2] ^= 0x55
    bad.write_bytes(bytes(data))
    p = hsdk("decompress", bad, tmp_path / "never.raw", check=False)
    assert p.returncode != 0 and "bad.zst" in p.stderr and not (tmp_path / "never.raw").exists()
    p = hsdk("decompress", raw, tmp_path / "never.raw", check=False)
    assert p.returncode != 0 and not (tmp_path / "never.raw").exists()
    assert hidden(tmp_path) == []


# ---- age ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def age_key(tmp_path_factory):
    d = tmp_path_factory.mktemp("age")
    key = d / "key.txt"
    run(["age-keygen", "-o", key])
    public = run(["age-keygen", "-y", key]).stdout.decode().strip()
    return key, public


def test_age_both_ways_with_the_age_tool(tmp_path, image, age_key):
    raw, q = image
    key, public = age_key
    ours = tmp_path / "ours.age"
    res = json.loads(hsdk("encrypt", "--recipient", public, raw, ours, "--json").stdout)
    assert res["method"] == "age" and res["recipients"] == [public] and res["key"] == "recipients"
    assert ours.read_bytes().startswith(b"age-encryption.org/v1\n")
    assert run(["age", "-d", "-i", key, ours]).stdout == raw.read_bytes()

    theirs, armored = tmp_path / "theirs.age", tmp_path / "armored.age"
    run(["age", "-r", public, "-o", theirs, raw])
    run(["age", "-a", "-r", public, "-o", armored, raw])
    for f in (theirs, armored):
        back = tmp_path / f"{f.stem}.raw"
        hsdk("decrypt", "--identity", key, f, back)
        assert back.read_bytes() == raw.read_bytes() and (back.stat().st_mode & 0o077) == 0

    # An age-encrypted image is read directly (random access through the STREAM chunks).
    enc_q = tmp_path / "disk.qcow2.age"
    run(["age", "-r", public, "-o", enc_q, q])
    out = tmp_path / "from-age.raw"
    hsdk("convert", "--identity", key, "-O", "raw", enc_q, out)
    qemu_img("compare", "-f", "raw", "-F", "raw", raw, out)
    p = hsdk("info", enc_q, check=False)
    assert p.returncode != 0 and "--identity" in p.stderr

    # convert --encrypt to an age recipient: the age tool opens it, qemu-img judges the image.
    sealed = tmp_path / "sealed.qcow2"
    hsdk("convert", "-f", "raw", "-O", "qcow2", "--encrypt", "--recipient", public, raw, sealed)
    plain = tmp_path / "sealed-plain.qcow2"
    with open(plain, "wb") as f:
        run(["age", "-d", "-i", key, sealed], stdout=f, capture_output=False)
    qemu_img("compare", "-f", "raw", "-F", "qcow2", raw, plain)
    assert hidden(tmp_path) == []


def test_age_passphrase_and_wrong_keys(tmp_path, image, age_key):
    raw, _ = image
    key, public = age_key
    secret = tmp_path / "pass"
    secret.write_text("a passphrase for age\n")
    enc = tmp_path / "p.age"
    res = json.loads(hsdk("encrypt", "--encrypt-method", "age", "--passphrase-file", secret, raw, enc, "--json").stdout)
    assert res["key"] == "passphrase" and b"-> scrypt " in enc.read_bytes()[:200]
    hsdk("decrypt", "--passphrase-file", secret, enc, tmp_path / "p.raw")
    assert (tmp_path / "p.raw").read_bytes() == raw.read_bytes()
    # The age tool opens it with the passphrase typed on its terminal (script(1) gives it one).
    if shutil.which("script"):
        got = subprocess.run(["script", "-qec", f"age -d -o {tmp_path / 'tool.raw'} {enc}", "/dev/null"],
                             input=b"a passphrase for age\n", capture_output=True, timeout=120)
        assert got.returncode == 0, got.stdout + got.stderr
        assert (tmp_path / "tool.raw").read_bytes() == raw.read_bytes()

    other = tmp_path / "other.txt"
    run(["age-keygen", "-o", other])
    ours = tmp_path / "to-key.age"
    hsdk("encrypt", "--recipient", public, raw, ours)
    p = hsdk("decrypt", "--identity", other, ours, tmp_path / "never", check=False)
    assert p.returncode != 0 and not (tmp_path / "never").exists()
    assert "AGE-SECRET-KEY" not in p.stderr
    bad = tmp_path / "bad.age"
    data = bytearray(ours.read_bytes())
    data[-100] ^= 1
    bad.write_bytes(bytes(data))
    p = hsdk("decrypt", "--identity", key, bad, tmp_path / "never", check=False)
    assert p.returncode != 0 and not (tmp_path / "never").exists()
    p = hsdk("encrypt", "--recipient", "age1notakey", raw, tmp_path / "never", check=False)
    assert p.returncode != 0 and "age1notakey" in p.stderr and not (tmp_path / "never").exists()
    assert hidden(tmp_path) == []


# ---- gpg ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gpg_home(tmp_path_factory):
    # A short path: gpg-agent's socket path is limited in length.
    home = pathlib.Path(subprocess.run(["mktemp", "-d", "/tmp/hsdk-gpg-XXXXXX"], capture_output=True, text=True,
                                       check=True).stdout.strip())
    home.chmod(0o700)
    env = dict(os.environ, GNUPGHOME=str(home))
    run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", "Artifact Test <artifact@example.invalid>",
         "ed25519", "default", "never"], env=env)
    run(["gpg", "--batch", "--passphrase", "", "--quick-add-key",
         run(["gpg", "--batch", "--with-colons", "--list-keys"], env=env).stdout.decode().split("fpr:::::::::")[1].split(":")[0],
         "cv25519", "encr", "never"], env=env)
    yield home, env
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True)
    shutil.rmtree(home, ignore_errors=True)


def test_gpg_both_ways_with_gnupg(tmp_path, image, gpg_home):
    raw, q = image
    home, env = gpg_home
    ours = tmp_path / "ours.gpg"
    res = json.loads(hsdk("encrypt", "--gpg-home", home, "--gpg-recipient", "artifact@example.invalid", raw, ours, "--json",
                          env=env).stdout)
    assert res["method"] == "gpg" and len(res["recipients"]) == 1 and len(res["recipients"][0]) == 40
    assert run(["gpg", "--batch", "--decrypt", ours], env=env).stdout == raw.read_bytes()

    theirs = tmp_path / "theirs.gpg"
    run(["gpg", "--batch", "--trust-model", "always", "-r", "artifact@example.invalid", "-o", theirs, "--encrypt", q], env=env)
    back = tmp_path / "back.qcow2"
    hsdk("decrypt", "--gpg-home", home, theirs, back, env=env)
    assert back.read_bytes() == q.read_bytes()
    # Read directly as an image: gpg's agent decrypts it once into an unnamed temporary.
    out = tmp_path / "from-gpg.raw"
    hsdk("convert", "--gpg-home", home, "-O", "raw", theirs, out, env=env)
    qemu_img("compare", "-f", "raw", "-F", "raw", raw, out)

    p = hsdk("encrypt", "--gpg-home", home, "--gpg-recipient", "nobody@example.invalid", raw, tmp_path / "never", check=False, env=env)
    assert p.returncode != 0 and "nobody@example.invalid" in p.stderr and not (tmp_path / "never").exists()
    empty = pathlib.Path(subprocess.run(["mktemp", "-d", "/tmp/hsdk-gpg-XXXXXX"], capture_output=True, text=True, check=True).stdout.strip())
    try:
        empty.chmod(0o700)
        p = hsdk("decrypt", "--gpg-home", empty, ours, tmp_path / "never", check=False, env=dict(env, GNUPGHOME=str(empty)))
        assert p.returncode != 0 and not (tmp_path / "never").exists()
    finally:
        subprocess.run(["gpgconf", "--homedir", str(empty), "--kill", "all"], capture_output=True)
        shutil.rmtree(empty, ignore_errors=True)
    assert hidden(tmp_path) == []


# ---- secrets -----------------------------------------------------------------------------------

def test_passphrases_never_appear_in_output_or_logs(tmp_path, image):
    raw, q = image
    secret_text = "never-print-this-passphrase-7Q"
    env = dict(os.environ, HSDK_ART_PASS=secret_text)
    enc = tmp_path / "d.qcow2"
    runs = [
        hsdk("-vv", "convert", "-O", "qcow2", "--compress", "zstd", q, tmp_path / "x.raw", check=False, env=env),
        hsdk("-vv", "convert", "-O", "raw", "--compress", "zstd", "--encrypt", "--passphrase-env", "HSDK_ART_PASS", q,
             tmp_path / "y.raw.zst", env=env),
        hsdk("-vv", "convert", "-O", "qcow2", "--encrypt", "--encrypt-method", "age", "--passphrase-env", "HSDK_ART_PASS", q, enc,
             env=env),
        hsdk("-vv", "info", "--passphrase-env", "HSDK_ART_PASS", enc, env=env),
        hsdk("-vv", "decrypt", "--passphrase-env", "HSDK_ART_PASS", enc, tmp_path / "d.plain", env=env),
    ]
    for p in runs:
        assert secret_text not in p.stdout and secret_text not in p.stderr
    # Encrypted-and-compressed: decrypt, then the stock zstd decodes what is inside.
    hsdk("decrypt", "--passphrase-env", "HSDK_ART_PASS", tmp_path / "y.raw.zst", tmp_path / "y.zst", env=env)
    assert run(["zstd", "-dcq", tmp_path / "y.zst"]).stdout == raw.read_bytes()
    assert hidden(tmp_path) == []
