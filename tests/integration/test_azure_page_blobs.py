"""Azure page blobs as images, against Azurite (tests/sim/azure: the emulator's own blob service,
SharedKey and SAS as it checks them): an http(s) URL whose probe answers x-ms-blob-type: PageBlob
is read sparsely - Get Page Ranges for the allocation map, ranged GETs of only the written pages,
Content-MD5 checked - and the fixed VHD inside is read by the VHD driver."""
import datetime
import json
import os
import random
import time

import pytest

from conftest import MiB, hsdk, qemu_img, write_pattern

PAGE = 512


def fixed_vhd(tmp_path, size, seed):
    """A raw image of `size` bytes with data in a few uneven places, and the same as a fixed VHD
    (whole MiB, as Azure wants it)."""
    raw = tmp_path / "disk.raw"
    data = bytearray(size)
    rng = random.Random(seed)
    for start, length in [(0, 70_000), (3 * MiB + 4096, 300_000), (9 * MiB, 1_500_000)]:
        data[start:start + length] = rng.randbytes(length)
    raw.write_bytes(bytes(data))
    vhd = tmp_path / "disk.vhd"
    qemu_img("convert", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed,force_size=on", raw, vhd)
    return raw, vhd


def upload(azurite, container, name, path):
    """The file as a page blob holding only its non-zero pages; returns the written byte count."""
    data = path.read_bytes()
    assert len(data) % PAGE == 0
    azurite.make_page_blob(container, name, data)
    return sum(e - s + 1 for s, e in azurite.page_ranges(container, name))  # inclusive ends, as Azure gives them


def data_gets(azurite, since, blob):
    return [r for r in azurite.requests(since) if r["method"] == "GET" and r["path"].endswith(blob) and "comp" not in r["query"]]


@pytest.fixture(scope="module")
def container(azurite):
    azurite.create_container("disks")
    return "disks"


def test_a_fixed_vhd_in_a_page_blob_converts_reading_only_written_pages(azurite, container, tmp_path):
    raw, vhd = fixed_vhd(tmp_path, 16 * MiB, seed=7)
    written = upload(azurite, container, "web01-os.vhd", vhd)
    url = azurite.sas_url(container, "web01-os.vhd")
    since = time.time() - 0.5
    out = tmp_path / "out.qcow2"
    hsdk("convert", "-O", "qcow2", url, str(out))
    qemu_img("compare", "-f", "raw", "-F", "qcow2", raw, out)
    gets = data_gets(azurite, since, "web01-os.vhd")
    pages = azurite.page_ranges(container, "web01-os.vhd")
    fetched = 0
    for g in gets:
        rng = g["range"] or g["x_ms_range"]
        assert rng, g  # never the whole blob
        a, b = (int(x) for x in rng.split("=")[1].split("-"))
        fetched += b - a + 1
        # Every byte asked for lies in a written page: holes are never fetched.
        assert any(s <= a and b <= e for s, e in pages), (a, b, pages)
    # The written pages, plus what probing reads a second time (the head and the footer).
    assert fetched <= written + 128 * 1024, (fetched, written)
    lists = [r for r in azurite.requests(since) if r["query"].get("comp") == "pagelist"]
    assert lists, "the allocation map came from Get Page Ranges"
    info = json.loads(hsdk("info", "--output=json", url).stdout)
    assert info["format"] in ("vpc", "vhd") and info["virtual-size"] == 16 * MiB


def test_map_of_a_page_blob_shows_its_holes(azurite, container, tmp_path):
    raw, vhd = fixed_vhd(tmp_path, 16 * MiB, seed=8)
    upload(azurite, container, "map.vhd", vhd)
    mapped = json.loads(hsdk("map", "--output=json", azurite.sas_url(container, "map.vhd")).stdout)
    data = sum(m["length"] for m in mapped if m["data"])
    assert 0 < data < 4 * MiB, mapped


def test_shared_key_from_the_environment(azurite, container, tmp_path):
    raw, vhd = fixed_vhd(tmp_path, 8 * MiB, seed=9)
    upload(azurite, container, "keyed.vhd", vhd)
    url = azurite.blob_url(container, "keyed.vhd")
    env = dict(os.environ, AZURE_STORAGE_ACCOUNT=azurite.account, AZURE_STORAGE_KEY=azurite.key)
    out = tmp_path / "out.raw"
    hsdk("convert", "-O", "raw", url, str(out), env=env)
    qemu_img("compare", "-f", "raw", "-F", "raw", raw, out)
    # Without the key: refused, as Azurite refuses anonymous reads.
    bare = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_")}
    p = hsdk("run", "image.info", "-r", json.dumps({"path": url}), "--json", env=bare, check=False)
    assert p.returncode != 0 and json.loads(p.stdout)["error"]["code"] in ("auth_failed", "not_found"), p.stdout
    assert azurite.key not in p.stdout + p.stderr


def test_an_expired_sas_is_auth_failed_and_the_signature_is_never_shown(azurite, container, tmp_path):
    raw, vhd = fixed_vhd(tmp_path, 4 * MiB, seed=10)
    upload(azurite, container, "expired.vhd", vhd)
    url = azurite.sas_url(container, "expired.vhd", expiry=datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1))
    sig = url.split("sig=")[1].split("&")[0]
    out = tmp_path / "out.raw"
    p = hsdk("run", "image.convert", "-r", json.dumps({"source": url, "destination": str(out), "output_format": "raw"}), "--json",
             check=False)
    assert p.returncode != 0
    e = json.loads(p.stdout)["error"]
    assert e["code"] == "auth_failed", e
    assert sig not in p.stdout + p.stderr and "sig=" not in p.stdout + p.stderr
    assert not out.exists()


def test_validate_for_azure(tmp_path):
    raw = write_pattern(tmp_path / "d.raw", 8 * MiB, seed=3)
    good = tmp_path / "good.vhd"
    hsdk("convert", "-f", "raw", "-O", "vhd", "-o", "subformat=fixed,azure=on", str(raw), str(good))
    r = json.loads(hsdk("validate", "--target", "azure", str(good), "--json").stdout)
    assert r["ok"] and not r["problems"], r
    dynamic = tmp_path / "dynamic.vhd"
    qemu_img("convert", "-f", "raw", "-O", "vpc", "-o", "subformat=dynamic", raw, dynamic)
    p = hsdk("validate", "--target", "azure", str(dynamic), "--json", check=False)
    r = json.loads(p.stdout)
    assert p.returncode != 0 and not r["ok"] and any("fixed" in x for x in r["problems"]), r
    odd = tmp_path / "odd.raw"
    odd.write_bytes(b"\0" * (MiB + 512))
    odd_vhd = tmp_path / "odd.vhd"
    qemu_img("convert", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed,force_size=on", odd, odd_vhd)
    r = json.loads(hsdk("validate", "--target", "azure", str(odd_vhd), "--json", check=False).stdout)
    assert not r["ok"] and any("MiB" in x for x in r["problems"]), r
    qcow = tmp_path / "d.qcow2"
    qemu_img("convert", "-f", "raw", "-O", "qcow2", raw, qcow)
    r = json.loads(hsdk("validate", "--target", "azure", str(qcow), "--json", check=False).stdout)
    assert not r["ok"] and any("VHD" in x for x in r["problems"]), r


def test_a_range_whose_content_md5_does_not_match_is_refetched_then_refused(tmp_path):
    """Fixture (shaped like Get Blob / Get Page Ranges of the Blob service REST reference): a page
    blob whose data answer carries a Content-MD5 that does not match its bytes; Azurite always
    sends the right one, so this is served from the loopback fixture server."""
    import base64
    import hashlib
    from fixture_server import FixtureServer, Response, Route
    size = 2 * MiB
    data = os.urandom(4096)

    def blob(r):
        rng = r.headers.get("range", "")
        a, b = (int(x) for x in rng.split("=")[1].split("-"))
        body = (data + bytes(size))[a:b + 1]
        h = {"x-ms-blob-type": "PageBlob", "Content-Range": f"bytes {a}-{b}/{size}", "Content-Type": "application/octet-stream"}
        if r.headers.get("x-ms-range-get-content-md5") == "true":
            h["Content-MD5"] = base64.b64encode(hashlib.md5(b"not these bytes").digest()).decode()
        return Response(206, h, body)

    pagelist = ('<?xml version="1.0" encoding="utf-8"?><PageList><PageRange><Start>0</Start><End>4095</End></PageRange>'
                '</PageList>')
    routes = [Route("GET", r"^/acct/c/d\.img$", Response(200, {"Content-Type": "application/xml"}, pagelist),
                    when=lambda r: r.query.get("comp") == "pagelist"),
              Route("GET", r"^/acct/c/d\.img$", blob)]
    with FixtureServer(routes) as srv:
        url = f"{srv.url}/acct/c/d.img?sv=2022-11-02&sr=b&sp=r&sig=c2VjcmV0LXNpZw%3D%3D"
        p = hsdk("run", "image.convert", "-r", json.dumps({"source": url, "source_format": "raw", "destination": str(tmp_path / "o.raw"),
                                                            "output_format": "raw"}), "--json", check=False)
        e = json.loads(p.stdout)["error"]
        assert e["code"] == "checksum_mismatch" and "MD5" in e["message"], e
        assert "c2VjcmV0LXNpZw" not in p.stdout + p.stderr
        data_gets = [c for c in srv.calls if "comp" not in c.query and c.headers.get("range") != "bytes=0-0"]
        assert len(data_gets) == 3, [c.headers.get("range") for c in data_gets]
    assert not (tmp_path / "o.raw").exists()
