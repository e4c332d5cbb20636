"""glance:// images read from the real Glance: Debian's glance-api (package glance-api, installed by
scripts/setup; run standalone by glance_sim.py with SQLite and its filesystem store), not a
fixture. Keystone is still the fixture of openstack_fixtures.py; its catalog's RegionOne image
endpoints point at the real Glance (image_endpoint_override), so hsdk authenticates as usual and
then talks to Glance itself: raw images stream with Glance's own md5 checksum and os_hash_value
(sha512) verified, qcow2 images are read by Range requests. Without glance-api installed these
tests fail (glance_sim says to run scripts/setup); they are never skipped."""
import hashlib
import json
import re
import uuid
from types import SimpleNamespace

import pytest

from conftest import MiB, assert_qemu_identical, hsdk, list_temporaries, qemu_img, write_pattern
from conftest_openstack import glance, openstack_server  # noqa: F401
from openstack_fixtures import OpenStackState, attach, os_env

SIZE = 20 * MiB
GLANCE_ROUTES = ("get_image", "list_images", "image_file", "delete_image")


def digests(path):
    md5, sha = hashlib.md5(), hashlib.sha512()
    with open(path, "rb") as f:
        for piece in iter(lambda: f.read(MiB), b""):
            md5.update(piece)
            sha.update(piece)
    return md5.hexdigest(), sha.hexdigest()


def run_op(state, operation, request, env):
    """A failing operation's error object (code, message), checked to show no secret."""
    p = hsdk("run", operation, "-r", json.dumps(request), "--json", check=False, env=env)
    text = p.stdout + p.stderr
    assert not any(s in text for s in [state.password, *state.tokens]), text
    assert p.returncode != 0, p.stdout
    return json.loads(p.stdout)["error"]


def file_requests(glance, image_id):
    """The statuses of Glance's answers to GET /v2/images/{id}/file, from its access log."""
    pattern = re.compile(rf'"GET /v2/images/{re.escape(image_id)}/file HTTP/1\.[01]" (\d{{3}})')
    return [int(m.group(1)) for m in pattern.finditer(glance.log.read_text(errors="replace"))]


@pytest.fixture(scope="module")
def images(glance, tmp_path_factory):
    """A raw image of 20 MiB (data, written zeros and holes) and the same disk as qcow2, both in
    the real Glance."""
    d = tmp_path_factory.mktemp("glance-disks")
    raw = write_pattern(d / "disk.raw", SIZE, seed=9292)
    qcow2 = d / "disk.qcow2"
    qemu_img("convert", "-f", "raw", "-O", "qcow2", raw, qcow2)
    return SimpleNamespace(raw_path=raw, qcow2_path=qcow2, raw=glance.upload("hsdk-real-raw", raw),
                           qcow2=glance.upload("hsdk-real-qcow2", qcow2, disk_format="qcow2"))


@pytest.fixture
def keystone(openstack_server, glance):
    """The fixture Keystone (a fresh state) whose catalog sends image calls to the real Glance;
    afterwards, proof that the fixture's own Glance routes were never called."""
    state = OpenStackState()
    state.image_endpoint_override = glance.url
    attach(state, openstack_server)
    yield state
    assert not any(state.calls[k] for k in GLANCE_ROUTES), dict(state.calls)
    assert not openstack_server.unmatched, openstack_server.unmatched


def test_raw_image_streams_with_glances_checksums(glance, images, keystone, tmp_path):
    md5, sha512 = digests(images.raw_path)
    img = glance.image(images.raw["id"])
    assert (img["status"], img["size"], img["checksum"], img["os_hash_algo"], img["os_hash_value"]) == \
        ("active", SIZE, md5, "sha512", sha512), img
    env = os_env(keystone)
    out = tmp_path / "out.qcow2"
    hsdk("convert", f"glance://{img['id']}", out, "-O", "qcow2", env=env)
    assert_qemu_identical(images.raw_path, "raw", out, "qcow2")
    info = json.loads(hsdk("info", f"glance://{img['id']}", "--json", env=env).stdout)
    assert info["format"] == "raw" and info["virtual-size"] == SIZE, info
    assert file_requests(glance, img["id"]), "Glance's log shows no GET of the image data"
    assert keystone.tokens_issued >= 1 and keystone.calls["auth_tokens"] >= 1


def test_qcow2_image_is_read_by_ranges(glance, images, keystone, tmp_path):
    img = images.qcow2
    assert img["disk_format"] == "qcow2" and img["size"] == images.qcow2_path.stat().st_size
    env = os_env(keystone)
    info = json.loads(hsdk("info", f"glance://{img['id']}", "--json", env=env).stdout)
    assert info["format"] == "qcow2" and info["virtual-size"] == SIZE, info
    out = tmp_path / "out.raw"
    hsdk("convert", f"glance://{img['id']}", out, "-O", "raw", env=env)
    assert_qemu_identical(images.raw_path, "raw", out, "raw")
    statuses = file_requests(glance, img["id"])
    assert 206 in statuses, f"Glance answered no Range request for the qcow2 image: {statuses}"


def test_corrupted_stored_data_is_a_checksum_mismatch(glance, keystone, tmp_path):
    data = write_pattern(tmp_path / "small.raw", 4 * MiB, seed=404).read_bytes()
    img = glance.upload("hsdk-real-corrupt", data)
    try:
        stored = glance.stored_path(img["id"])
        bad = bytearray(stored.read_bytes())
        assert bytes(bad) == data, "the filesystem store does not hold the image as uploaded"
        bad[len(bad) // 2] ^= 0x5A
        stored.write_bytes(bad)
        status, served = glance.image_file(img["id"])
        assert status == 200 and served == bytes(bad)  # Glance itself serves the bad bytes
        env = os_env(keystone)
        out_dir = tmp_path / "out"
        out_dir.mkdir()
        out = out_dir / "out.raw"
        p = hsdk("convert", f"glance://{img['id']}", out, "-O", "raw", env=env, check=False)
        assert p.returncode != 0, p.stdout + p.stderr
        e = run_op(keystone, "image.convert", {"source": f"glance://{img['id']}", "destination": str(out),
                                               "output_format": "raw"}, env)
        assert e["code"] == "checksum_mismatch", e
        assert not out.exists() and not list_temporaries(out_dir), sorted(p.name for p in out_dir.iterdir())
    finally:
        glance.delete(img["id"])


def test_unknown_image_is_not_found(glance, keystone, tmp_path):
    missing = str(uuid.uuid4())
    status, _ = glance.image_file(missing)
    assert status == 404
    env = os_env(keystone)
    e = run_op(keystone, "image.info", {"path": f"glance://{missing}"}, env)
    assert e["code"] == "not_found", e
    out = tmp_path / "out.raw"
    e = run_op(keystone, "image.convert", {"source": f"glance://{missing}", "destination": str(out), "output_format": "raw"}, env)
    assert e["code"] == "not_found", e
    assert not out.exists()
