"""Images read from http:// and https:// URLs (Range requests, like qemu-img's curl driver), against
the loopback RangeServer of range_server.py - a real HTTP/1.1 server on 127.0.0.1 that counts the
bytes and connections it serves and can be told to misbehave. Judged by qemu-img on the local
files, and by the server's own byte counts: a sparse image is read by its metadata and allocated
data only."""
import json
import os
import shutil
import subprocess

import pytest

from conftest import MiB, assert_qemu_identical, hsdk, qemu_img, write_pattern
from range_server import RangeServer

VIRTUAL = 64 * MiB
DATA = 6 * MiB

# (file name, qemu-img -O, -o options); every format we read, in the shapes qemu-img writes.
FORMATS = [
    ("d.qcow2", "qcow2", []),
    ("d-compressed.qcow2", "qcow2", ["-c"]),
    ("d.vmdk", "vmdk", []),
    ("d-stream.vmdk", "vmdk", ["-o", "subformat=streamOptimized"]),
    ("d.vhd", "vpc", []),
    ("d.vhdx", "vhdx", []),
    ("d.vdi", "vdi", []),
]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """A 64 MiB disk with 6 MiB of data at its start, in every format, in one served folder."""
    root = tmp_path_factory.mktemp("served")
    raw = root / "d.raw"
    write_pattern(raw, DATA, seed=11)
    with open(raw, "r+b") as f:
        f.truncate(VIRTUAL)
    for name, fmt, extra in FORMATS:
        opts = [e for e in extra if e != "-c"]
        qemu_img("convert", "-f", "raw", "-O", fmt, *(["-c"] if "-c" in extra else []), *opts, raw, root / name)
    return root


@pytest.fixture
def server(images):
    with RangeServer(images) as srv:
        yield srv


def error_text(p):
    return p.stdout + p.stderr


REMOTE_WINDOW = 16  # reads kept in flight ahead of a conversion from a URL (ConvertOptions::requests_in_flight)


def op_error(operation, request):
    """Runs an operation that must fail; returns (error code, message) as `hsdk run --json` prints them."""
    p = hsdk("run", operation, "-r", json.dumps(request), "--json", check=False)
    assert p.returncode != 0, p.stdout
    e = json.loads(p.stdout)["error"]
    return e["code"], e["message"]


@pytest.mark.parametrize("name", [n for n, _, _ in FORMATS])
def test_convert_from_url_equals_the_disk_and_reads_little_more_than_the_file(server, images, tmp_path, name):
    out = tmp_path / "out.qcow2"
    hsdk("convert", "-O", "qcow2", server.url(name), out)
    assert_qemu_identical(out, "qcow2", images / "d.raw", "raw")
    file_size = os.path.getsize(images / name)
    # Metadata read while probing and opening, plus read-ahead past the last grain, stay under 2 MiB.
    assert server.bytes_sent <= file_size + 2 * MiB, (server.bytes_sent, file_size)
    assert server.bytes_sent < VIRTUAL // 4
    assert all(r["status"] == 206 for r in server.requests), server.statuses()
    # At most one connection per request in flight: the read-ahead window (16 for a URL) and the
    # workers' own reads of metadata.
    assert server.connections <= REMOTE_WINDOW + 4


@pytest.mark.parametrize("name", ["d.qcow2", "d.vhdx", "d-stream.vmdk"])
def test_info_map_check_and_compare_read_urls(server, images, name):
    url = server.url(name)
    remote = json.loads(hsdk("info", "--json", url).stdout)
    local = json.loads(hsdk("info", "--json", images / name).stdout)
    assert remote["filename"] == url
    assert "actual-size" not in remote and "actual-size" in local  # as qemu-img: unknown behind a URL
    assert "disk size: unavailable" in hsdk("info", url).stdout
    for key in ("format", "virtual-size", "cluster-size"):
        assert remote.get(key) == local.get(key), key
    # Extent file names differ (URLs against paths); everything else the format tells is the same.
    def details(i):
        data = dict(i.get("format-specific", {}).get("data", {}))
        data.pop("extents", None)
        return data
    assert details(remote) == details(local)
    # info reads metadata only, never the data.
    assert server.bytes_sent < 2 * MiB, server.bytes_sent
    remote_map = json.loads(hsdk("map", "--output=json", url).stdout)
    local_map = json.loads(hsdk("map", "--output=json", images / name).stdout)
    assert [(e["start"], e["length"], e["data"], e["zero"]) for e in remote_map] == \
        [(e["start"], e["length"], e["data"], e["zero"]) for e in local_map]
    check = json.loads(hsdk("check", "--output=json", url).stdout)
    assert check["filename"] == url and check.get("corruptions", 0) == 0 and check.get("leaks", 0) == 0
    assert hsdk("compare", url, images / "d.raw", "-F", "raw").returncode == 0


def test_raw_over_http_is_read_whole_and_named(server, images, tmp_path):
    out = tmp_path / "out.vhdx"
    hsdk("convert", "-f", "raw", "-O", "vhdx", server.url("d.raw"), out)
    assert_qemu_identical(out, "vhdx", images / "d.raw", "raw")
    # Nothing tells a remote raw file's holes: every byte is fetched, once.
    assert VIRTUAL <= server.bytes_sent <= VIRTUAL + 2 * MiB
    # Connections are reused: many requests, a connection per request in flight at most.
    assert len(server.requests) >= 32 and server.connections <= REMOTE_WINDOW + 4, (len(server.requests), server.connections)


def test_backing_files_and_extents_resolve_inside_the_url_folder(tmp_path):
    root = tmp_path / "srv"
    root.mkdir()
    base = write_pattern(root / "base.raw", 8 * MiB, seed=3)
    qemu_img("convert", "-f", "raw", "-O", "qcow2", base, root / "base.qcow2")
    qemu_img("create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", root / "top.qcow2")
    subprocess.run(["qemu-io", "-c", "write -P 0x77 1M 64k", root / "top.qcow2"], check=True, capture_output=True)
    expected = tmp_path / "expected.raw"
    qemu_img("convert", "-O", "raw", root / "top.qcow2", expected)
    # A flat VMDK: a descriptor naming its extent file.
    qemu_img("convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=monolithicFlat", base, root / "flat.vmdk")
    # Hostile images naming files outside their folder.
    qemu_img("create", "-f", "qcow2", "-u", "-b", "/etc/passwd", "-F", "raw", root / "abs.qcow2", "8M")
    qemu_img("create", "-f", "qcow2", "-u", "-b", "../base.qcow2", "-F", "qcow2", root / "up.qcow2", "8M")
    with RangeServer(root) as srv:
        out = tmp_path / "top.raw"
        hsdk("convert", "-O", "raw", srv.url("top.qcow2"), out)
        assert_qemu_identical(out, "raw", expected, "raw")
        info = json.loads(hsdk("info", "--json", "--backing-chain", srv.url("top.qcow2")).stdout)
        assert [i["filename"] for i in info] == [srv.url("top.qcow2"), srv.url("base.qcow2")]
        flat_out = tmp_path / "flat.raw"
        hsdk("convert", "-O", "raw", srv.url("flat.vmdk"), flat_out)
        assert_qemu_identical(flat_out, "raw", base, "raw")
        for name, what in (("abs.qcow2", "absolute path"), ("up.qcow2", "'..'")):
            code, message = op_error("image.info", {"path": srv.url(name)})
            assert code == "permission_denied" and what in message, message
        assert not any(r["name"].endswith("passwd") for r in srv.requests)


def test_a_server_ignoring_range_is_an_error_before_the_object_is_sent(server, tmp_path):
    server.ignore_range = True
    out = tmp_path / "out.qcow2"
    p = hsdk("convert", "-f", "raw", "-O", "qcow2", server.url("d.raw"), out, check=False)
    assert p.returncode != 0
    assert "ignores Range" in error_text(p)
    assert not out.exists() and not os.listdir(tmp_path)
    # The answer was abandoned at its headers: of the 64 MiB object the server got out no more than
    # the socket buffers between us took (a few MiB on loopback).
    assert server.bytes_sent < VIRTUAL // 4, server.bytes_sent
    code, _ = op_error("image.info", {"path": server.url("d.vhdx")})
    assert code == "unsupported"


def test_missing_objects_and_refused_credentials_map_to_error_codes(server, tmp_path):
    p = hsdk("info", server.url("nothing-here.qcow2"), check=False)
    assert p.returncode != 0 and "404" in error_text(p) and "nothing-here.qcow2" in error_text(p)
    assert op_error("image.info", {"path": server.url("nothing-here.qcow2")})[0] == "not_found"
    server.require_header = ("Authorization", "Bearer s3cret-token")
    header_file = tmp_path / "headers"
    header_file.write_text("Authorization: Bearer wrong-token\n")
    p = hsdk("info", "--insecure", "--header-file", header_file, server.url("d.qcow2"), check=False)
    assert p.returncode != 0 and "401" in error_text(p) and "wrong-token" not in error_text(p)
    code, message = op_error("image.convert", {"source": server.url("d.qcow2"), "destination": str(tmp_path / "o.raw"),
                                               "output_format": "raw", "insecure": True, "headers_file": str(header_file)})
    assert code == "auth_failed" and "wrong-token" not in message
    assert not (tmp_path / "o.raw").exists()
    server.require_header = None
    server.forbidden_paths = {"d.vhdx"}
    assert op_error("image.check", {"path": server.url("d.vhdx")})[0] == "auth_failed"


def test_headers_authenticate_and_need_insecure_over_plain_http(server, images, tmp_path):
    server.require_header = ("Authorization", "Bearer s3cret-token")
    url = server.url("d.vhdx")
    p = hsdk("info", "--header", "Authorization: Bearer s3cret-token", url, check=False)
    assert p.returncode != 0 and "plain http://" in error_text(p) and "s3cret" not in error_text(p)
    assert op_error("image.info", {"path": url, "headers": ["X-Api-Key: k"]})[0] == "invalid_argument"
    assert len(server.requests) == 0  # refused before anything was sent
    header_file = tmp_path / "headers"
    header_file.write_text("# a token kept out of the process arguments\nAuthorization: Bearer s3cret-token\n")
    out = tmp_path / "out.raw"
    p = hsdk("convert", "-v", "--insecure", "--header-file", header_file, "-O", "raw", url, out)
    assert "s3cret" not in error_text(p)
    assert_qemu_identical(out, "raw", images / "d.raw", "raw")
    assert all(r["headers"].get("Authorization") == "Bearer s3cret-token" for r in server.requests)


def test_transient_failures_are_retried(server, images, tmp_path):
    server.fail_next = 2
    server.reset_next = 2
    out = tmp_path / "out.qcow2"
    hsdk("convert", "-O", "qcow2", server.url("d.vhdx"), out)
    assert_qemu_identical(out, "qcow2", images / "d.raw", "raw")
    statuses = server.statuses()
    assert statuses.count(503) == 2, statuses


def test_a_stalled_answer_is_given_up_after_the_timeout_and_retried(server, images, tmp_path):
    server.stall_next = 1
    server.stall_seconds = 4
    out = tmp_path / "out.qcow2"
    hsdk("convert", "--timeout", "1", "-O", "qcow2", server.url("d.vhdx"), out)
    assert_qemu_identical(out, "qcow2", images / "d.raw", "raw")
    ranges = [r["range"] for r in server.requests]
    assert len(ranges) > len(set(ranges))  # the stalled request was sent again


def test_a_server_that_keeps_failing_is_an_error_naming_it(server, tmp_path):
    server.fail_next = 1000
    code, message = op_error("image.info", {"path": server.url("d.qcow2")})
    assert code == "remote_error" and "503" in message
    assert len(server.requests) == 5  # the first try and four more with backoff, then given up


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-days", "2", "-keyout", d / "key.pem", "-out", d / "cert.pem"],
                   check=True, capture_output=True)
    return d / "cert.pem", d / "key.pem"


def test_https_verifies_the_certificate_by_default(images, certificate, tmp_path):
    cert, key = certificate
    with RangeServer(images, tls=(str(cert), str(key))) as srv:
        url = srv.url("d.qcow2")
        assert url.startswith("https://")
        code, message = op_error("image.info", {"path": url})
        assert code == "tls_error", message
        out = tmp_path / "out.raw"
        hsdk("convert", "--ca-file", cert, "-O", "raw", url, out)
        assert_qemu_identical(out, "raw", images / "d.raw", "raw")
        # Headers travel over https without --insecure.
        p = hsdk("info", "--ca-file", cert, "--header", "X-Api-Key: k", url)
        assert "qcow2" in p.stdout
        p = hsdk("info", "-k", url)
        assert "qcow2" in p.stdout


def test_a_distant_server_gets_a_window_of_reads_in_flight(server, images, tmp_path):
    """Every request waits 20 ms at the server (a WAN round trip): the conversion keeps a window
    of range reads in flight ahead of it, grown from 4 while it had to wait for them, and the
    result is the same disk."""
    server.latency_seconds = 0.02
    server.reset_counters()
    out = tmp_path / "out.qcow2"
    hsdk("convert", "-f", "raw", "-O", "qcow2", server.url("d.raw"), out)
    assert_qemu_identical(out, "qcow2", images / "d.raw", "raw")
    assert server.peak_active > 4, server.peak_active
    assert server.peak_active <= REMOTE_WINDOW + 4, server.peak_active
    assert all(r["status"] == 206 for r in server.requests), server.statuses()

    # --requests-in-flight 1 turns the read-ahead off: one worker, one request at a time.
    server.reset_counters()
    out1 = tmp_path / "out1.qcow2"
    hsdk("convert", "-f", "raw", "-O", "qcow2", "--threads", "1", "--requests-in-flight", "1", server.url("d.raw"), out1)
    assert_qemu_identical(out1, "qcow2", images / "d.raw", "raw")
    assert server.peak_active <= 2, server.peak_active
