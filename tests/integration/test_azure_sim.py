"""Self-tests of the Azure test infrastructure: Azurite (tests/sim/azure, azure_sim.py) with page
blobs, SAS URLs, its request log and the counting proxy; and the ARM / token / blob-endpoint
fixtures (azure_fixtures.py) served by fixture_server.py."""
import base64
import hashlib
import http.client
import json
import random
import time
import urllib.parse
import uuid

import pytest

import azure_sim
from azure_fixtures import VM, AzureState, Nic, arm_routes, blob_routes, make_disk
from azure_sim import CountingProxy, parse_page_list, verify_sas
from fixture_server import FixtureServer

KiB, MiB = 1 << 10, 1 << 20


def http_request(url, method="GET", headers=None, body=None):
    """(status, {lower-case header: value}, body bytes) of one request to an absolute URL."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    try:
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, u.path + ("?" + u.query if u.query else ""), body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def unique(prefix):
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def tamper(url, field="sig"):
    """The URL with one character of a SAS field changed."""
    split = urllib.parse.urlsplit(url)
    q = urllib.parse.parse_qsl(split.query)
    q = [(k, (v[:3] + ("A" if v[3] != "A" else "B") + v[4:]) if k == field else v) for k, v in q]
    return urllib.parse.urlunsplit(split._replace(query=urllib.parse.urlencode(q)))


def disk_bytes(size, seed, runs):
    """`size` bytes, zero but for seeded random bytes at the given [(offset, length)]."""
    rng = random.Random(seed)
    data = bytearray(size)
    for off, n in runs:
        data[off:off + n] = rng.randbytes(n)
    return bytes(data)


# ---- Azurite ---------------------------------------------------------------------------------
def test_page_blob_written_and_cleared_ranges(azurite):
    c = unique("pages")
    azurite.create_container(c)
    azurite.put_page_blob(c, "disk", 4 * MiB)
    azurite.write_pages(c, "disk", 0, b"\x11" * (8 * KiB))
    azurite.write_pages(c, "disk", 1 * MiB, b"\x22" * 1024)
    azurite.write_pages(c, "disk", 2 * MiB + 512, b"\x33" * 512)
    azurite.write_pages(c, "disk", 4 * MiB - 4096, b"\x44" * 4096)
    azurite.clear_pages(c, "disk", 2048, 2048)  # a hole inside the first run
    assert azurite.page_ranges(c, "disk") == [(0, 2047), (4096, 8191), (MiB, MiB + 1023), (2 * MiB + 512, 2 * MiB + 1023),
                                              (4 * MiB - 4096, 4 * MiB - 1)]
    assert azurite.read(c, "disk", byte_range=(0, 8191)) == b"\x11" * 2048 + bytes(2048) + b"\x11" * 4096
    # x-ms-range limits (and clips) the answer to that window
    status, h, body = azurite.get_page_ranges(c, "disk", byte_range=(4608, MiB + 511))
    assert status == 200 and h["x-ms-blob-content-length"] == str(4 * MiB)
    assert parse_page_list(body) == ([(4608, 8191), (MiB, MiB + 511)], [], None)
    # HEAD of a page blob: its type and size, no Content-MD5
    status, h, _ = azurite.request("HEAD", azurite.path(c, "disk"))
    assert status == 200 and h["x-ms-blob-type"] == "PageBlob" and h["content-length"] == str(4 * MiB)
    assert "content-md5" not in h
    # a ranged GET asking for the range's MD5 gets it; without asking, none
    status, h, body = azurite.request("GET", azurite.path(c, "disk"), headers={"x-ms-range": "bytes=0-4095", "x-ms-range-get-content-md5": "true"})
    assert status == 206 and h["content-range"] == f"bytes 0-4095/{4 * MiB}"
    assert h["content-md5"] == base64.b64encode(hashlib.md5(body).digest()).decode()
    status, h, _ = azurite.request("GET", azurite.path(c, "disk"), headers={"x-ms-range": "bytes=0-4095"})
    assert status == 206 and "content-md5" not in h


def test_make_page_blob_writes_only_nonzero_pages(azurite):
    c = unique("sparse")
    azurite.create_container(c)
    data = disk_bytes(2 * MiB, 7, [(100, 300), (64 * KiB, 5000), (2 * MiB - 512, 512)])
    azurite.make_page_blob(c, "d", data)
    assert azurite.page_ranges(c, "d") == [(0, 511), (64 * KiB, 64 * KiB + 5119), (2 * MiB - 512, 2 * MiB - 1)]
    assert azurite.read(c, "d") == data


def test_azurite_get_page_ranges_neither_pages_nor_diffs(azurite):
    """What Azurite (the pinned version) does with paging and diff requests (tests/sim/azure/README.md):
    maxresults and marker are ignored (one answer, no NextMarker); prevsnapshot= and
    x-ms-previous-snapshot-url are ignored too: 200 with the target's full page list, no ClearRange."""
    c = unique("nodiff")
    azurite.create_container(c)
    azurite.put_page_blob(c, "d", MiB)
    for i in range(5):
        azurite.write_pages(c, "d", i * 64 * KiB, b"\x01" * 512)
    full = [(i * 64 * KiB, i * 64 * KiB + 511) for i in range(5)]
    status, _, body = azurite.get_page_ranges(c, "d", maxresults=1)
    assert status == 200 and parse_page_list(body) == (full, [], None)
    status, _, body = azurite.get_page_ranges(c, "d", marker="bogus")
    assert status == 200 and parse_page_list(body) == (full, [], None)
    snap = azurite.snapshot_blob(c, "d")
    azurite.clear_pages(c, "d", 0, 512)
    azurite.write_pages(c, "d", 512 * KiB, b"\x02" * 512)
    now = full[1:] + [(512 * KiB, 512 * KiB + 511)]
    status, h, body = azurite.get_page_ranges(c, "d", prevsnapshot=snap)
    assert status == 200 and parse_page_list(body) == (now, [], None), "Azurite now answers diffs: update README and the fixtures"
    status, h, body = azurite.get_page_ranges(c, "d", headers={"x-ms-previous-snapshot-url": azurite.sas_url(c, "d", snapshot=snap)})
    assert status == 200 and parse_page_list(body) == (now, [], None)
    # the snapshot itself keeps its pages
    assert azurite.page_ranges(c, "d", snapshot=snap) == full


def test_sas_accepted_and_tampered_or_expired_refused(azurite):
    c = unique("sas")
    azurite.create_container(c)
    data = disk_bytes(MiB, 3, [(0, 4096), (300 * KiB, 2048)])
    azurite.make_page_blob(c, "d", data)
    url = azurite.sas_url(c, "d", expiry=time.time() + 600)
    q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    assert q["sr"] == "b" and q["sp"] == "r" and q["sv"] == azure_sim.SERVICE_VERSION and q["sig"]
    assert verify_sas(c, "d", q) is None
    status, h, body = http_request(url, headers={"x-ms-range": "bytes=0-4095"})
    assert status == 206 and body == data[:4096]
    status, h, body = http_request(url + "&comp=pagelist")
    assert status == 200 and parse_page_list(body)[0] == [(0, 4095), (300 * KiB, 300 * KiB + 2047)]
    # Azurite refuses a bad SAS with 403 AuthorizationFailure (Azure itself: AuthenticationFailed)
    for bad in (tamper(url, "sig"), url.replace("sp=r", "sp=rw"), url.replace(f"/{c}/d?", f"/{c}/e?"),
                azurite.sas_url(c, "d", expiry=time.time() - 60), azurite.sas_url(c, "d", start=time.time() + 600)):
        status, h, _ = http_request(bad, headers={"x-ms-range": "bytes=0-511"})
        assert (status, h.get("x-ms-error-code")) == (403, "AuthorizationFailure"), bad
    bad_q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(tamper(url)).query))
    assert verify_sas(c, "d", bad_q) == "signature mismatch"
    assert verify_sas(c, "d", q, now=time.time() + 3600) == "SAS expired"
    # write permission only: 403 AuthorizationPermissionMismatch
    status, h, _ = http_request(azurite.sas_url(c, "d", permissions="w"))
    assert (status, h.get("x-ms-error-code")) == (403, "AuthorizationPermissionMismatch")
    # a blob snapshot: sr=bs reads it; sr=b does not reach the snapshot
    snap = azurite.snapshot_blob(c, "d")
    azurite.write_pages(c, "d", 0, b"\xee" * 512)
    status, _, body = http_request(azurite.sas_url(c, "d", snapshot=snap), headers={"x-ms-range": "bytes=0-511"})
    assert status == 206 and body == data[:512]
    status, h, _ = http_request(azurite.sas_url(c, "d", snapshot=snap, resource="b"))
    assert status == 403
    # a stored access policy (si=): valid while the policy exists, refused once it is removed
    azurite.set_container_acl(c, {"grant1": {"permissions": "r", "expiry": time.time() + 600}})
    si_url = azurite.sas_url(c, "d", identifier="grant1")
    assert "si=grant1" in si_url and "sp=" not in si_url and "se=" not in si_url
    assert http_request(si_url, headers={"x-ms-range": "bytes=0-511"})[0] == 206
    azurite.set_container_acl(c, {})
    assert http_request(si_url, headers={"x-ms-range": "bytes=0-511"})[0] == 403


def test_request_log_has_ranges(azurite):
    c = unique("log")
    azurite.create_container(c)
    azurite.make_page_blob(c, "d", b"\x05" * 4096, MiB)
    since = time.time()
    url = azurite.sas_url(c, "d")
    http_request(url, headers={"x-ms-range": "bytes=0-1023"})
    http_request(url, headers={"Range": "bytes=1024-2047"})
    http_request(url + "&comp=pagelist")
    http_request(tamper(url))
    reqs = azurite.requests(since=since)
    assert [(r["method"], r["path"], r["operation"], r["x_ms_range"], r["range"], r["status"]) for r in reqs] == [
        ("GET", f"/devstoreaccount1/{c}/d", "Blob_Download", "bytes=0-1023", None, 206),
        ("GET", f"/devstoreaccount1/{c}/d", "Blob_Download", None, "bytes=1024-2047", 206),
        ("GET", f"/devstoreaccount1/{c}/d", "PageBlob_GetPageRanges", None, None, 200),
        ("GET", f"/devstoreaccount1/{c}/d", "Blob_Download", None, None, 403),
    ]
    assert reqs[2]["query"]["comp"] == "pagelist" and reqs[0]["query"]["sr"] == "b"
    assert azurite.requests(since=time.time() + 5) == []


def test_counting_proxy_counts_ranged_gets(azurite):
    c = unique("proxy")
    azurite.create_container(c)
    data = disk_bytes(2 * MiB, 11, [(0, 64 * KiB), (MiB, 100 * KiB)])
    azurite.make_page_blob(c, "d", data)
    with CountingProxy(azurite.url) as proxy:
        assert proxy.url == proxy.endpoint + "/devstoreaccount1"
        url = azurite.sas_url(c, "d", endpoint=proxy.endpoint)
        u = urllib.parse.urlsplit(url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)  # one kept-alive connection
        ranges = [(0, 65535), (MiB, MiB + 100 * KiB - 1), (MiB + 100 * KiB, MiB + 100 * KiB + 511)]
        for a, b in ranges:
            conn.request("GET", f"{u.path}?{u.query}", headers={"x-ms-range": f"bytes={a}-{b}"})
            resp = conn.getresponse()
            assert resp.status == 206 and resp.read() == data[a:b + 1]
        conn.request("HEAD", f"{u.path}?{u.query}")
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200 and resp.getheader("Content-Length") == str(2 * MiB)
        conn.request("GET", f"{u.path}?{u.query}&comp=pagelist")
        resp = conn.getresponse()
        assert resp.status == 200 and parse_page_list(resp.read())[0] == [(0, 65535), (MiB, MiB + 100 * KiB - 1)]
        conn.close()
        # a SharedKey-signed PUT passes through unchanged too
        status, _, _ = http_request(proxy.endpoint + azurite.path(c, "d") + "?comp=page", "PUT", body=b"\x09" * 512, headers=_signed(
            "PUT", azurite.path(c, "d"), {"comp": "page"}, {"x-ms-page-write": "update", "x-ms-range": "bytes=0-511", "Content-Length": "512"}))
        assert status == 201
        assert proxy.ranged_gets(rf"/{c}/d$") == [f"bytes={a}-{b}" for a, b in ranges]
        assert [(x["method"], x["status"]) for x in proxy.calls] == [("GET", 206)] * 3 + [("HEAD", 200), ("GET", 200), ("PUT", 201)]
        assert proxy.calls[4]["query"]["comp"] == "pagelist"
    assert azurite.read(c, "d", byte_range=(0, 511)) == b"\x09" * 512


def _signed(method, path, query, headers):
    h = {"x-ms-version": azure_sim.SERVICE_VERSION, "x-ms-date": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()), **headers}
    h["Authorization"] = azure_sim.shared_key_authorization(method, path, query, h)
    return h


# ---- ARM fixtures ------------------------------------------------------------------------------
@pytest.fixture
def arm(azurite):
    """(state, server): one subscription with two VMs on Azurite-backed disks, a fixture server
    answering token, ARM and blob-endpoint requests; accessSAS URLs point at that server."""
    state = AzureState(azurite=azurite)
    state.disk_container = unique("disks")
    os1 = make_disk(state, "web01-os", disk_bytes(4 * MiB, 1, [(0, 1024), (MiB, 8192)]), 4 * MiB)
    d0 = make_disk(state, "web01-data0", disk_bytes(8 * MiB, 2, [(0, 512), (5 * MiB, 64 * KiB)]), 8 * MiB, sku="StandardSSD_LRS")
    d1 = make_disk(state, "web01-data1", b"", 2 * MiB, sku="Standard_LRS")
    os2 = make_disk(state, "db01-os", disk_bytes(2 * MiB, 3, [(0, 512)]), 2 * MiB)
    state.add_vm(VM("web01", os1, [(0, d0), (3, d1)], [Nic("web01-nic0", "00-0D-3A-11-22-33"), Nic("web01-nic1", "00-0D-3A-44-55-66", "10.0.1.4", False)]))
    state.add_vm(VM("db01", os2, [], [Nic("db01-nic", "00-0D-3A-77-88-99", "10.0.0.5")], vm_size="Standard_E4s_v5",
                    hyper_v_generation="V1", security_type=None, os_type="Windows"))
    srv = FixtureServer(arm_routes(state) + blob_routes(state))
    state.blob_endpoint = srv.url
    try:
        yield state, srv
    finally:
        srv.stop()


def get_token(state, srv):
    status, _, body = http_request(f"{srv.url}/{state.tenant}/oauth2/v2.0/token", "POST", {"Content-Type": "application/x-www-form-urlencoded"},
                                   urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": state.client_id,
                                                           "client_secret": state.client_secret, "scope": "https://management.azure.com/.default"}).encode())
    assert status == 200, body
    return json.loads(body)["access_token"]


def call(srv, method, path_or_url, token, body=None, headers=None):
    url = path_or_url if path_or_url.startswith("http") else srv.url + path_or_url
    h = {"Authorization": f"Bearer {token}", **(headers or {})}
    status, rh, data = http_request(url, method, h, body)
    return status, rh, (json.loads(data) if data and rh.get("content-type", "").startswith("application/json") else data)


def poll(srv, url, token, limit=10):
    """Polls an operation URL until it stops answering 202 / InProgress; returns every answer."""
    answers = []
    for _ in range(limit):
        status, h, body = call(srv, "GET", url, token)
        answers.append((status, body))
        if status != 202 and not (isinstance(body, dict) and body.get("status") == "InProgress"):
            return answers
    raise AssertionError(f"operation still running after {limit} polls: {answers}")


def test_token_flows_and_bearer_checks(arm):
    state, srv = arm
    form = {"grant_type": "client_credentials", "client_id": state.client_id, "client_secret": "wrong",
            "scope": "https://management.azure.com/.default"}
    token_url = f"{srv.url}/{state.tenant}/oauth2/v2.0/token"
    ctype = {"Content-Type": "application/x-www-form-urlencoded"}
    status, _, body = http_request(token_url, "POST", ctype, urllib.parse.urlencode(form).encode())
    err = json.loads(body)
    assert status == 401 and err["error"] == "invalid_client" and err["error_description"].startswith("AADSTS7000215: Invalid client secret provided")
    status, _, body = http_request(token_url, "POST", ctype, urllib.parse.urlencode({**form, "client_secret": state.client_secret, "scope": "https://graph.microsoft.com/.default"}).encode())
    assert status == 400 and json.loads(body)["error"] == "invalid_scope"
    token = get_token(state, srv)
    status, _, body = http_request(token_url, "POST", ctype, urllib.parse.urlencode({**form, "client_secret": state.client_secret}).encode())
    issued = json.loads(body)
    assert issued["token_type"] == "Bearer" and issued["expires_in"] == state.token_lifetime and issued["access_token"].count(".") == 2
    claims = json.loads(base64.urlsafe_b64decode(issued["access_token"].split(".")[1] + "=="))
    assert claims["tid"] == state.tenant and claims["aud"] == "https://management.azure.com"

    vms = f"/subscriptions/{state.subscription}/providers/Microsoft.Compute/virtualMachines?api-version=2023-09-01"
    status, h, body = http_request(srv.url + vms)
    assert status == 401 and json.loads(body)["error"]["code"] == "AuthenticationFailed" and "www-authenticate" in h
    status, _, body = call(srv, "GET", vms, "not-a-token")
    assert status == 401 and body["error"]["code"] == "InvalidAuthenticationToken"
    status, _, body = call(srv, "GET", vms, token)
    assert status == 200 and body["value"]
    # the token stays out of the record
    assert all("authorization" not in c.headers for c in srv.calls)
    assert all(token not in json.dumps({k: v for k, v in c.to_dict().items() if k != "body"}) for c in srv.calls)
    state.expire_tokens()
    status, _, body = call(srv, "GET", vms, token)
    assert status == 401 and body["error"]["code"] == "ExpiredAuthenticationToken"

    # managed identity: IMDS wants Metadata: true
    imds = f"{srv.url}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F"
    status, _, body = http_request(imds)
    assert status == 400 and json.loads(body)["error_description"] == "Required metadata header not specified"
    status, _, body = http_request(imds, headers={"Metadata": "true"})
    got = json.loads(body)
    assert status == 200 and got["token_type"] == "Bearer" and got["resource"] == "https://management.azure.com/" and isinstance(got["expires_in"], str)
    assert call(srv, "GET", vms, got["access_token"])[0] == 200
    assert state.calls["token"] == 4 and state.calls["imds"] == 2


def test_vm_paging_and_resource_shapes(arm):
    state, srv = arm
    token = get_token(state, srv)
    url = f"/subscriptions/{state.subscription}/providers/Microsoft.Compute/virtualMachines?api-version=2023-09-01"
    names, pages = [], 0
    while url:
        status, _, body = call(srv, "GET", url, token)
        assert status == 200 and len(body["value"]) <= 1
        names += [v["name"] for v in body["value"]]
        pages += 1
        url = body.get("nextLink")
        assert url is None or (url.startswith(srv.url) and "api-version=2023-09-01" in url and "%24skiptoken=" not in url)
    assert names == ["db01", "web01"] and pages == 2

    rg = f"/subscriptions/{state.subscription}/resourceGroups/{state.resource_group}"
    status, _, vm = call(srv, "GET", f"{rg}/providers/Microsoft.Compute/virtualMachines/web01?api-version=2023-09-01", token)
    assert status == 200 and vm["id"] == state.vm_id("web01") and vm["properties"]["hardwareProfile"]["vmSize"] == "Standard_D2s_v5"
    assert vm["properties"]["securityProfile"] == {"uefiSettings": {"secureBootEnabled": True, "vTpmEnabled": True}, "securityType": "TrustedLaunch"}
    sp = vm["properties"]["storageProfile"]
    assert sp["osDisk"]["managedDisk"]["id"] == state.disk_id("web01-os") and sp["osDisk"]["osType"] == "Linux"
    assert [(d["lun"], d["name"], d["diskSizeGB"], d["managedDisk"]["storageAccountType"]) for d in sp["dataDisks"]] == [
        (0, "web01-data0", 1, "StandardSSD_LRS"), (3, "web01-data1", 1, "Standard_LRS")]
    nics = vm["properties"]["networkProfile"]["networkInterfaces"]
    assert [n["properties"]["primary"] for n in nics] == [True, False]
    status, _, db = call(srv, "GET", f"{rg}/providers/Microsoft.Compute/virtualMachines/DB01?api-version=2023-09-01&$expand=instanceView", token)
    assert status == 200 and "securityProfile" not in db["properties"] and db["properties"]["instanceView"]["hyperVGeneration"] == "V1"

    status, _, disk = call(srv, "GET", sp["osDisk"]["managedDisk"]["id"] + "?api-version=2023-04-02", token)
    assert status == 200 and disk["properties"]["hyperVGeneration"] == "V2" and disk["properties"]["diskSizeBytes"] == 4 * MiB
    assert disk["properties"]["securityProfile"] == {"securityType": "TrustedLaunch"} and disk["managedBy"] == state.vm_id("web01")
    status, _, nic = call(srv, "GET", nics[1]["id"] + "?api-version=2023-09-01", token)
    assert status == 200 and nic["properties"]["macAddress"] == "00-0D-3A-44-55-66" and nic["properties"]["primary"] is False
    assert nic["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"] == "10.0.1.4"
    status, _, body = call(srv, "GET", f"{rg}/providers/Microsoft.Compute/disks/nope?api-version=2023-04-02", token)
    assert status == 404 and body["error"]["code"] == "ResourceNotFound"
    status, _, body = call(srv, "GET", f"{rg}/providers/Microsoft.Compute/disks/web01-os", token)
    assert status == 400 and body["error"]["code"] == "MissingApiVersionParameter"


def snapshot_path(state, name):
    return f"/subscriptions/{state.subscription}/resourceGroups/{state.resource_group}/providers/Microsoft.Compute/snapshots/{name}"


def create_snapshot(state, srv, token, name, disk, tags=None, wait=False):
    """PUTs an incremental snapshot of `disk`; wait: polls its operation to the end (it must succeed)."""
    body = {"location": state.location, "tags": tags or {"hsdk": "test"},
            "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": state.disk_id(disk)}, "incremental": True}}
    status, h, created = call(srv, "PUT", snapshot_path(state, name) + "?api-version=2023-04-02", token, body)
    if wait:
        assert status == 201, created
        assert poll(srv, h["azure-asyncoperation"], token)[-1][1]["status"] == "Succeeded"
    return status, h, created


def grant(state, srv, token, name, seconds=3600):
    status, h, _ = call(srv, "POST", snapshot_path(state, name) + "/beginGetAccess?api-version=2023-04-02", token,
                        {"access": "Read", "durationInSeconds": seconds})
    assert status == 202 and h["location"], h
    answers = poll(srv, h["location"], token)
    return answers


def revoke(state, srv, token, name):
    status, h, _ = call(srv, "POST", snapshot_path(state, name) + "/endGetAccess?api-version=2023-04-02", token)
    assert status == 202
    return poll(srv, h["location"], token)


def test_snapshot_access_read_end_delete(arm):
    state, srv = arm
    token = get_token(state, srv)
    disk = state.disks["web01-data0"]
    before = state.azurite.read(*disk.blob)
    status, h, created = create_snapshot(state, srv, token, "hsdk-snap-1", "web01-data0", {"createdBy": "hsdk"})
    assert status == 201 and created["properties"]["provisioningState"] == "Updating" and created["properties"]["incremental"] is True
    assert [a[1]["status"] for a in poll(srv, h["azure-asyncoperation"], token)] == ["InProgress", "Succeeded"]
    status, _, snap = call(srv, "GET", snapshot_path(state, "hsdk-snap-1") + "?api-version=2023-04-02", token)
    assert status == 200 and snap["properties"]["provisioningState"] == "Succeeded" and snap["tags"] == {"createdBy": "hsdk"}
    assert snap["properties"]["creationData"]["sourceResourceId"] == state.disk_id("web01-data0")
    # the disk changes after the snapshot: the snapshot does not
    state.azurite.write_pages(*disk.blob, 0, b"\xff" * 512)

    answers = grant(state, srv, token, "hsdk-snap-1")
    assert [a[0] for a in answers] == [202, 200]
    sas = answers[-1][1]["accessSAS"]
    assert sas.startswith(srv.url + "/devstoreaccount1/") and "sig=" in sas and "sr=b" in sas
    assert call(srv, "GET", snapshot_path(state, "hsdk-snap-1") + "?api-version=2023-04-02", token)[2]["properties"]["diskState"] == "ActiveSAS"
    status, h, _ = http_request(sas, "HEAD")
    assert status == 200 and h["content-length"] == str(8 * MiB) and h["x-ms-blob-type"] == "PageBlob"
    status, _, body = http_request(sas + "&comp=pagelist")
    pages = parse_page_list(body)[0]
    assert status == 200 and pages == [(0, 511), (5 * MiB, 5 * MiB + 64 * KiB - 1)]
    for a, b in pages:
        status, _, data = http_request(sas, headers={"x-ms-range": f"bytes={a}-{b}"})
        assert status == 206 and data == before[a:b + 1]
    assert http_request(tamper(sas), headers={"x-ms-range": "bytes=0-511"})[0] == 403

    status, _, body = call(srv, "DELETE", snapshot_path(state, "hsdk-snap-1") + "?api-version=2023-04-02", token)
    assert status == 409 and body["error"]["code"] == "OperationNotAllowed"  # access still granted
    assert state.open_grants() == ["hsdk-snap-1"]
    assert [a[0] for a in revoke(state, srv, token, "hsdk-snap-1")] == [202, 200]
    assert state.open_grants() == []
    assert http_request(sas, headers={"x-ms-range": "bytes=0-511"})[0] == 403  # revoked

    status, h, _ = call(srv, "DELETE", snapshot_path(state, "hsdk-snap-1") + "?api-version=2023-04-02", token)
    assert status == 202 and poll(srv, h["location"], token)[-1][0] == 200
    assert state.snapshots_left() == [] and state.deleted_snapshots == ["hsdk-snap-1"]
    assert call(srv, "GET", snapshot_path(state, "hsdk-snap-1") + "?api-version=2023-04-02", token)[0] == 404
    assert call(srv, "DELETE", snapshot_path(state, "hsdk-snap-1") + "?api-version=2023-04-02", token)[0] == 204
    assert state.access_events == [("begin", "hsdk-snap-1", "accepted"), ("end", "hsdk-snap-1", "accepted")]
    assert not srv.unmatched


def read_diff(url, prev_url=None, prevsnapshot=None, byte_range=None):
    """Every page of a diff answer (following NextMarker): (changed, cleared, number of calls)."""
    changed, cleared, marker, calls = [], [], None, 0
    while True:
        q = "&comp=pagelist" + (f"&prevsnapshot={urllib.parse.quote(prevsnapshot)}" if prevsnapshot else "")
        q += f"&marker={urllib.parse.quote(marker)}" if marker else ""
        h = {"x-ms-version": azure_sim.SERVICE_VERSION}
        if prev_url:
            h["x-ms-previous-snapshot-url"] = prev_url
        if byte_range:
            h["x-ms-range"] = f"bytes={byte_range[0]}-{byte_range[1]}"
        status, _, body = http_request(url + q, headers=h)
        assert status == 200, body
        calls += 1
        p, c, marker = parse_page_list(body)
        changed += p
        cleared += c
        if not marker:
            return changed, cleared, calls


def test_incremental_snapshot_diffs(arm):
    state, srv = arm
    token = get_token(state, srv)
    disk = state.disks["web01-os"]
    assert create_snapshot(state, srv, token, "base", "web01-os", wait=True)[0] == 201
    az = state.azurite
    az.write_pages(*disk.blob, 64 * KiB, b"\x01" * 1024)  # new data
    az.write_pages(*disk.blob, MiB, b"\x02" * 512)  # rewritten inside the old run
    az.clear_pages(*disk.blob, 0, 1024)  # cleared
    az.write_pages(*disk.blob, 3 * MiB, b"\x03" * 512)
    # beginGetAccess before the snapshot's operation has ended: refused
    assert create_snapshot(state, srv, token, "incr", "web01-os")[0] == 201
    status, _, body = call(srv, "POST", snapshot_path(state, "incr") + "/beginGetAccess?api-version=2023-04-02", token,
                           {"access": "Read", "durationInSeconds": 60})
    assert status == 409 and body["error"]["code"] == "OperationNotAllowed"
    # reading the snapshot is a poll too: Updating once (operation_polls = 1), then Succeeded
    states = [call(srv, "GET", snapshot_path(state, "incr") + "?api-version=2023-04-02", token)[2]["properties"]["provisioningState"] for _ in range(2)]
    assert states == ["Updating", "Succeeded"]
    base_sas = grant(state, srv, token, "base")[-1][1]["accessSAS"]
    incr_sas = grant(state, srv, token, "incr")[-1][1]["accessSAS"]
    changed, cleared, calls = read_diff(incr_sas, prev_url=base_sas)
    assert changed == [(64 * KiB, 64 * KiB + 1023), (MiB, MiB + 511), (3 * MiB, 3 * MiB + 511)]
    assert cleared == [(0, 1023)]
    assert calls == 2  # 4 ranges, 2 per answer
    # a window
    assert read_diff(incr_sas, prev_url=base_sas, byte_range=(MiB, 4 * MiB - 1))[:2] == ([(MiB, MiB + 511), (3 * MiB, 3 * MiB + 511)], [])
    # the wrong way round, and a bad signature
    status, h, _ = http_request(base_sas + "&comp=pagelist", headers={"x-ms-previous-snapshot-url": incr_sas})
    assert (status, h["x-ms-error-code"]) == (409, "PreviousSnapshotCannotBeNewer")
    status, h, body = http_request(tamper(incr_sas) + "&comp=pagelist", headers={"x-ms-previous-snapshot-url": base_sas})
    assert (status, h["x-ms-error-code"]) == (403, "AuthenticationFailed") and b"signature mismatch" in body
    # configured ranges for a blob and a prevsnapshot value, paged by maxresults
    state.set_page_diff(*disk.blob, changed=[(0, 4095), (8192, 8703), (MiB, 2 * MiB - 1)], cleared=[(4096, 8191)], prev="2024-01-01T00:00:00.0000000Z")
    url = az.sas_url(*disk.blob, endpoint=srv.url)
    changed, cleared, calls = read_diff(url, prevsnapshot="2024-01-01T00:00:00.0000000Z")
    assert (changed, cleared, calls) == ([(0, 4095), (8192, 8703), (MiB, 2 * MiB - 1)], [(4096, 8191)], 2)
    status, _, body = http_request(url + "&comp=pagelist&prevsnapshot=2024-01-01T00%3A00%3A00.0000000Z&maxresults=1")
    assert parse_page_list(body)[0] == [(0, 4095)] and parse_page_list(body)[2]
    for name in ("base", "incr"):
        revoke(state, srv, token, name)
        assert call(srv, "DELETE", snapshot_path(state, name) + "?api-version=2023-04-02", token)[0] == 202
    assert state.open_grants() == [] and state.snapshots_left() == []
    assert state.calls["pagelist_diff"] == 8


def test_throttling_then_success(arm):
    state, srv = arm
    token = get_token(state, srv)
    state.throttle = {"list_vms": 2, "token": 1}
    vms = f"/subscriptions/{state.subscription}/providers/Microsoft.Compute/virtualMachines?api-version=2023-09-01"
    for _ in range(2):
        status, h, body = call(srv, "GET", vms, token)
        assert (status, h["retry-after"], body["error"]["code"]) == (429, "1", "TooManyRequests")
    assert call(srv, "GET", vms, token)[0] == 200
    status, h, _ = http_request(f"{srv.url}/{state.tenant}/oauth2/v2.0/token", "POST")
    assert status == 429 and h["retry-after"] == "1"
    assert get_token(state, srv)
    assert srv.count("GET", r"/virtualMachines$") == 3


def test_failure_knobs_keep_records(arm):
    state, srv = arm
    token = get_token(state, srv)
    # refused PUT: nothing created
    state.fail_snapshot, state.fail_snapshot_sources = "put", {"web01-data1"}
    status, _, body = create_snapshot(state, srv, token, "s-refused", "web01-data1")
    assert status == 409 and body["error"]["code"] == "OperationNotAllowed" and state.snapshots_left() == []
    # failed operation: the snapshot exists, Failed, and must be deleted
    state.fail_snapshot = "operation"
    status, h, _ = create_snapshot(state, srv, token, "s-failed", "web01-data1")
    final = poll(srv, h["azure-asyncoperation"], token)[-1][1]
    assert final["status"] == "Failed" and final["error"]["code"] == "InternalDiskManagementError"
    assert state.snapshots_left() == ["s-failed"]
    status, _, body = call(srv, "POST", snapshot_path(state, "s-failed") + "/beginGetAccess?api-version=2023-04-02", token,
                           {"access": "Read", "durationInSeconds": 60})
    assert status == 409
    # another disk still works
    assert create_snapshot(state, srv, token, "s-ok", "web01-os", wait=True)[0] == 201
    # beginGetAccess refused: no grant; failed operation: a grant that must be ended
    state.fail_get_access = "post"
    status, _, body = call(srv, "POST", snapshot_path(state, "s-ok") + "/beginGetAccess?api-version=2023-04-02", token,
                           {"access": "Read", "durationInSeconds": 60})
    assert status == 409 and state.open_grants() == []
    state.fail_get_access = "operation"
    answers = grant(state, srv, token, "s-ok")
    assert answers[-1][0] == 500 and answers[-1][1]["error"]["code"] == "InternalDiskManagementError"
    assert state.open_grants() == ["s-ok"]
    revoke(state, srv, token, "s-ok")
    state.delete_status = 204
    for name in ("s-failed", "s-ok"):
        assert call(srv, "DELETE", snapshot_path(state, name) + "?api-version=2023-04-02", token)[0] == 204
    assert state.open_grants() == [] and state.snapshots_left() == []
    assert state.created_snapshots == ["s-failed", "s-ok"] and state.deleted_snapshots == ["s-failed", "s-ok"]
    assert [e[2] for e in state.access_events] == ["refused", "refused", "failed", "accepted"]
