"""An independent implementation of the encryption envelope (docs/encryption.md), written from that
page alone: it decrypts the vectors of tests/data/encryption, re-creates them byte for byte from
their plaintext, salt and nonce prefix, and checks that tampering is caught. It needs no build of
libhypersdk: hashlib.scrypt and the `cryptography` package (AES-GCM, HKDF) do the cryptography."""
import hashlib
import json
import pathlib
import struct

import pytest

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "encryption"
MANIFEST = json.loads((DATA / "vectors.json").read_text())

MAGIC = b"HSDKENC\x00"
HEADER = 64
CHUNK = 65536
TAG = 16
SEALED = CHUNK + TAG
INFO = b"hypersdk-enc v1"


class EnvelopeError(Exception):
    pass


def parse_header(data):
    if len(data) < 8 or data[:8] != MAGIC:
        raise EnvelopeError("not a hypersdk encrypted file")
    if len(data) < HEADER:
        raise EnvelopeError("truncated header")
    h = data[:HEADER]
    version, kdf, log2n, reserved1 = h[8], h[9], h[10], h[11]
    r, p, chunk = struct.unpack(">III", h[12:24])
    salt, prefix, reserved2 = h[24:56], h[56:63], h[63]
    if version != 1 or kdf not in (0, 1) or chunk != CHUNK:
        raise EnvelopeError("unsupported")
    if reserved1 or reserved2:
        raise EnvelopeError("reserved bytes")
    if kdf == 0 and (log2n, r, p) != (0, 0, 0):
        raise EnvelopeError("scrypt costs in a key-file envelope")
    if kdf == 1:
        n = 1 << log2n
        if not (1 <= log2n <= 22 and 1 <= r <= 32 and 1 <= p <= 16 and r * n <= 1 << 23 and r * p * n <= 1 << 25):
            raise EnvelopeError("scrypt costs out of limits")
    return {"header": h, "kdf": kdf, "log2n": log2n, "r": r, "p": p, "salt": salt, "prefix": prefix}


def file_key(hdr, passphrase=None, raw_key=None):
    if hdr["kdf"] == 1:
        n, r, p = 1 << hdr["log2n"], hdr["r"], hdr["p"]
        ikm = hashlib.scrypt(passphrase, salt=hdr["salt"], n=n, r=r, p=p, maxmem=128 * r * (n + p + 2) + (1 << 20), dklen=32)
    else:
        assert len(raw_key) == 32
        ikm = raw_key
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=hdr["salt"], info=INFO).derive(ikm)


def nonce(prefix, counter, last):
    return prefix + struct.pack(">I", counter) + (b"\x01" if last else b"\x00")


def layout(size):
    """[(offset, sealed length)] of every chunk, from the file size alone."""
    body = size - HEADER
    if body < TAG:
        raise EnvelopeError("truncated: no chunk")
    full, rest = divmod(body, SEALED)
    if 0 < rest < TAG:
        raise EnvelopeError("size fits no chunk")
    lengths = [SEALED] * full + ([rest] if rest else [])
    return [(HEADER + i * SEALED, length) for i, length in enumerate(lengths)]


def decrypt(data, passphrase=None, raw_key=None):
    hdr = parse_header(data)
    chunks = layout(len(data))
    aead = AESGCM(file_key(hdr, passphrase, raw_key))
    out = bytearray()
    for i, (off, length) in enumerate(chunks):
        sealed = data[off:off + length]
        out += aead.decrypt(nonce(hdr["prefix"], i, i == len(chunks) - 1), sealed, hdr["header"])  # raises InvalidTag
    return bytes(out)


def encrypt(plaintext, salt, prefix, passphrase=None, raw_key=None, log2n=10, r=8, p=1):
    if raw_key is not None:
        kdf, log2n, r, p = 0, 0, 0, 0
    else:
        kdf = 1
    header = MAGIC + bytes([1, kdf, log2n, 0]) + struct.pack(">III", r, p, CHUNK) + salt + prefix + b"\x00"
    assert len(header) == HEADER
    hdr = parse_header(header)
    aead = AESGCM(file_key(hdr, passphrase, raw_key))
    pieces = [plaintext[i:i + CHUNK] for i in range(0, len(plaintext), CHUNK)] or [b""]
    out = bytearray(header)
    for i, piece in enumerate(pieces):
        out += aead.encrypt(nonce(prefix, i, i == len(pieces) - 1), piece, header)
    return bytes(out)


def plaintext_of(size):
    return bytes(i % 251 for i in range(size))


def secrets(vector):
    if vector["key"] == "passphrase":
        return {"passphrase": MANIFEST["passphrase"].encode()}
    return {"raw_key": bytes.fromhex(MANIFEST["key_file_hex"])}


@pytest.mark.parametrize("vector", MANIFEST["vectors"], ids=[v["file"] for v in MANIFEST["vectors"]])
def test_vector_decrypts_and_is_reproduced(vector):
    data = (DATA / vector["file"]).read_bytes()
    assert len(data) == vector["encrypted_size"]
    assert hashlib.sha256(data).hexdigest() == vector["encrypted_sha256"]
    plain = plaintext_of(vector["plaintext_size"])
    assert hashlib.sha256(plain).hexdigest() == vector["plaintext_sha256"]
    assert decrypt(data, **secrets(vector)) == plain
    hdr = parse_header(data)
    assert hdr["salt"].hex() == vector["salt"] and hdr["prefix"].hex() == vector["nonce_prefix"]
    s = MANIFEST["scrypt"]
    again = encrypt(plain, hdr["salt"], hdr["prefix"], log2n=s["log2_n"], r=s["r"], p=s["p"], **secrets(vector))
    assert again == data
    expected_chunks = max(1, -(-len(plain) // CHUNK))
    assert len(data) == HEADER + len(plain) + TAG * expected_chunks


def test_tampering_is_caught():
    vector = next(v for v in MANIFEST["vectors"] if v["file"] == "200k.enc")
    data = (DATA / vector["file"]).read_bytes()
    key = secrets(vector)
    assert decrypt(data, **key) == plaintext_of(vector["plaintext_size"])

    def rejected(bad):
        with pytest.raises((InvalidTag, EnvelopeError)):
            decrypt(bad, **key)

    flipped = bytearray(data)
    flipped[HEADER + SEALED + 7] ^= 1
    rejected(bytes(flipped))
    swapped = data[:HEADER] + data[HEADER + SEALED:HEADER + 2 * SEALED] + data[HEADER:HEADER + SEALED] + data[HEADER + 2 * SEALED:]
    rejected(swapped)
    rejected(data[:HEADER + 3 * SEALED])  # the last chunk dropped at a chunk boundary
    rejected(data[:-1])
    rejected(data + data[HEADER:HEADER + SEALED])  # a chunk appended
    rejected(data + b"\x00")
    for at in range(HEADER):
        header = bytearray(data)
        header[at] ^= 0x01
        rejected(bytes(header))
    with pytest.raises(InvalidTag):
        decrypt(data, passphrase=b"not the passphrase")
