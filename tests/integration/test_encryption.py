"""Encrypted files end to end through hsdk (the aes-256-gcm envelope of docs/encryption.md):
encrypt/decrypt with a passphrase file, a passphrase variable or a key file; convert --encrypt;
encrypted images read directly by info, convert and compare; and every failure leaving nothing
behind. The envelope's byte format is checked separately against an independent implementation
(test_encryption_vectors.py)."""
import os
import pathlib

import pytest

from conftest import MiB, hsdk, qemu_img, qemu_info, write_pattern

MAGIC = b"HSDKENC\0"


@pytest.fixture
def secret(tmp_path):
    p = tmp_path / "passphrase"
    p.write_text("correct horse battery staple\n")
    return p


@pytest.fixture
def image(tmp_path):
    raw = write_pattern(tmp_path / "disk.raw", 6 * MiB + 12345, seed=77)
    q = tmp_path / "disk.qcow2"
    qemu_img("convert", "-f", "raw", "-O", "qcow2", raw, q)
    return raw, q


def leftovers(folder):
    return sorted(p.name for p in pathlib.Path(folder).iterdir() if p.name.startswith("."))


def test_encrypt_decrypt_round_trip_with_each_key_source(tmp_path, secret, image):
    raw, _ = image
    enc, back = tmp_path / "disk.raw.enc", tmp_path / "back.raw"
    hsdk("encrypt", "--passphrase-file", secret, raw, enc)
    assert enc.read_bytes()[:8] == MAGIC and raw.read_bytes() not in enc.read_bytes()
    hsdk("decrypt", "--passphrase-file", secret, enc, back)
    assert back.read_bytes() == raw.read_bytes() and (back.stat().st_mode & 0o077) == 0

    env = dict(os.environ, HSDK_TEST_PASS="another passphrase")
    hsdk("encrypt", "--passphrase-env", "HSDK_TEST_PASS", raw, tmp_path / "e2", env=env)
    hsdk("decrypt", "--passphrase-env", "HSDK_TEST_PASS", tmp_path / "e2", tmp_path / "b2", env=env)
    assert (tmp_path / "b2").read_bytes() == raw.read_bytes()

    key = tmp_path / "key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o644)
    p = hsdk("encrypt", "--key-file", key, raw, tmp_path / "e3", check=False)
    assert p.returncode != 0 and "chmod 600" in p.stderr and not (tmp_path / "e3").exists()
    key.chmod(0o600)
    hsdk("encrypt", "--key-file", key, raw, tmp_path / "e3")
    hsdk("decrypt", "--key-file", key, tmp_path / "e3", tmp_path / "b3")
    assert (tmp_path / "b3").read_bytes() == raw.read_bytes()


def test_failures_leave_no_output(tmp_path, secret, image):
    raw, _ = image
    enc = tmp_path / "disk.enc"
    hsdk("encrypt", "--passphrase-file", secret, raw, enc)
    wrong = tmp_path / "wrong"
    wrong.write_text("not it\n")
    out = tmp_path / "out.raw"
    p = hsdk("decrypt", "--passphrase-file", wrong, enc, out, check=False)
    assert p.returncode != 0 and "wrong passphrase" in p.stderr and not out.exists()

    data = bytearray(enc.read_bytes())
    truncated = tmp_path / "truncated.enc"
    truncated.write_bytes(bytes(data[:64 + 65552 * 2]))  # two whole chunks: the last-chunk flag is missing
    p = hsdk("decrypt", "--passphrase-file", secret, truncated, out, check=False)
    assert p.returncode != 0 and "truncated" in p.stderr and not out.exists()

    data[64 + 65552 * 3 + 100] ^= 1
    damaged = tmp_path / "damaged.enc"
    damaged.write_bytes(bytes(data))
    p = hsdk("decrypt", "--passphrase-file", secret, damaged, out, check=False)
    assert p.returncode != 0 and "chunk 3 failed authentication" in p.stderr and not out.exists()
    assert leftovers(tmp_path) == []

    out.write_text("keep me")
    p = hsdk("decrypt", "--passphrase-file", secret, enc, out, check=False)
    assert p.returncode != 0 and out.read_text() == "keep me"
    # Keys that do not fit the method are refused before anything is written.
    p = hsdk("encrypt", "--encrypt-method", "gpg", "--passphrase-file", secret, raw, tmp_path / "x.gpg", check=False)
    assert p.returncode != 0 and "gpg-recipient" in p.stderr and not (tmp_path / "x.gpg").exists()
    key = tmp_path / "k32"
    key.write_bytes(os.urandom(32))
    key.chmod(0o600)
    p = hsdk("encrypt", "--encrypt-method", "age", "--key-file", key, raw, tmp_path / "x.age", check=False)
    assert p.returncode != 0 and "age" in p.stderr and not (tmp_path / "x.age").exists()
    assert leftovers(tmp_path) == []


def test_convert_encrypts_and_encrypted_images_are_read_directly(tmp_path, secret, image):
    raw, q = image
    enc = tmp_path / "disk.qcow2.enc"
    hsdk("convert", "-f", "raw", "-O", "qcow2", "--encrypt", "--passphrase-file", secret, raw, enc)
    assert enc.read_bytes()[:8] == MAGIC
    assert leftovers(tmp_path) == []  # the plaintext written beside it is gone
    info = hsdk("info", "--output=json", "--passphrase-file", secret, enc).stdout
    assert '"format": "qcow2"' in info
    back = tmp_path / "back.raw"
    hsdk("convert", "--passphrase-file", secret, "-O", "raw", enc, back)
    qemu_img("compare", "-f", "raw", "-F", "raw", raw, back)
    assert hsdk("compare", "--passphrase-file", secret, enc, q).returncode == 0
    p = hsdk("info", enc, check=False)
    assert p.returncode != 0 and "is encrypted" in p.stderr and "--passphrase-file" in p.stderr
    plain = tmp_path / "plain.qcow2"
    hsdk("convert", "-f", "raw", "-O", "qcow2", raw, plain)
    assert qemu_info(plain)["format"] == "qcow2"
