"""The GCP test infrastructure itself: fake-gcs-server (tests/sim/gcs) as the storage peer, and the
request/response fixtures of tests/integration/gcp_fixtures.py (OAuth 2.0 token endpoint with real
JWT checks, metadata server, Compute Engine, Cloud Build, the slow storage proxy), spoken to the
way a client would, with urllib. What these tests pin down is what test_gcp.py relies on."""
import base64
import gzip
import hashlib
import http.client
import io
import json
import os
import struct
import subprocess
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib

import pytest

from conftest import MiB, qemu_img, qemu_info
from conftest_gcp import GcpCloud, fake_gcs, pattern_disk  # noqa: F401
from gcp_fixtures import (EXPORT_STEP, GiB, JWT_BEARER, Attached, Instance, Nic, crc32_zeros, export_object, export_tar_gz,
                          make_disk, parse_filter, sign_jwt)


# ---- helpers -----------------------------------------------------------------------------------
def call(method, url, body=None, headers=None, token=None, timeout=60):
    """(status, {lower-case header: value}, body bytes); HTTP errors are answers too."""
    h = dict(headers or {})
    data = body
    if isinstance(body, (dict, list)):
        data = json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    if token:
        h["Authorization"] = "Bearer " + token
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def call_json(method, url, body=None, token=None, expect=200, headers=None):
    status, _, data = call(method, url, body, headers, token)
    assert status == expect, (method, url, status, data[:800])
    return json.loads(data) if data else None


def form_post(url, fields):
    return call("POST", url, urllib.parse.urlencode(fields).encode(), {"Content-Type": "application/x-www-form-urlencoded"})


def crc32c(data):
    """CRC-32C (Castagnoli), as GCS's crc32c, computed bitwise from the reflected polynomial."""
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
        table.append(c)
    crc = 0xFFFFFFFF
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def token_for(cloud):
    status, _, body = form_post(cloud.state.token_uri, {"grant_type": JWT_BEARER, "assertion": sign_jwt(cloud.key)})
    assert status == 200, body
    return json.loads(body)["access_token"]


@pytest.fixture
def cloud(fake_gcs, tmp_path):
    c = GcpCloud(fake_gcs, tmp_path, page_size=1)
    yield c
    c.stop()


def plant(cloud, tmp_path):
    """web01 (us-central1-a, e2-standard-2, UEFI, secure boot; a data disk listed first), db01
    (europe-west1-b, custom-4-8192, TERMINATED), app01 (us-central1-b, n2-custom-2-4096)."""
    st = cloud.state
    pattern = pattern_disk(tmp_path / "planted.raw", seed=77)
    boot = make_disk(st, "web01", "us-central1-a", path=pattern, guest_os_features=["UEFI_COMPATIBLE", "GVNIC"])
    data = make_disk(st, "web01-data", "us-central1-a", data=b"\x55" * 4096)
    st.add_instance(Instance("web01", [Attached(data, index=1, interface="NVME"), Attached(boot, boot=True, index=0)],
                             secure_boot=True, nics=[Nic(external_ip="34.1.2.3", nic_type="GVNIC")]))
    db = make_disk(st, "db01", "europe-west1-b", data=b"db" * 100, licenses=[])
    st.add_instance(Instance("db01", [Attached(db, boot=True)], machine_type="custom-4-8192", status="TERMINATED"))
    app = make_disk(st, "app01", "us-central1-b", data=b"app" * 100)
    st.add_instance(Instance("app01", [Attached(app, boot=True)], machine_type="n2-custom-2-4096"))
    return pattern


# ---- fake-gcs-server -------------------------------------------------------------------------------
def test_fake_gcs_ranges_metadata_and_delete(fake_gcs):
    fake_gcs.create_bucket("hsdk-sim-ranges")
    data = os.urandom(300_000)
    meta = fake_gcs.upload("hsdk-sim-ranges", "dir/disk one.raw", data)
    assert meta["size"] == "300000"  # int64 as a decimal string
    path = fake_gcs.object_path("hsdk-sim-ranges", "dir/disk one.raw")
    assert "%2F" in path
    status, h, body = fake_gcs.request("GET", path)
    m = json.loads(body)
    assert status == 200 and m["kind"] == "storage#object" and m["size"] == "300000"
    assert base64.b64decode(m["md5Hash"]) == hashlib.md5(data).digest()
    assert base64.b64decode(m["crc32c"]) == struct.pack(">I", crc32c(data))
    assert m["generation"].isdigit()
    # Media with a range: 206 and Content-Range; suffix and open ranges; past the end: 416.
    status, h, body = fake_gcs.request("GET", path + "?alt=media", headers={"Range": "bytes=1000-1999"})
    assert status == 206 and h["content-range"] == "bytes 1000-1999/300000" and body == data[1000:2000]
    assert h["x-goog-hash"] == f"crc32c={m['crc32c']},md5={m['md5Hash']}"
    assert h["x-goog-stored-content-length"] == "300000" and h["x-goog-stored-content-encoding"] == "identity"
    status, h, body = fake_gcs.request("GET", path + "?alt=media", headers={"Range": "bytes=299990-"})
    assert status == 206 and h["content-range"] == "bytes 299990-299999/300000" and body == data[-10:]
    status, h, body = fake_gcs.request("GET", path + "?alt=media", headers={"Range": "bytes=-5"})
    assert status == 206 and body == data[-5:]
    status, h, body = fake_gcs.request("GET", path + "?alt=media", headers={"Range": "bytes=299000-400000"})
    assert status == 206 and h["content-range"] == "bytes 299000-299999/300000"
    status, h, _ = fake_gcs.request("GET", path + "?alt=media", headers={"Range": "bytes=400000-400010"})
    assert status == 416 and h["content-range"] == "bytes */300000"
    status, _, body = fake_gcs.request("GET", "/download" + path + "?alt=media", headers={"Range": "bytes=0-9"})
    assert status == 206 and body == data[:10]
    status, _, body = fake_gcs.request("GET", path + "?alt=media")
    assert status == 200 and body == data
    # Unknown objects: Google's JSON error.
    status, _, body = fake_gcs.request("GET", fake_gcs.object_path("hsdk-sim-ranges", "nope"))
    assert status == 404 and json.loads(body)["error"]["errors"][0]["reason"] == "notFound"
    # Listing by prefix, then DELETE: 200 here (GCS answers 204), 404 the second time.
    assert fake_gcs.list("hsdk-sim-ranges", "dir/") == ["dir/disk one.raw"]
    status, _, body = fake_gcs.request("DELETE", path)
    assert status == 200, status
    status, _, _ = fake_gcs.request("DELETE", path)
    assert status == 404
    assert fake_gcs.list("hsdk-sim-ranges") == []


def test_fake_gcs_gzip_encoded_object_ignores_range(fake_gcs):
    fake_gcs.create_bucket("hsdk-sim-gzip")
    plain = os.urandom(50_000) + bytes(50_000)
    packed = gzip.compress(plain)
    meta = fake_gcs.upload("hsdk-sim-gzip", "disk.raw", packed, content_encoding="gzip")
    assert meta["contentEncoding"] == "gzip" and meta["size"] == str(len(packed))  # the stored (compressed) size
    path = fake_gcs.object_path("hsdk-sim-gzip", "disk.raw", media=True)
    # Decompressive transcoding: a Range is ignored, the whole decompressed body comes with 200.
    status, h, body = fake_gcs.request("GET", path, headers={"Range": "bytes=0-99"})
    assert status == 200 and body == plain and "content-range" not in h and "content-encoding" not in h
    assert h["x-goog-stored-content-encoding"] == "gzip"
    # Accepting gzip: the stored bytes, and then a Range applies to them.
    status, h, body = fake_gcs.request("GET", path, headers={"Accept-Encoding": "gzip"})
    assert status == 200 and body == packed and h["content-encoding"] == "gzip"
    status, h, body = fake_gcs.request("GET", path, headers={"Accept-Encoding": "gzip", "Range": "bytes=0-9"})
    assert status == 206 and body == packed[:10] and h["content-range"] == f"bytes 0-9/{len(packed)}"
    # A media upload with a Content-Encoding *header* is taken as transport compression: stored plain.
    status, _, body = fake_gcs.request("POST", "/upload/storage/v1/b/hsdk-sim-gzip/o?uploadType=media&name=t", packed,
                                       {"Content-Type": "application/octet-stream", "Content-Encoding": "gzip"})
    assert status == 200 and json.loads(body)["size"] == str(len(plain)) and "contentEncoding" not in json.loads(body)


# ---- tokens --------------------------------------------------------------------------------------
def test_jwt_bearer_grant_checks_the_signature_and_the_claims(cloud, tmp_path):
    st = cloud.state
    status, h, body = form_post(st.token_uri, {"grant_type": JWT_BEARER, "assertion": sign_jwt(cloud.key)})
    answer = json.loads(body)
    assert status == 200 and answer["token_type"] == "Bearer" and answer["expires_in"] == 3599, body
    assert answer["access_token"].startswith("ya29.") and st.tokens_issued("jwt_bearer") == 1
    # The key file is Google's shape.
    key = json.loads(cloud.key_path.read_text())
    assert key["type"] == "service_account" and key["token_uri"] == st.token_uri
    assert key["private_key"].startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8
    assert oct(cloud.key_path.stat().st_mode & 0o777) == "0o600"
    refused = {
        "forged": sign_jwt(st.make_service_account_key(forged=True)),
        "unregistered": sign_jwt(st.make_service_account_key(email="someone@else.iam.gserviceaccount.com", registered=False)),
        "audience": sign_jwt(cloud.key, claims={"aud": "https://oauth2.googleapis.com/token"}),
        "too long": sign_jwt(cloud.key, lifetime=7200),
        "expired": sign_jwt(cloud.key, now=time.time() - 4000),
        "no scope": sign_jwt(cloud.key, claims={"scope": "https://www.googleapis.com/auth/devstorage.read_only"}),
        "alg": sign_jwt(cloud.key, header={"alg": "RS512"}),
        "tampered": sign_jwt(cloud.key)[:-6] + "AAAAAA",
        "not a jwt": "not-a-jwt",
    }
    for what, assertion in refused.items():
        status, _, body = form_post(st.token_uri, {"grant_type": JWT_BEARER, "assertion": assertion})
        err = json.loads(body)
        assert status == 400 and err["error"] in ("invalid_grant", "invalid_scope"), (what, status, body)
    status, _, body = form_post(st.token_uri, {"grant_type": JWT_BEARER, "assertion": refused["forged"]})
    assert json.loads(body) == {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
    status, _, body = form_post(st.token_uri, {"grant_type": "password", "username": "x"})
    assert status == 400 and json.loads(body)["error"] == "unsupported_grant_type"
    assert st.tokens_issued() == 1
    assert [r["outcome"] for r in st.token_requests].count("issued") == 1
    # Short-lived tokens expire: the API refuses them, a new one works.
    url = f"{cloud.url}/compute/v1/projects/{st.project}/zones"
    st.token_lifetime = 1
    status, _, body = form_post(st.token_uri, {"grant_type": JWT_BEARER, "assertion": sign_jwt(cloud.key)})
    assert json.loads(body)["expires_in"] == 1
    time.sleep(1.1)
    status, _, body = call("GET", url, token=json.loads(body)["access_token"])
    assert status == 401 and json.loads(body)["error"]["status"] == "UNAUTHENTICATED"
    st.token_lifetime = 3599
    fresh = token_for(cloud)
    assert call("GET", url, token=fresh)[0] == 200
    st.expire_tokens()
    assert call("GET", url, token=fresh)[0] == 401


def test_refresh_token_grant_and_the_metadata_server(cloud):
    st = cloud.state
    user = st.make_authorized_user(cloud.tmp / "adc.json")
    assert json.loads((cloud.tmp / "adc.json").read_text())["type"] == "authorized_user"
    ok = {"grant_type": "refresh_token", "client_id": user["client_id"], "client_secret": user["client_secret"],
          "refresh_token": user["refresh_token"]}
    status, _, body = form_post(st.token_uri, ok)
    assert status == 200 and json.loads(body)["token_type"] == "Bearer", body
    status, _, body = form_post(st.token_uri, dict(ok, refresh_token="1//0wrong"))
    assert status == 400 and json.loads(body)["error"] == "invalid_grant"
    status, _, body = form_post(st.token_uri, dict(ok, client_secret="wrong"))
    assert status == 401 and json.loads(body)["error"] == "invalid_client"
    assert st.tokens_issued("refresh_token") == 1
    # The metadata server: the Metadata-Flavor header is required.
    md = cloud.url + "/computeMetadata/v1/instance/service-accounts/default/token"
    status, _, _ = call("GET", md)
    assert status == 403
    status, h, body = call("GET", md, headers={"Metadata-Flavor": "Google"})
    assert status == 200 and h["metadata-flavor"] == "Google" and json.loads(body)["token_type"] == "Bearer"
    assert call("GET", f"{cloud.url}/compute/v1/projects/{st.project}/zones", token=json.loads(body)["access_token"])[0] == 200
    status, _, body = call("GET", cloud.url + "/computeMetadata/v1/project/project-id", headers={"Metadata-Flavor": "Google"})
    assert status == 200 and body.decode() == st.project
    status, h, body = call("GET", cloud.url + "/", headers={"Metadata-Flavor": "Google"})
    assert status == 200 and h["metadata-flavor"] == "Google"
    st.metadata_enabled = False
    assert call("GET", md, headers={"Metadata-Flavor": "Google"})[0] == 404


# ---- Compute Engine ---------------------------------------------------------------------------------
def test_compute_refuses_without_a_valid_token_in_googles_shape(cloud):
    st = cloud.state
    url = f"{cloud.url}/compute/v1/projects/{st.project}/aggregated/instances"
    status, h, body = call("GET", url)
    err = json.loads(body)["error"]
    assert status == 401 and err["code"] == 401 and err["status"] == "UNAUTHENTICATED" and err["errors"][0]["reason"] == "required"
    assert h["www-authenticate"].startswith("Bearer")
    status, _, body = call("GET", url, token="ya29.made-up")
    err = json.loads(body)["error"]
    assert status == 401 and err["errors"][0]["reason"] == "authError" and "invalid authentication credentials" in err["message"]
    for path in ("/v1/projects/hsdk-test/builds/x", f"/compute/v1/projects/{st.project}/global/images"):
        assert call("GET", cloud.url + path)[0] == 401
    token = token_for(cloud)
    status, _, body = call("GET", f"{cloud.url}/compute/v1/projects/{st.project}/zones/us-central1-a/instances/nope", token=token)
    err = json.loads(body)["error"]
    assert status == 404 and err["status"] == "NOT_FOUND" and err["errors"][0]["reason"] == "notFound"
    assert "instances/nope" in err["message"]
    status, _, body = call("GET", f"{cloud.url}/compute/v1/projects/other-project/zones", token=token)
    assert status == 404
    st.forbidden = {"aggregated_instances"}
    status, _, body = call("GET", url, token=token)
    assert status == 403 and json.loads(body)["error"]["status"] == "PERMISSION_DENIED"
    st.forbidden = set()
    st.throttle = {"aggregated_instances": 1}
    status, _, body = call("GET", url, token=token)
    assert status == 429 and json.loads(body)["error"]["errors"][0]["reason"] == "rateLimitExceeded"
    assert call("GET", url, token=token)[0] == 200


def test_instances_are_paged_and_shaped_like_the_reference(cloud, tmp_path):
    plant(cloud, tmp_path)
    st = cloud.state
    token = token_for(cloud)
    base = f"{cloud.url}/compute/v1/projects/{st.project}"
    names, pages, token_q = [], 0, None
    while True:
        q = "?maxResults=500" + (f"&pageToken={urllib.parse.quote(token_q)}" if token_q else "")
        page = call_json("GET", base + "/aggregated/instances" + q, token=token)
        pages += 1
        assert page["kind"] == "compute#instanceAggregatedList"
        assert set(page["items"]) == {f"zones/{z}" for z in st.zones}
        for scope, entry in page["items"].items():
            if "instances" in entry:
                names += [i["name"] for i in entry["instances"]]
            else:
                assert entry["warning"]["code"] == "NO_RESULTS_ON_PAGE" and entry["warning"]["data"][0]["value"] == scope
        token_q = page.get("nextPageToken")
        if not token_q:
            break
    assert pages == 3 and sorted(names) == ["app01", "db01", "web01"]  # page_size 1
    assert call("GET", base + "/aggregated/instances?pageToken=garbage", token=token)[0] == 400
    filtered = call_json("GET", base + "/aggregated/instances?" + urllib.parse.urlencode({"filter": 'name = "db01"'}), token=token)
    assert filtered["items"]["zones/europe-west1-b"]["instances"][0]["name"] == "db01"
    assert parse_filter('(labels.created-by = "hypersdk") AND (name != x)') == [("labels.created-by", "=", "hypersdk"),
                                                                                ("name", "!=", "x")]
    zonal = call_json("GET", base + "/zones/us-central1-a/instances", token=token)
    assert [i["name"] for i in zonal["items"]] == ["web01"] and "nextPageToken" not in zonal
    vm = call_json("GET", base + "/zones/us-central1-a/instances/web01", token=token)
    assert vm["kind"] == "compute#instance" and vm["id"].isdigit() and vm["status"] == "RUNNING"
    assert vm["machineType"] == f"{base}/zones/us-central1-a/machineTypes/e2-standard-2"
    assert vm["zone"] == f"{base}/zones/us-central1-a"
    assert vm["shieldedInstanceConfig"] == {"enableSecureBoot": True, "enableVtpm": True, "enableIntegrityMonitoring": True}
    d0, d1 = vm["disks"]
    assert (d0["deviceName"], d0["index"], d0["boot"], d0["interface"]) == ("web01-data", 1, False, "NVME")
    assert (d1["deviceName"], d1["index"], d1["boot"]) == ("web01", 0, True)
    assert d1["source"] == f"{base}/zones/us-central1-a/disks/web01" and d1["diskSizeGb"] == "1" and d1["type"] == "PERSISTENT"
    assert {"type": "UEFI_COMPATIBLE"} in d1["guestOsFeatures"]
    nic = vm["networkInterfaces"][0]
    assert nic["name"] == "nic0" and nic["network"].endswith("/global/networks/default") and "mac" not in json.dumps(nic).lower()
    assert nic["accessConfigs"][0]["natIP"] == "34.1.2.3" and nic["subnetwork"].endswith("/regions/us-central1/subnetworks/default")
    db = call_json("GET", base + "/zones/europe-west1-b/instances/db01", token=token)
    assert db["status"] == "TERMINATED" and db["machineType"].endswith("/machineTypes/custom-4-8192")
    # Machine types: predefined ones answer, custom ones are the client's to parse.
    mt = call_json("GET", base + "/zones/us-central1-a/machineTypes/e2-standard-2", token=token)
    assert (mt["guestCpus"], mt["memoryMb"], mt["zone"]) == (2, 8192, "us-central1-a")
    for custom in ("custom-4-8192", "n2-custom-2-4096"):
        assert call("GET", base + f"/zones/us-central1-a/machineTypes/{custom}", token=token)[0] == 404
    disk = call_json("GET", base + "/zones/us-central1-a/disks/web01", token=token)
    assert disk["sizeGb"] == "1" and disk["users"] == [f"{base}/zones/us-central1-a/instances/web01"]
    assert disk["type"].endswith("/diskTypes/pd-balanced") and disk["physicalBlockSizeBytes"] == "4096"
    assert st.calls["aggregated_instances"] == 5 and not cloud.srv.unmatched


def wait_operation(cloud, token, op, expect_polls=None):
    url = f"{cloud.url}/compute/v1/projects/{cloud.state.project}/global/operations/{op['name']}"
    seen = [op["status"]]
    while op["status"] != "DONE":
        op = call_json("GET", url, token=token)
        seen.append(op["status"])
        assert len(seen) < 20
    return op, seen


def test_image_insert_operation_and_delete(cloud, tmp_path):
    plant(cloud, tmp_path)
    st = cloud.state
    token = token_for(cloud)
    base = f"{cloud.url}/compute/v1/projects/{st.project}"
    body = {"name": "hsdk-web01-0", "sourceDisk": f"projects/{st.project}/zones/us-central1-a/disks/web01",
            "labels": {"created-by": "hypersdk"}, "description": "hypersdk export"}
    # The disk is in use by a running instance: forceCreate is needed.
    status, _, data = call("POST", base + "/global/images", body, token=token)
    assert status == 400 and json.loads(data)["error"]["errors"][0]["reason"] == "resourceInUseByAnotherResource"
    op = call_json("POST", base + "/global/images?forceCreate=true", body, token=token)
    assert op["kind"] == "compute#operation" and op["operationType"] == "insert" and op["status"] == "PENDING"
    assert op["targetLink"] == f"{base}/global/images/hsdk-web01-0" and op["selfLink"] == f"{base}/global/operations/{op['name']}"
    assert op["name"].startswith("operation-")
    image = call_json("GET", base + "/global/images/hsdk-web01-0", token=token)  # a poll too
    assert image["status"] == "PENDING"
    op, seen = wait_operation(cloud, token, op)
    assert seen == ["PENDING", "DONE"] and "error" not in op and op["progress"] == 100
    image = call_json("GET", base + "/global/images/hsdk-web01-0", token=token)
    assert image["status"] == "READY" and image["diskSizeGb"] == "1" and image["labels"] == {"created-by": "hypersdk"}
    assert image["sourceDisk"] == f"{base}/zones/us-central1-a/disks/web01"
    listed = call_json("GET", base + "/global/images?" + urllib.parse.urlencode({"filter": "labels.created-by=hypersdk"}), token=token)
    assert [i["name"] for i in listed["items"]] == ["hsdk-web01-0"]
    status, _, data = call("POST", base + "/global/images?forceCreate=true", body, token=token)
    assert status == 409 and json.loads(data)["error"]["errors"][0]["reason"] == "alreadyExists"
    for bad in ({"name": "Bad_Name", "sourceDisk": body["sourceDisk"]}, {"name": "x1", "sourceDisk": "zones/us-central1-a/disks/nope"},
                {"name": "x2", "sourceDisk": body["sourceDisk"], "labels": {"Created-By": "x"}}):
        assert call("POST", base + "/global/images?forceCreate=true", bad, token=token)[0] in (400, 404), bad
    assert st.images_left() == ["hsdk-web01-0"]
    op = call_json("DELETE", base + "/global/images/hsdk-web01-0", token=token)
    assert op["operationType"] == "delete"
    done = call_json("POST", base + f"/global/operations/{op['name']}/wait", token=token)
    assert done["status"] == "DONE"
    assert not st.images_left() and st.deleted_images == ["hsdk-web01-0"]
    assert call("GET", base + "/global/images/hsdk-web01-0", token=token)[0] == 404
    # An insert ending in a quota error: DONE with error, no image.
    st.operation_error = "QUOTA_EXCEEDED"
    st.operation_polls = 3
    full_url = dict(body, name="hsdk-web01-1", sourceDisk=f"{base}/zones/us-central1-a/disks/web01")
    op = call_json("POST", base + "/global/images?forceCreate=true", full_url, token=token)
    op, seen = wait_operation(cloud, token, op)
    assert seen == ["PENDING", "RUNNING", "RUNNING", "DONE"]
    assert op["error"]["errors"][0]["code"] == "QUOTA_EXCEEDED" and op["httpErrorStatusCode"] == 403
    assert not st.images_left()


# ---- Cloud Build -----------------------------------------------------------------------------------
def make_image(cloud, token, disk="web01", zone="us-central1-a", name=None):
    base = f"{cloud.url}/compute/v1/projects/{cloud.state.project}"
    name = name or f"hsdk-{disk}-{len(cloud.state.created_images)}"
    op = call_json("POST", base + "/global/images?forceCreate=true",
                   {"name": name, "sourceDisk": f"zones/{zone}/disks/{disk}", "labels": {"created-by": "hypersdk"}}, token=token)
    wait_operation(cloud, token, op)
    return name


def start_build(cloud, token, image, obj, fmt=None, expect=200):
    st = cloud.state
    args = ["-client_id=api", "-timeout=7000s", f"-source_image=projects/{st.project}/global/images/{image}",
            f"-destination_uri=gs://{st.bucket}/{obj}"]
    if fmt:
        args.append(f"-format={fmt}")
    body = {"steps": [{"name": EXPORT_STEP + ":release", "args": args}], "timeout": "7200s",
            "tags": ["gce-daisy", "gce-daisy-image-export"]}
    status, _, data = call("POST", f"{cloud.url}/v1/projects/{st.project}/builds", body, token=token)
    assert status == expect, data
    return json.loads(data)


def run_build(cloud, token, op):
    build = op["metadata"]["build"]
    url = f"{cloud.url}/v1/projects/{cloud.state.project}/builds/{build['id']}"
    seen = [build["status"]]
    while seen[-1] not in ("SUCCESS", "FAILURE", "TIMEOUT", "CANCELLED", "INTERNAL_ERROR"):
        build = call_json("GET", url, token=token)
        seen.append(build["status"])
        assert len(seen) < 20, seen
    return build, seen


class Gunzip:
    """A reader of a (multi-member) gzip stream held in memory; zlib checks each member's CRC-32 and
    size at its end (zlib.error "incorrect data check" / "incorrect length check")."""

    def __init__(self, data):
        self.rest = memoryview(data)
        self.dec = zlib.decompressobj(31)
        self.buf = b""

    def _more(self, want):
        while len(self.buf) < want:
            if self.dec.eof:
                tail = self.dec.unused_data
                if not tail or tail[:2] != b"\x1f\x8b":
                    return
                self.dec = zlib.decompressobj(31)  # the next member
                self.rest = memoryview(tail + bytes(self.rest))
            if not self.rest and not self.dec.unconsumed_tail:
                raise EOFError("the gzip stream ends early")
            feed = self.dec.unconsumed_tail or self.rest[:4 * MiB]
            if not self.dec.unconsumed_tail:
                self.rest = self.rest[len(feed):]
            self.buf += self.dec.decompress(feed, 8 * MiB)

    def read(self, n):
        self._more(n)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def drain(self):
        while self.read(8 * MiB):
            pass


def read_tar_gz(data, whole=True):
    """[(name, size, first 16 MiB, whether the rest is zeros (None when not read))] of a tar.gz.
    whole: every member read to its end, then the gzip stream to its very end (a tar reader that
    stops at the end-of-archive blocks never reaches the gzip trailer: its CRC is checked only so)."""
    z = Gunzip(data)
    zero = bytes(8 * MiB)
    out = []
    while True:
        header = z.read(512)
        if len(header) < 512:
            raise EOFError("the tar ends before its end-of-archive blocks")
        if header == bytes(512):
            break
        info = tarfile.TarInfo.frombuf(header, "utf-8", "surrogateescape")
        head = z.read(min(info.size, 16 * MiB))
        left, zeros = info.size - len(head), True
        if not whole:
            out.append((info.name, info.size, head, None))
            return out
        while left:
            chunk = z.read(min(left, 8 * MiB))
            if not chunk:
                raise EOFError(f"{info.name} ends early")
            zeros = zeros and chunk == zero[:len(chunk)]
            left -= len(chunk)
        z.read(-info.size % 512)
        out.append((info.name, info.size, head, zeros))
    z.drain()
    return out


def test_build_writes_a_tar_gz_holding_disk_raw(cloud, tmp_path):
    pattern = plant(cloud, tmp_path)
    st = cloud.state
    token = token_for(cloud)
    image = make_image(cloud, token)
    op = start_build(cloud, token, image, "hypersdk-exports/web01.tar.gz")
    assert op["name"] == f"operations/build/{st.project}/" + base64.b64encode(op["metadata"]["build"]["id"].encode()).decode()
    assert op["metadata"]["@type"] == "type.googleapis.com/google.devtools.cloudbuild.v1.BuildOperationMetadata"
    assert op["metadata"]["build"]["status"] == "QUEUED" and op["metadata"]["build"]["tags"] == ["gce-daisy", "gce-daisy-image-export"]
    assert st.running_builds() == [op["metadata"]["build"]["id"]]
    build, seen = run_build(cloud, token, op)
    assert seen == ["QUEUED", "QUEUED", "WORKING", "SUCCESS"], seen
    assert build["startTime"] and build["finishTime"] and not st.running_builds()
    data = whole = st.gcs.get(st.bucket, "hypersdk-exports/web01.tar.gz")
    assert data[:2] == b"\x1f\x8b"
    # One GNU-format member disk.raw of the whole disk (not sparse), as the export tool writes it.
    raw = gzip.GzipFile(fileobj=io.BytesIO(data)).read(512)
    assert raw[257:265] == b"ustar  \x00" and raw[:8] == b"disk.raw"
    members = read_tar_gz(data)
    with open(pattern, "rb") as f:
        planted = f.read(16 * MiB)
    assert [(n, s) for n, s, _, _ in members] == [("disk.raw", GiB)]
    assert members[0][2] == planted and members[0][3]
    assert st.objects_left() == ["hypersdk-exports/web01.tar.gz"]
    # The build operation is readable too.
    b64 = op["name"].rsplit("/", 1)[1]
    got = call_json("GET", f"{cloud.url}/v1/operations/build/{st.project}/{b64}", token=token)
    assert got["done"] and got["response"]["status"] == "SUCCESS"
    # Knobs: a manifest.json first, disk.raw's size in base-256, three gzip members, a shorter disk.raw.
    st.tar_manifest, st.tar_base256, st.gzip_members, st.short_disk_raw = True, True, 3, 4096
    build, _ = run_build(cloud, token, start_build(cloud, token, image, "hypersdk-exports/knobs.tar.gz"))
    data = st.gcs.get(st.bucket, "hypersdk-exports/knobs.tar.gz")
    assert data.count(b"\x1f\x8b\x08\x00") >= 3
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tf:  # headers and the first 16 MiB only
        manifest = tf.next()
        assert manifest.name == "manifest.json"
        assert json.loads(tf.extractfile(manifest).read()) == {"licenses": ["projects/debian-cloud/global/licenses/debian-12-bookworm"]}
        disk = tf.next()
        assert (disk.name, disk.size) == ("disk.raw", GiB - 4096)
        assert tf.extractfile(disk).read(16 * MiB) == planted
    st.tar_manifest, st.tar_base256, st.gzip_members, st.short_disk_raw = False, False, 1, 0
    # A truncated object: cut short (the other damage knobs: test_export_object_knobs, on a small disk).
    st.truncate_object = 0.5
    run_build(cloud, token, start_build(cloud, token, image, "hypersdk-exports/cut.tar.gz"))
    cut = st.gcs.get(st.bucket, "hypersdk-exports/cut.tar.gz")
    assert 0.45 * len(whole) < len(cut) < 0.55 * len(whole)  # (its tar header's mtime may differ: not byte-exact)
    with pytest.raises((OSError, EOFError, zlib.error, tarfile.TarError)):
        read_tar_gz(cut)
    assert len(st.exports) == 3


def test_crc32_of_zero_runs_and_the_tar_writer(tmp_path):
    for n in (0, 1, 511, 4096, MiB + 3):
        assert crc32_zeros(zlib.crc32(b"x"), n) == zlib.crc32(bytes(n), zlib.crc32(b"x"))
    raw = tmp_path / "small.raw"
    raw.write_bytes(b"A" * 1000 + bytes(3 * MiB) + b"B" * 10)
    data = export_tar_gz(raw, 5 * MiB, members=2)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tf:
        m = tf.next()
        body = tf.extractfile(m).read()
    assert body == raw.read_bytes() + bytes(5 * MiB - raw.stat().st_size)
    # GNU tar reads it too (two gzip members, the end-of-archive blocks).
    (tmp_path / "x.tgz").write_bytes(data)
    assert subprocess.run(["tar", "-tzf", str(tmp_path / "x.tgz")], capture_output=True, text=True).stdout == "disk.raw\n"


def test_export_object_knobs(tmp_path):
    raw = tmp_path / "small.raw"
    raw.write_bytes(os.urandom(300_000) + bytes(2 * MiB) + b"end")
    size = 4 * MiB
    expected = raw.read_bytes() + bytes(size - raw.stat().st_size)
    good = export_object(raw, size)
    assert read_tar_gz(good)[0][:3] == ("disk.raw", size, expected)
    # A flipped CRC: the deflate data is whole, the gzip trailer does not check (at the very end).
    bad = export_object(raw, size, knobs={"corrupt_object": "crc"})
    with pytest.raises(zlib.error, match="incorrect data check"):
        read_tar_gz(bad)
    # A byte flipped in the middle (in a stored deflate block of the random data): caught by the CRC only.
    with pytest.raises((zlib.error, EOFError, ValueError)):
        read_tar_gz(export_object(raw, size, knobs={"corrupt_object": "data"}))
    # A disk.raw shorter than the disk; a manifest first; the size in base-256; several gzip members.
    members = read_tar_gz(export_object(raw, size, knobs={"short_disk_raw": 512, "tar_manifest": True, "tar_base256": True,
                                                          "gzip_members": 3}, licenses=["l1"]))
    assert [(n, s) for n, s, _, _ in members] == [("manifest.json", len(json.dumps({"licenses": ["l1"]}))), ("disk.raw", size - 512)]
    assert members[1][2] == expected[:size - 512]
    cut = export_object(raw, size, knobs={"truncate_object": 1000})
    assert len(cut) == 1000 and cut[:4] == good[:4]
    with pytest.raises(EOFError):
        read_tar_gz(cut)
    vmdk = tmp_path / "x.vmdk"
    vmdk.write_bytes(export_object(raw, size, "vmdk", workdir=tmp_path))
    assert qemu_info(vmdk)["format"] == "vmdk"
    qemu_img("compare", "-f", "raw", "-F", "vmdk", raw, vmdk)  # the shorter raw: qemu-img compares the rest as zeros


def test_build_with_format_vmdk_converts_with_qemu_img(cloud, tmp_path):
    pattern = plant(cloud, tmp_path)
    st = cloud.state
    token = token_for(cloud)
    image = make_image(cloud, token)
    build, _ = run_build(cloud, token, start_build(cloud, token, image, "hypersdk-exports/web01.vmdk", fmt="vmdk"))
    assert build["status"] == "SUCCESS" and "-format=vmdk" in build["steps"][0]["args"]
    out = tmp_path / "got.vmdk"
    out.write_bytes(st.gcs.get(st.bucket, "hypersdk-exports/web01.vmdk"))
    info = qemu_info(out)
    assert info["format"] == "vmdk" and info["virtual-size"] == GiB
    qemu_img("compare", "-f", "raw", "-F", "vmdk", pattern, out)


def test_build_failures_cancel_and_validation(cloud, tmp_path):
    plant(cloud, tmp_path)
    st = cloud.state
    token = token_for(cloud)
    image = make_image(cloud, token)
    url = f"{cloud.url}/v1/projects/{st.project}/builds"
    # Refused outright: not the export step, bad flags, a destination that is not gs://.
    start_build(cloud, token, image, "x", fmt="exe", expect=400)
    err = call_json("POST", url, {"steps": [{"name": EXPORT_STEP + ":release", "args": ["-source_image=x", "-bogus=1",
                                                                                          f"-destination_uri=gs://{st.bucket}/o"]}]},
                    token=token, expect=400)["error"]
    assert err["status"] == "INVALID_ARGUMENT" and "bogus" in err["message"]
    call_json("POST", url, {"steps": [{"name": "ubuntu", "args": []}]}, token=token, expect=400)
    call_json("POST", url, {"steps": [{"name": EXPORT_STEP, "args": ["-source_image=x", "-destination_uri=/tmp/x"]}]},
              token=token, expect=400)
    # An unknown image: the build fails, naming it; nothing is written.
    build, _ = run_build(cloud, token, start_build(cloud, token, "no-such-image", "hypersdk-exports/none.tar.gz"))
    assert build["status"] == "FAILURE" and "no-such-image" in build["statusDetail"], build
    assert build["failureInfo"]["type"] == "USER_BUILD_STEP"
    # A failing build, a timed-out one.
    st.build_outcome = "FAILURE"
    build, _ = run_build(cloud, token, start_build(cloud, token, image, "hypersdk-exports/f.tar.gz"))
    assert build["status"] == "FAILURE" and "build step 0" in build["statusDetail"]
    st.build_outcome = "TIMEOUT"
    build, _ = run_build(cloud, token, start_build(cloud, token, image, "hypersdk-exports/t.tar.gz"))
    assert build["status"] == "TIMEOUT"
    assert st.objects_left() == []
    # A build that runs until it is cancelled.
    st.build_outcome = "hang"
    op = start_build(cloud, token, image, "hypersdk-exports/h.tar.gz")
    bid = op["metadata"]["build"]["id"]
    for _ in range(6):
        status = call_json("GET", f"{url}/{bid}", token=token)["status"]
    assert status == "WORKING" and st.running_builds() == [bid]
    cancelled = call_json("POST", f"{url}/{bid}:cancel", {}, token=token)
    assert cancelled["status"] == "CANCELLED" and st.cancel_calls == [bid] and not st.running_builds()
    assert call_json("GET", f"{url}/{bid}", token=token)["status"] == "CANCELLED"
    assert call("GET", f"{url}/not-a-build", token=token)[0] == 404
    assert st.objects_left() == []


def test_the_storage_proxy_streams_slowly_passes_ranges_and_can_drop(cloud):
    st = cloud.state
    data = os.urandom(2 * MiB)
    st.gcs.upload(st.bucket, "hypersdk-exports/slow.bin", data)
    path = st.gcs.object_path(st.bucket, "hypersdk-exports/slow.bin", media=True)
    st.storage_delay, st.storage_chunk = 0.05, 256 * 1024
    started = time.monotonic()
    status, h, body = call("GET", cloud.url + path, headers={"Range": f"bytes=0-{MiB - 1}"})
    assert status == 206 and body == data[:MiB] and h["content-range"] == f"bytes 0-{MiB - 1}/{2 * MiB}"
    assert time.monotonic() - started >= 0.15  # four chunks, a pause after each
    st.storage_delay = 0
    meta = call_json("GET", cloud.url + st.gcs.object_path(st.bucket, "hypersdk-exports/slow.bin"))
    assert meta["size"] == str(2 * MiB)
    st.storage_drops, st.storage_drop_after = 1, 300_000
    conn = http.client.HTTPConnection("127.0.0.1", cloud.srv.port, timeout=30)
    conn.request("GET", path)
    resp = conn.getresponse()
    with pytest.raises(http.client.IncompleteRead):
        resp.read()
    conn.close()
    assert call("GET", cloud.url + path)[2] == data  # the next one is whole
    st.storage_requires_auth = True
    assert call("GET", cloud.url + path)[0] == 401
    assert call("GET", cloud.url + path, token=token_for(cloud))[2] == data
    assert [r[3] for r in st.storage_requests if r[1].endswith("slow.bin")][:1] == [206]
