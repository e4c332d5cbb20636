"""Self-tests of the OpenStack fixtures (openstack_fixtures.py served by fixture_server.py):
Keystone tokens and their catalog, Nova servers with paging and microversions, createImage,
Cinder upload-to-image, Glance images, their data by Range and the download knobs, and that no
token, password or secret lands in the recording. Standard library HTTP only."""
import hashlib
import http.client
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
import yaml

from conftest import MiB, write_pattern
from fixture_server import FixtureServer
from openstack_fixtures import (GiB, UNAUTHORIZED_MESSAGE, OpenStackState, attach, endpoint_prefix, os_env, os_vars,
                                plant_standard, write_clouds_yaml)

NOVA_279 = {"OpenStack-API-Version": "compute 2.79"}


@pytest.fixture(scope="module")
def web01_root(tmp_path_factory):
    return write_pattern(tmp_path_factory.mktemp("os-sim") / "web01.raw", 16 * MiB, seed=4242)


@pytest.fixture(scope="module")
def server():
    with FixtureServer() as srv:
        yield srv


@pytest.fixture
def cloud(server, web01_root):
    state = OpenStackState()
    state.servers_by_name = plant_standard(state, web01_root, db01_boot=b"\xeb\x63\x90boot" * 1000, db01_data=b"data" * 1000,
                                           prewarm=False)
    attach(state, server)
    yield state
    assert not server.unmatched, server.unmatched


def call(url, method="GET", token=None, body=None, headers=None):
    """(status, {lower-case header: value}, body bytes)."""
    h = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    if token:
        h["X-Auth-Token"] = token
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def password_auth(state, password=None, scope=True, user_by_id=False, project_by_id=False):
    user = {"id": state.user_id} if user_by_id else {"name": state.username, "domain": {"name": "Default"}}
    user["password"] = state.password if password is None else password
    auth = {"identity": {"methods": ["password"], "password": {"user": user}}}
    if scope:
        auth["scope"] = {"project": {"id": state.project_id} if project_by_id else {"name": state.project_name,
                                                                                  "domain": {"name": "Default"}}}
    return {"auth": auth}


def token_of(state, **kw):
    status, h, body = call(state.auth_url + "/auth/tokens", "POST", body=password_auth(state, **kw))
    assert status == 201, body
    return h["x-subject-token"], json.loads(body)["token"]


def endpoint(token_body, stype, region="RegionOne", interface="public"):
    for svc in token_body["catalog"]:
        if svc["type"] == stype:
            for e in svc["endpoints"]:
                if e["region_id"] == region and e["interface"] == interface:
                    return e["url"]
    raise KeyError((stype, region, interface))


def poll_image(image_url, token, image_id, until=("active", "killed"), max_polls=20):
    seen = []
    for _ in range(max_polls):
        status, _, body = call(f"{image_url}/v2/images/{image_id}", token=token)
        if status == 404:
            seen.append(404)
            return seen, None
        img = json.loads(body)
        seen.append(img["status"])
        if img["status"] in until:
            return seen, img
    raise AssertionError(f"image {image_id} never finished: {seen}")


# ---- Keystone --------------------------------------------------------------------------------
def test_password_token_with_its_catalog(cloud):
    token, body = token_of(cloud)
    assert token.startswith("gAAAAA") and len(token) > 150
    assert body["methods"] == ["password"]
    assert body["project"] == {"id": cloud.project_id, "name": "hsdk-project", "domain": {"id": "default", "name": "Default"}}
    assert body["user"]["name"] == "hsdk-user" and body["user"]["domain"] == {"id": "default", "name": "Default"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", body["expires_at"])
    assert {s["type"] for s in body["catalog"]} == {"compute", "image", "volumev3", "identity"}
    for svc in body["catalog"]:
        assert len(svc["endpoints"]) == 6 and {e["interface"] for e in svc["endpoints"]} == {"public", "internal", "admin"}
    u = cloud.url
    assert endpoint(body, "compute") == f"{u}/compute/v2.1"
    assert endpoint(body, "image") == f"{u}/image"
    assert endpoint(body, "volumev3") == f"{u}/volume/v3/{cloud.project_id}"
    assert endpoint(body, "identity") == f"{u}/identity/v3"
    assert endpoint(body, "compute", "RegionTwo") == f"{u}/r2/compute/v2.1"
    assert endpoint(body, "image", "RegionOne", "internal") == f"{u}/internal/image"
    assert endpoint_prefix("RegionTwo", "admin") == "/r2-admin"
    # by id, and unscoped (the user's default project)
    _, by_id = token_of(cloud, user_by_id=True, project_by_id=True)
    assert by_id["project"]["id"] == cloud.project_id
    _, unscoped = token_of(cloud, scope=False)
    assert unscoped["project"]["id"] == cloud.project_id and unscoped["catalog"]
    assert cloud.tokens_issued == 3 and [t["method"] for t in cloud.token_log] == ["password"] * 3


def test_image_endpoint_override(cloud):
    cloud.image_endpoint_override = "http://127.0.0.1:9/glance"
    _, body = token_of(cloud)
    for interface in ("public", "internal", "admin"):
        assert endpoint(body, "image", "RegionOne", interface) == "http://127.0.0.1:9/glance"
    assert endpoint(body, "image", "RegionTwo") == f"{cloud.url}/r2/image"
    assert endpoint(body, "compute") == f"{cloud.url}/compute/v2.1"
    cloud.image_endpoint_override = None
    assert endpoint(token_of(cloud)[1], "image") == f"{cloud.url}/image"


def test_application_credential_token(cloud):
    req = {"auth": {"identity": {"methods": ["application_credential"],
                                 "application_credential": {"id": cloud.app_credential_id, "secret": cloud.app_credential_secret}}}}
    status, h, body = call(cloud.auth_url + "/auth/tokens", "POST", body=req)
    assert status == 201, body
    tok = json.loads(body)["token"]
    assert tok["methods"] == ["application_credential"] and tok["project"]["id"] == cloud.project_id
    assert tok["application_credential"]["id"] == cloud.app_credential_id
    status, _, _ = call(endpoint(tok, "compute") + "/servers", token=h["x-subject-token"])
    assert status == 200
    assert cloud.token_log[-1]["method"] == "application_credential"


@pytest.mark.parametrize("case", ["wrong password", "unknown user", "bad secret", "project without a role"])
def test_refused_credentials_are_401(cloud, case):
    if case == "wrong password":
        req = password_auth(cloud, password="wrong-t0ken")
    elif case == "unknown user":
        req = password_auth(cloud)
        req["auth"]["identity"]["password"]["user"]["name"] = "nobody"
    elif case == "bad secret":
        req = {"auth": {"identity": {"methods": ["application_credential"],
                                     "application_credential": {"id": cloud.app_credential_id, "secret": "wrong-t0ken"}}}}
    else:
        req = password_auth(cloud)
        req["auth"]["scope"] = {"project": {"id": cloud.other_project["id"]}}
    status, h, body = call(cloud.auth_url + "/auth/tokens", "POST", body=req)
    assert status == 401 and "x-subject-token" not in h
    assert json.loads(body) == {"error": {"code": 401, "message": UNAUTHORIZED_MESSAGE, "title": "Unauthorized"}}
    assert cloud.tokens_issued == 0


def test_malformed_auth_is_400(cloud):
    no_domain = {"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "x", "password": "y"}}}}}
    status, _, body = call(cloud.auth_url + "/auth/tokens", "POST", body=no_domain)
    assert status == 400 and json.loads(body)["error"]["code"] == 400


def test_every_service_needs_a_valid_token(cloud):
    token, body = token_of(cloud)
    urls = [endpoint(body, "compute") + "/servers/detail", endpoint(body, "image") + "/v2/images",
            endpoint(body, "volumev3") + "/volumes/" + cloud.servers_by_name["db01"].volumes[0][1].id]
    for url in urls:
        status, h, b = call(url)
        assert status == 401, url
        assert json.loads(b) == {"error": {"code": 401, "title": "Unauthorized", "message": UNAUTHORIZED_MESSAGE}}
        assert h["www-authenticate"].startswith("Keystone uri=")
        assert call(url, token="gAAAAABnot-a-token")[0] == 401
        assert call(url, token=token)[0] == 200
    cloud.revoke_tokens()
    assert call(urls[0], token=token)[0] == 401
    token2, _ = token_of(cloud)
    assert call(urls[0], token=token2)[0] == 200
    cloud.expire_tokens()
    assert call(urls[0], token=token2)[0] == 401
    # revoke_at: the second call of get_image revokes what was issued so far
    cloud.token_lifetime = 3600
    token3, _ = token_of(cloud)
    img = cloud.find_image("ubuntu-22.04")
    cloud.revoke_at = {"get_image": cloud.calls["get_image"] + 2}
    assert call(f"{endpoint(body, 'image')}/v2/images/{img.id}", token=token3)[0] == 200
    assert call(f"{endpoint(body, 'image')}/v2/images/{img.id}", token=token3)[0] == 401
    token4, _ = token_of(cloud)
    assert call(f"{endpoint(body, 'image')}/v2/images/{img.id}", token=token4)[0] == 200
    # Cinder checks the project of its URL against the token's
    status, _, b = call(f"{cloud.url}/volume/v3/{cloud.other_project['id']}/volumes", token=token4)
    assert status == 400 and "Malformed request URL" in json.loads(b)["badRequest"]["message"]


def test_no_token_password_or_secret_in_the_recording(cloud):
    token, body = token_of(cloud)
    call(cloud.auth_url + "/auth/tokens", "POST", body={"auth": {"identity": {
        "methods": ["application_credential"],
        "application_credential": {"id": cloud.app_credential_id, "secret": cloud.app_credential_secret}}}})
    call(endpoint(body, "compute") + "/servers/detail", token=token)
    call(endpoint(body, "image") + "/v2/images", token=token)
    tokens = list(cloud.tokens)
    assert len(tokens) == 2
    for r in cloud.srv.calls:
        text = json.dumps(r.headers) + r.body.decode(errors="replace") + r.raw_path
        for secret in tokens + [cloud.password, cloud.app_credential_secret]:
            assert secret not in text, r
    auth_call = cloud.srv.calls[0]
    assert auth_call.json["auth"]["identity"]["password"]["user"]["password"] == "***"
    assert "x-auth-token" in cloud.srv.calls[-1].secrets


# ---- Nova --------------------------------------------------------------------------------------
def test_servers_page_by_limit_and_marker(cloud):
    token, body = token_of(cloud)
    compute = endpoint(body, "compute")
    names, url, pages = [], compute + "/servers/detail", 0
    while url:
        status, _, b = call(url, token=token, headers=NOVA_279)
        assert status == 200, b
        page = json.loads(b)
        pages += 1
        assert len(page["servers"]) <= 2  # page_size: Nova's max_limit
        names += [s["name"] for s in page["servers"]]
        links = [link["href"] for link in page.get("servers_links", []) if link["rel"] == "next"]
        url = links[0] if links else None
    assert pages == 3 and sorted(names) == ["app01", "app02", "app03", "db01", "web01"]
    assert names[0] == "app03"  # newest first
    # a client limit of 1 under the max; the name filter is a regex
    status, _, b = call(compute + "/servers/detail?limit=1&name=%5Eweb", token=token)
    page = json.loads(b)
    assert [s["name"] for s in page["servers"]] == ["web01"]
    nxt = page["servers_links"][0]["href"]  # a full page has a next link, even when nothing follows
    assert "name=%5Eweb" in nxt and "limit=1" in nxt
    assert json.loads(call(nxt, token=token)[2]) == {"servers": []}
    status, _, b = call(compute + "/servers/detail?marker=nope", token=token)
    assert status == 400 and json.loads(b)["badRequest"]["message"] == "marker [nope] not found"
    brief = json.loads(call(compute + "/servers?limit=10", token=token)[2])["servers"]
    assert set(brief[0]) == {"id", "name", "links"}


def test_server_shapes_by_microversion(cloud):
    token, body = token_of(cloud)
    compute = endpoint(body, "compute")
    web = cloud.find_server("web01")
    status, h, b = call(f"{compute}/servers/{web.id}", token=token, headers=NOVA_279)
    assert status == 200 and h["openstack-api-version"] == "compute 2.79"
    s = json.loads(b)["server"]
    assert s["flavor"] == {"vcpus": 1, "ram": 2048, "disk": 1, "ephemeral": 0, "swap": 0, "original_name": "m1.small",
                           "extra_specs": {"hw_rng:allowed": "True"}}
    assert s["image"]["id"] == cloud.find_image("ubuntu-22.04").id and s["status"] == "ACTIVE"
    assert s["addresses"]["private"][0]["OS-EXT-IPS-MAC:mac_addr"] == "fa:16:3e:12:34:56"
    assert s["os-extended-volumes:volumes_attached"] == [] and s["OS-EXT-AZ:availability_zone"] == "nova"
    # no microversion: 2.1, the flavor by reference
    status, h, b = call(f"{compute}/servers/{web.id}", token=token)
    s = json.loads(b)["server"]
    assert h["x-openstack-nova-api-version"] == "2.1" and s["flavor"]["id"] == "2" and "vcpus" not in s["flavor"]
    f = json.loads(call(s["flavor"]["links"][0]["href"].replace("/compute/flavors", "/compute/v2.1/flavors"), token=token)[2])["flavor"]
    assert (f["vcpus"], f["ram"], f["disk"], f["swap"]) == (1, 2048, 1, "")
    # the legacy header works too; an unknown version is 406
    assert json.loads(call(f"{compute}/servers/{web.id}", token=token,
                           headers={"X-OpenStack-Nova-API-Version": "2.60"})[2])["server"]["flavor"]["original_name"] == "m1.small"
    assert call(f"{compute}/servers/{web.id}", token=token, headers={"OpenStack-API-Version": "compute 3.5"})[0] == 406
    # a volume-backed server: image "", its volumes attached
    db = cloud.find_server("db01")
    s = json.loads(call(f"{compute}/servers/{db.id}", token=token, headers=NOVA_279)[2])["server"]
    assert s["image"] == "" and s["status"] == "SHUTOFF"
    assert [v["id"] for v in s["os-extended-volumes:volumes_attached"]] == [v.id for _, v, _ in db.volumes]
    att = json.loads(call(f"{compute}/servers/{db.id}/os-volume_attachments", token=token, headers=NOVA_279)[2])["volumeAttachments"]
    assert [(a["device"], a["volumeId"]) for a in att] == [("/dev/vda", db.volumes[0][1].id), ("/dev/vdb", db.volumes[1][1].id)]
    ports = json.loads(call(f"{compute}/servers/{db.id}/os-interface", token=token)[2])["interfaceAttachments"]
    assert [p["mac_addr"] for p in ports] == ["fa:16:3e:aa:bb:cc", "fa:16:3e:aa:bb:cd"]
    assert ports[0]["fixed_ips"] == [{"subnet_id": ports[0]["fixed_ips"][0]["subnet_id"], "ip_address": "10.0.0.12"}]
    # unknown
    status, _, b = call(f"{compute}/servers/web01", token=token)
    assert status == 404 and json.loads(b) == {"itemNotFound": {"code": 404, "message": "Instance web01 could not be found."}}


def test_regions_see_their_own_servers(cloud):
    token, body = token_of(cloud)
    r2 = json.loads(call(endpoint(body, "compute", "RegionTwo") + "/servers/detail", token=token)[2])["servers"]
    assert [s["name"] for s in r2] == ["r2vm01"]
    web = cloud.find_server("web01")
    assert call(endpoint(body, "compute", "RegionTwo") + f"/servers/{web.id}", token=token)[0] == 404
    assert call(endpoint(body, "compute", "RegionOne", "internal") + f"/servers/{web.id}", token=token)[0] == 200
    assert cloud.calls_outside() == {("RegionTwo", "public", "compute"): 2, ("RegionOne", "internal", "compute"): 1}


# ---- createImage and Glance --------------------------------------------------------------------
def test_create_image_then_download_by_ranges(cloud, web01_root):
    token, body = token_of(cloud)
    compute, image = endpoint(body, "compute"), endpoint(body, "image")
    web = cloud.find_server("web01")
    status, h, b = call(f"{compute}/servers/{web.id}/action", "POST", token=token, headers=NOVA_279,
                        body={"createImage": {"name": "hsdk-web01", "metadata": {"hsdk": "export"}}})
    assert status == 202 and "location" not in h
    image_id = json.loads(b)["image_id"]
    assert cloud.images_left() == [image_id]
    # a second createImage while the first is uploading: 409
    status, _, b = call(f"{compute}/servers/{web.id}/action", "POST", token=token, body={"createImage": {"name": "again"}})
    assert status == 409 and "task_state" in json.loads(b)["conflictingRequest"]["message"]
    assert call(f"{image}/v2/images/{image_id}/file", token=token)[0] == 204  # no data yet
    seen, img = poll_image(image, token, image_id)
    assert seen == ["queued", "saving", "active"]
    expected = web01_root.read_bytes()
    assert img["size"] == len(expected) == 16 * MiB and img["disk_format"] == "raw" and img["container_format"] == "bare"
    assert img["checksum"] == hashlib.md5(expected).hexdigest()
    assert img["os_hash_algo"] == "sha512" and img["os_hash_value"] == hashlib.sha512(expected).hexdigest()
    assert img["file"] == f"/v2/images/{image_id}/file" and img["hsdk"] == "export" and img["image_type"] == "snapshot"
    assert img["instance_uuid"] == web.id and img["min_disk"] == 1 and img["owner"] == cloud.project_id
    status, h, data = call(f"{image}/v2/images/{image_id}/file", token=token)
    assert status == 200 and data == expected
    assert h["content-type"] == "application/octet-stream" and h["content-md5"] == img["checksum"]
    status, h, data = call(f"{image}/v2/images/{image_id}/file", token=token, headers={"Range": f"bytes={5 * MiB}-"})
    assert status == 206 and data == expected[5 * MiB:] and h["content-range"] == f"bytes {5 * MiB}-{16 * MiB - 1}/{16 * MiB}"
    status, h, data = call(f"{image}/v2/images/{image_id}/file", token=token, headers={"Range": "bytes=100-199"})
    assert status == 206 and data == expected[100:200] and h["content-length"] == "100"
    assert call(f"{image}/v2/images/{image_id}/file", token=token, headers={"Range": "bytes=0-1,5-6"})[0] == 400
    assert call(f"{image}/v2/images/{image_id}/file", token=token, headers={"Range": f"bytes={16 * MiB}-"})[0] == 416
    assert call(f"{image}/v2/images/{image_id}/file", "HEAD", token=token)[0] == 405
    assert cloud.ranges_seen()[-3:] == [None, f"bytes={5 * MiB}-", "bytes=100-199"]
    listed = json.loads(call(f"{image}/v2/images?name=hsdk-web01", token=token)[2])["images"]
    assert [i["id"] for i in listed] == [image_id]
    assert call(f"{image}/v2/images/{image_id}", "DELETE", token=token)[0] == 204
    assert call(f"{image}/v2/images/{image_id}", token=token)[0] == 404
    assert cloud.images_left() == [] and cloud.deleted_images == [image_id]


def test_create_image_before_2_45_answers_a_location(cloud):
    token, body = token_of(cloud)
    web = cloud.find_server("web01")
    cloud.image_polls = 0
    status, h, b = call(f"{endpoint(body, 'compute')}/servers/{web.id}/action", "POST", token=token,
                        body={"createImage": {"name": "old-style"}})
    assert status == 202 and b == b""
    image_id = h["location"].rsplit("/", 1)[1]
    assert h["location"] == f"{endpoint(body, 'image')}/images/{image_id}"
    assert json.loads(call(f"{endpoint(body, 'image')}/v2/images/{image_id}", token=token)[2])["status"] == "active"


@pytest.mark.parametrize("final", ["killed", "deleted"])
def test_create_image_that_fails(cloud, final):
    token, body = token_of(cloud)
    cloud.image_final = final
    web = cloud.find_server("web01")
    b = call(f"{endpoint(body, 'compute')}/servers/{web.id}/action", "POST", token=token, headers=NOVA_279,
             body={"createImage": {"name": "doomed"}})[2]
    image_id = json.loads(b)["image_id"]
    seen, img = poll_image(endpoint(body, "image"), token, image_id)
    if final == "killed":
        assert seen == ["queued", "saving", "killed"] and img["size"] is None and img["checksum"] is None
        assert cloud.images_left() == [image_id]
    else:
        assert seen == ["queued", "saving", 404] and cloud.images_left() == [] and cloud.vanished_images == [image_id]


def test_create_image_of_a_volume_backed_server_is_a_bdm_snapshot(cloud):
    token, body = token_of(cloud)
    db = cloud.find_server("db01")
    b = call(f"{endpoint(body, 'compute')}/servers/{db.id}/action", "POST", token=token, headers=NOVA_279,
             body={"createImage": {"name": "bdm"}})[2]
    image_id = json.loads(b)["image_id"]
    img = json.loads(call(f"{endpoint(body, 'image')}/v2/images/{image_id}", token=token)[2])
    assert img["status"] == "active" and img["size"] == 0 and json.loads(img["block_device_mapping"])[0]["source_type"] == "snapshot"
    assert call(f"{endpoint(body, 'image')}/v2/images/{image_id}/file", token=token)[0] == 204
    assert cloud.nova_volume_snapshots == [db.id]


# ---- Cinder --------------------------------------------------------------------------------------
def test_upload_a_volume_to_an_image(cloud):
    token, body = token_of(cloud)
    volume, image = endpoint(body, "volumev3"), endpoint(body, "image")
    db = cloud.find_server("db01")
    boot = db.volumes[0][1]
    v = json.loads(call(f"{volume}/volumes/{boot.id}", token=token)[2])["volume"]
    assert (v["size"], v["status"], v["bootable"], v["name"]) == (1, "in-use", "true", "db01-boot")
    assert v["attachments"][0]["server_id"] == db.id and v["attachments"][0]["device"] == "/dev/vda"
    assert v["volume_image_metadata"]["image_name"] == "ubuntu-22.04"
    action = {"os-volume_upload_image": {"image_name": "hsdk-db01-boot", "force": False, "disk_format": "raw",
                                         "container_format": "bare"}}
    status, _, b = call(f"{volume}/volumes/{boot.id}/action", "POST", token=token, body=action)
    assert status == 400 and json.loads(b)["badRequest"]["message"].startswith("Invalid volume: Volume")
    action["os-volume_upload_image"]["force"] = True
    status, _, b = call(f"{volume}/volumes/{boot.id}/action", "POST", token=token, body=action)
    assert status == 202, b
    up = json.loads(b)["os-volume_upload_image"]
    assert (up["id"], up["status"], up["image_name"], up["disk_format"], up["container_format"], up["size"]) == \
        (boot.id, "uploading", "hsdk-db01-boot", "raw", "bare", 1)
    assert json.loads(call(f"{volume}/volumes/{boot.id}", token=token)[2])["volume"]["status"] == "uploading"
    seen, img = poll_image(image, token, up["image_id"])
    assert seen[-1] == "active" and img["size"] == GiB and re.fullmatch(r"[0-9a-f]{32}", img["checksum"])
    assert len(img["os_hash_value"]) == 128 and img["os_distro"] == "ubuntu"
    assert json.loads(call(f"{volume}/volumes/{boot.id}", token=token)[2])["volume"]["status"] == "in-use"
    head = call(f"{image}/v2/images/{up['image_id']}/file", token=token, headers={"Range": "bytes=0-8191"})[2]
    assert head == (b"\xeb\x63\x90boot" * 1000 + bytes(8192))[:8192]
    tail = call(f"{image}/v2/images/{up['image_id']}/file", token=token, headers={"Range": "bytes=-4096"})[2]
    assert tail == bytes(4096)
    assert cloud.volume_uploads == [(boot.id, up["image_id"])] and cloud.images_left() == [up["image_id"]]
    assert call(f"{image}/v2/images/{up['image_id']}", "DELETE", token=token)[0] == 204
    assert cloud.images_left() == []
    assert call(f"{volume}/volumes/nope", token=token)[0] == 404


# ---- the download knobs ------------------------------------------------------------------------
def raw_get(state, path, token, headers=None):
    """(status, headers, bytes received, complete) without raising on a short body."""
    u = urllib.parse.urlsplit(state.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    try:
        conn.request("GET", path, headers={"X-Auth-Token": token, **(headers or {})})
        resp = conn.getresponse()
        try:
            return resp.status, dict(resp.getheaders()), resp.read(), True
        except http.client.IncompleteRead as e:
            return resp.status, dict(resp.getheaders()), e.partial, False
    finally:
        conn.close()


def test_drop_truncate_corrupt_and_slow(cloud, web01_root):
    token, _ = token_of(cloud)
    img = cloud.find_image("ubuntu-22.04")  # holds web01's root
    path = f"/image/v2/images/{img.id}/file"
    expected = web01_root.read_bytes()
    cloud.drop_after = 3 * MiB + 17
    status, h, got, complete = raw_get(cloud, path, token)
    assert status == 200 and not complete and got == expected[:3 * MiB + 17] and h["Content-Length"] == str(16 * MiB)
    status, h, got, complete = raw_get(cloud, path, token, {"Range": f"bytes={len(got)}-"})  # only once
    assert status == 206 and complete and got == expected[3 * MiB + 17:]
    assert cloud.downloads[0]["cut"] == 3 * MiB + 17 and cloud.downloads[0]["stream"].cut
    cloud.truncate_at = 10 * MiB
    for rng in (None, f"bytes={10 * MiB}-"):
        status, _, got, complete = raw_get(cloud, path, token, {"Range": rng} if rng else {})
        assert not complete and len(got) == (10 * MiB if rng is None else 0)
    cloud.truncate_at = None
    cloud.corrupt_at = 12345
    status, h, got, complete = raw_get(cloud, path, token)
    assert complete and got != expected and got[12345] == expected[12345] ^ 0xFF
    assert hashlib.md5(got).hexdigest() != h["Content-MD5"] == hashlib.md5(expected).hexdigest()
    cloud.corrupt_at = None
    cloud.chunk_size, cloud.chunk_delay = MiB, 0.05
    t = time.monotonic()
    status, _, got, complete = raw_get(cloud, path, token, {"Range": f"bytes=0-{4 * MiB - 1}"})
    assert complete and got == expected[:4 * MiB] and time.monotonic() - t >= 0.15


# ---- client configuration ------------------------------------------------------------------------
def test_clouds_yaml_and_env(cloud, tmp_path):
    path = write_clouds_yaml(tmp_path / "clouds.yaml", cloud, region="RegionTwo")
    doc = yaml.safe_load(path.read_text())
    entry = doc["clouds"]["hsdk-test"]
    assert entry == {"auth": {"auth_url": cloud.url + "/identity/v3", "username": "hsdk-user", "password": cloud.password,
                              "project_name": "hsdk-project", "user_domain_name": "Default", "project_domain_name": "Default"},
                     "region_name": "RegionTwo", "interface": "public", "identity_api_version": 3}
    assert doc["clouds"]["hsdk-decoy"]["auth"]["password"] != cloud.password
    ac = yaml.safe_load(write_clouds_yaml(tmp_path / "ac.yaml", cloud, app_credential=True, decoy=None).read_text())["clouds"]
    assert ac["hsdk-test"]["auth_type"] == "v3applicationcredential"
    assert ac["hsdk-test"]["auth"]["application_credential_secret"] == cloud.app_credential_secret
    v = os_vars(cloud)
    assert {k: v[k] for k in ("OS_AUTH_URL", "OS_USERNAME", "OS_PASSWORD", "OS_PROJECT_NAME", "OS_USER_DOMAIN_NAME",
                              "OS_PROJECT_DOMAIN_NAME", "OS_REGION_NAME")} == {
        "OS_AUTH_URL": cloud.auth_url, "OS_USERNAME": "hsdk-user", "OS_PASSWORD": cloud.password, "OS_PROJECT_NAME": "hsdk-project",
        "OS_USER_DOMAIN_NAME": "Default", "OS_PROJECT_DOMAIN_NAME": "Default", "OS_REGION_NAME": "RegionOne"}
    a = os_vars(cloud, app_credential=True)
    assert a["OS_APPLICATION_CREDENTIAL_ID"] == cloud.app_credential_id and "OS_USERNAME" not in a
    env = os_env(cloud, base={"PATH": "/bin", "OS_CLOUD": "elsewhere"})
    assert env["PATH"] == "/bin" and "OS_CLOUD" not in env and env["OS_PASSWORD"] == cloud.password
