"""AWS clients against recorded request/response fixtures (fixture_server.py on 127.0.0.1).

The fixtures are shaped like the AWS API references - the EBS direct APIs (ListSnapshotBlocks,
GetSnapshotBlock, ListChangedBlocks: REST-JSON, x-amzn-ErrorType errors) and the EC2 API version
2016-11-15 (query Action= forms POSTed to "/", XML answers in the
http://ec2.amazonaws.com/doc/2016-11-15/ namespace, <Response><Errors> faults) - and cover what
moto (tests/integration/test_aws_sim.py) lacks:

  - ListSnapshotBlocks answered in pages, one of them empty but carrying a NextToken;
  - GetSnapshotBlock throttled (RequestThrottledException) a while, and for good;
  - EC2 throttling (RequestLimitExceeded, HTTP 503) that never ends, with max_attempts;
  - refusals that must not be retried: AccessDeniedException, ValidationException,
    ResourceNotFoundException;
  - a block whose x-amz-Checksum does not match its body, and one shorter than its
    x-amz-Data-Length;
  - ListChangedBlocks in pages with empty ones carrying a NextToken, and a changed block without
    a SecondBlockToken (gone from the second snapshot: zeros, never fetched);
  - EC2 export tasks: CreateInstanceExportTask, DescribeExportTasks polled until completed, the
    S3 object read by ranges (path style) and deleted afterwards; and a refusal (NotExportable);
  - a snapshot that stays pending past snapshot_timeout (and is deleted by us);
  - and, in every failing case, that the secret access key is never printed.
"""
import base64
import hashlib
import json
import os
import random
import re
import time

import pytest

from conftest import MiB, hsdk, qemu_img, write_pattern
from fixture_server import FixtureServer, Response, Route

GiB = 1 << 30
BLOCK = 512 * 1024  # EBS direct APIs' BlockSize
KEY_ID = "AKIAFIXTUREKEY000001"
SECRET = "fixtureSecret/Do+Not+Print/9f3c0a7e51d24b6c8e0f"
SNAP = "snap-0123456789abcdef0"
INSTANCE = "i-0123456789abcdef0"
VOLUME = "vol-0fedcba9876543210"
EC2_NS = "http://ec2.amazonaws.com/doc/2016-11-15/"


# ---------------------------------------------------------------------------------------------
# Environment and helpers


def aws_env(url, tmp_path):
    """The environment hsdk runs in: no AWS_* of the caller's, our keys, region and endpoint, and
    no ~/.aws files."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({
        "AWS_ACCESS_KEY_ID": KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": url,
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
    })
    return env


def no_secret(p):
    """Asserts the secret access key is nowhere in what the process printed (and returns it)."""
    assert SECRET not in p.stdout and SECRET not in p.stderr, "the secret access key was printed"
    for part in SECRET.split("/"):
        assert part not in p.stdout and part not in p.stderr, "a piece of the secret access key was printed"
    return p


def run_json(env, operation, request):
    """hsdk run OPERATION -r REQUEST --json: (process, parsed stdout)."""
    p = hsdk("run", operation, "-r", json.dumps(request), "--json", env=env, check=False, timeout=60)
    return p, (json.loads(p.stdout) if p.stdout.strip() else None)


def failed_json(env, operation, request):
    """Runs an operation that must fail; returns its {"code", "message"} error."""
    p, r = run_json(env, operation, request)
    no_secret(p)
    assert p.returncode != 0, p.stdout + p.stderr
    assert r is not None and "error" in r, p.stdout + p.stderr
    return r["error"]


def block_bytes(seed, index):
    """A block's deterministic content: random bytes, a stretch of text and a stretch of zeros, so
    no two blocks (of any snapshot) are alike."""
    rng = random.Random(f"{seed}/{index}")
    data = bytearray(rng.randbytes(BLOCK))
    text = f"snapshot {seed} block {index} ".encode() * 4000
    data[4096:4096 + 40000] = text[:40000]
    data[200000:260000] = bytes(60000)
    assert len(data) == BLOCK
    return bytes(data)


def write_raw(path, blocks, size=GiB):
    """A sparse raw image of `size` bytes holding `blocks` ({index: bytes}) and nothing else."""
    with open(path, "wb") as f:
        f.truncate(size)
        for index, data in blocks.items():
            f.seek(index * BLOCK)
            f.write(data)
    return path


def assert_same(image, fmt, raw):
    p = qemu_img("compare", "-f", fmt, "-F", "raw", image, raw, check=False)
    assert p.returncode == 0, f"qemu-img compare {image} {raw}: {p.stdout}{p.stderr}"


def token_of(snapshot, index):
    return f"AAUBA{snapshot[-6:]}x{index:06d}Tok"


def block_answer(data, checksum=None, length=None):
    """GetSnapshotBlock's answer: the bytes, their SHA-256 (base64) and length."""
    digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
    return Response(200, {"Content-Type": "application/octet-stream",
                          "x-amz-Checksum": checksum if checksum is not None else digest,
                          "x-amz-Checksum-Algorithm": "SHA256",
                          "x-amz-Data-Length": str(length if length is not None else len(data))}, data)


def ebs_error(status, name, message, reason=None):
    body = {"Message": message}
    if reason:
        body["Reason"] = reason
    return Response(status, {"x-amzn-ErrorType": name, "x-amzn-RequestId": "7f1e0c52-5d5b-4c1e-9a7e-000000000001",
                             "Content-Type": "application/json"}, body)


def throttled():
    return ebs_error(400, "RequestThrottledException", "The request was throttled.", "ACCOUNT_THROTTLED")


def list_page(blocks, next_token=None, volume_gib=1):
    """A ListSnapshotBlocks page listing `blocks` ({index: token})."""
    page = {"Blocks": [{"BlockIndex": i, "BlockToken": t} for i, t in blocks.items()],
            "BlockSize": BLOCK, "VolumeSize": volume_gib, "ExpiryTime": time.time() + 3600}
    if next_token:
        page["NextToken"] = next_token
    return Response(200, {"Content-Type": "application/json"}, page)


def paged_list_routes(snapshot, pages):
    """ListSnapshotBlocks of `snapshot` answered by `pages`: [(token asked with or None, [indexes],
    next token or None)], each page only for the token it answers."""
    routes = []
    for asked, indexes, next_token in pages:
        routes.append(Route("GET", rf"^/snapshots/{snapshot}/blocks$",
                            list_page({i: token_of(snapshot, i) for i in indexes}, next_token),
                            when=lambda r, asked=asked: r.query.get("pageToken") == asked
                            and r.query.get("maxResults") == "10000" and "startingBlockIndex" not in r.query))
    return routes


def block_routes(snapshot, blocks):
    """GetSnapshotBlock of `snapshot`'s `blocks` ({index: bytes}); a wrong or missing block token
    is refused as EBS refuses it."""
    def answer(r):
        index = int(r.path.rsplit("/", 1)[1])
        if index not in blocks:
            return ebs_error(404, "ResourceNotFoundException", f"The block {index} does not exist.", "SNAPSHOT_NOT_FOUND")
        if r.query.get("blockToken") != token_of(snapshot, index):
            return ebs_error(400, "ValidationException", "The block token is not valid.", "INVALID_BLOCK_TOKEN")
        return block_answer(blocks[index])
    return [Route("GET", rf"^/snapshots/{snapshot}/blocks/\d+$", answer)]


def block_calls(srv, snapshot, index=None):
    which = r"\d+" if index is None else str(index)
    pattern = rf"^/snapshots/{snapshot}/blocks/{which}$"
    return [c for c in srv.calls if c.method == "GET" and re.search(pattern, c.path)]


def fetched_indexes(srv, snapshot):
    return sorted(int(c.path.rsplit("/", 1)[1]) for c in block_calls(srv, snapshot))


def snapshot_routes(snapshot, blocks):
    """A whole snapshot: one ListSnapshotBlocks page and its blocks."""
    return paged_list_routes(snapshot, [(None, sorted(blocks), None)]) + block_routes(snapshot, blocks)


def empty_folder(path):
    return not path.exists() or not any(path.iterdir())


# The blocks of the snapshot most tests read: the first, a few together, one far off, the last.
BLOCKS = {i: block_bytes("A", i) for i in (0, 1, 2, 5, 100, 2047)}


@pytest.fixture
def out_dir(tmp_path):
    d = tmp_path / "out"
    d.mkdir()
    return d


# ---------------------------------------------------------------------------------------------
# EBS direct APIs through ebs:// images


def test_list_snapshot_blocks_paging_with_an_empty_page(tmp_path, out_dir):
    pages = [(None, [0, 1, 2], "page-2-AAABBB"),
             ("page-2-AAABBB", [], "page-3-CCCDDD"),  # empty, but not the last
             ("page-3-CCCDDD", [5, 100, 2047], None)]
    expected = write_raw(tmp_path / "expected.raw", BLOCKS)
    with FixtureServer(paged_list_routes(SNAP, pages) + block_routes(SNAP, BLOCKS)) as srv:
        out = out_dir / "out.raw"
        no_secret(hsdk("convert", "-O", "raw", f"ebs://{SNAP}", out, env=aws_env(srv.url, tmp_path), timeout=60))
        assert not srv.unmatched, srv.unmatched
        lists = [c for c in srv.calls if c.path == f"/snapshots/{SNAP}/blocks"]
        assert [c.query.get("pageToken") for c in lists] == [None, "page-2-AAABBB", "page-3-CCCDDD"]
        assert all(c.query.get("maxResults") == "10000" for c in lists)
        # Each listed block once, with its token.
        assert fetched_indexes(srv, SNAP) == sorted(BLOCKS)
        for c in block_calls(srv, SNAP):
            assert c.query["blockToken"] == token_of(SNAP, int(c.path.rsplit("/", 1)[1]))
    assert out.stat().st_size == GiB
    assert_same(out, "raw", expected)


def test_map_shows_data_exactly_at_the_listed_blocks(tmp_path):
    with FixtureServer(snapshot_routes(SNAP, BLOCKS)) as srv:
        p = no_secret(hsdk("map", "--output=json", f"ebs://{SNAP}", env=aws_env(srv.url, tmp_path), timeout=60))
        assert not srv.unmatched, srv.unmatched
        # Answered from ListSnapshotBlocks alone: one page asked, no block fetched.
        assert srv.count("GET", rf"^/snapshots/{SNAP}/blocks$") == 1
        assert not block_calls(srv, SNAP)
    extents = json.loads(p.stdout)
    data = [(e["start"], e["length"]) for e in extents if e["data"]]
    # Merged runs of the listed blocks: 0-2, 5, 100, 2047.
    assert data == [(0, 3 * BLOCK), (5 * BLOCK, BLOCK), (100 * BLOCK, BLOCK), (2047 * BLOCK, BLOCK)]
    # The rest reads as zeros, and the map covers the whole volume.
    assert sum(e["length"] for e in extents) == GiB
    assert all(e["zero"] for e in extents if not e["data"])


def test_throttled_block_is_retried_until_it_comes(tmp_path, out_dir):
    expected = write_raw(tmp_path / "expected.raw", BLOCKS)
    throttled_then_block = Route("GET", rf"^/snapshots/{SNAP}/blocks/5$",
                                 [throttled(), throttled(), block_answer(BLOCKS[5])])
    with FixtureServer([throttled_then_block] + snapshot_routes(SNAP, BLOCKS)) as srv:
        out = out_dir / "out.raw"
        no_secret(hsdk("convert", "-O", "raw", f"ebs://{SNAP}", out, env=aws_env(srv.url, tmp_path), timeout=60))
        assert not srv.unmatched, srv.unmatched
        assert len(block_calls(srv, SNAP, 5)) == 3
        assert fetched_indexes(srv, SNAP) == sorted(list(BLOCKS) + [5, 5])
    assert_same(out, "raw", expected)


def test_endless_throttling_gives_up_after_max_attempts(tmp_path):
    """ebs:// images retry a throttled call 2 x 5 times with backoff from 500 ms (about a minute
    and a half) and no request field or flag lowers that; a provider's config has max_attempts.
    EC2 throttles with HTTP 503 and RequestLimitExceeded."""
    refusal = ec2_error("RequestLimitExceeded", "Request limit exceeded.", status=503)
    with FixtureServer([ec2_route("DescribeInstances", refusal)]) as srv:
        error = failed_json(aws_env(srv.url, tmp_path), "vms.list",
                            {"provider": "aws", "config": provider_config(srv.url, max_attempts=2)})
        assert srv.count("POST", "^/$") == 2
        assert not srv.unmatched, srv.unmatched
    assert "RequestLimitExceeded" in error["message"] and "throttled" in error["message"], error
    assert "DescribeInstances" in error["message"], error


def test_endless_block_throttling_through_the_provider(tmp_path, out_dir):
    """The same for GetSnapshotBlock, through an ebs-direct export whose config has max_attempts:
    the error names the snapshot and the block, nothing of the disk stays, and our snapshot is
    deleted."""
    blocks = {0: block_bytes("T", 0), 1: block_bytes("T", 1)}
    routes = instance_routes() + [
        ec2_route("CreateSnapshots", create_snapshots_answer(SNAP)),
        ec2_route("DescribeSnapshots", describe_snapshots_answer(SNAP, "completed", "100%")),
        ec2_route("DeleteSnapshot", delete_snapshot_answer()),
        Route("GET", rf"^/snapshots/{SNAP}/blocks/1$", throttled()),
    ] + snapshot_routes(SNAP, blocks)
    with FixtureServer(routes) as srv:
        error = failed_json(aws_env(srv.url, tmp_path), "export.run",
                            {"provider": "aws", "config": provider_config(srv.url, max_attempts=2, poll_interval_ms=50),
                             "vm": INSTANCE, "output_dir": str(out_dir), "format": "raw"})
        assert not srv.unmatched, srv.unmatched
        tries = len(block_calls(srv, SNAP, 1))
        assert len(block_calls(srv, SNAP, 0)) <= 1
        deletes = [c for c in srv.calls if c.method == "POST" and c.form.get("Action") == "DeleteSnapshot"]
    assert f"{SNAP} block 1" in error["message"] and "throttled" in error["message"], error
    assert tries == 2, tries  # max_attempts
    assert [c.form["SnapshotId"] for c in deletes] == [SNAP]
    assert empty_folder(out_dir), list(out_dir.rglob("*"))


def test_access_denied_is_not_retried(tmp_path, out_dir):
    denied = ebs_error(403, "AccessDeniedException", "User: arn:aws:iam::123456789012:user/backup is not authorized "
                       "to perform: ebs:GetSnapshotBlock", "UNAUTHORIZED_ACCOUNT")
    one = {0: BLOCKS[0]}
    routes = [Route("GET", rf"^/snapshots/{SNAP}/blocks/\d+$", denied)] + snapshot_routes(SNAP, one)
    with FixtureServer(routes) as srv:
        env = aws_env(srv.url, tmp_path)
        out = out_dir / "out.raw"
        error = failed_json(env, "image.convert", {"source": f"ebs://{SNAP}", "destination": str(out), "output_format": "raw"})
        assert len(block_calls(srv, SNAP)) == 1
        assert not srv.unmatched, srv.unmatched
        assert empty_folder(out_dir), list(out_dir.iterdir())
        assert error["code"] == "permission_denied", error
        assert "AccessDeniedException" in error["message"] and "UNAUTHORIZED_ACCOUNT" in error["message"], error
        assert f"{SNAP} block 0" in error["message"], error
        # The command line: refused at once as well, and nothing left.
        srv.calls.clear()
        p = no_secret(hsdk("convert", "-O", "raw", f"ebs://{SNAP}", out, env=env, check=False, timeout=60))
        assert p.returncode != 0
        assert "AccessDeniedException" in p.stderr and f"{SNAP} block 0" in p.stderr, p.stderr
        assert len(block_calls(srv, SNAP)) == 1
        assert empty_folder(out_dir), list(out_dir.iterdir())


@pytest.mark.parametrize("status,name,code", [
    (400, "ValidationException", "invalid_argument"),
    (404, "ResourceNotFoundException", "not_found"),
])
def test_list_refusals_are_not_retried(tmp_path, status, name, code):
    message = {"ValidationException": "The snapshot ID is not valid.",
               "ResourceNotFoundException": f"The snapshot '{SNAP}' does not exist."}[name]
    reason = {"ValidationException": "INVALID_SNAPSHOT_ID", "ResourceNotFoundException": "SNAPSHOT_NOT_FOUND"}[name]
    with FixtureServer([Route("GET", rf"^/snapshots/{SNAP}/blocks$", ebs_error(status, name, message, reason))]) as srv:
        error = failed_json(aws_env(srv.url, tmp_path), "image.info", {"path": f"ebs://{SNAP}"})
        assert srv.count("GET", rf"^/snapshots/{SNAP}/blocks$") == 1
        assert not srv.unmatched, srv.unmatched
    assert error["code"] == code, error
    assert name in error["message"] and message in error["message"] and reason in error["message"], error
    assert SNAP in error["message"], error


def test_checksum_mismatch_is_refetched_then_refused(tmp_path, out_dir):
    wrong = base64.b64encode(hashlib.sha256(b"something else").digest()).decode()
    bad = Route("GET", rf"^/snapshots/{SNAP}/blocks/5$", block_answer(BLOCKS[5], checksum=wrong))
    with FixtureServer([bad] + snapshot_routes(SNAP, BLOCKS)) as srv:
        out = out_dir / "out.raw"
        error = failed_json(aws_env(srv.url, tmp_path), "image.convert",
                            {"source": f"ebs://{SNAP}", "destination": str(out), "output_format": "raw"})
        assert len(block_calls(srv, SNAP, 5)) == 3
        assert not srv.unmatched, srv.unmatched
    assert error["code"] == "checksum_mismatch", error
    assert f"{SNAP} block 5" in error["message"] and wrong in error["message"], error
    assert empty_folder(out_dir), list(out_dir.iterdir())


def test_truncated_block_is_refetched_then_refused(tmp_path, out_dir):
    # The service announced the whole block (its length and checksum); less of it came.
    whole = block_answer(BLOCKS[2])
    short = Route("GET", rf"^/snapshots/{SNAP}/blocks/2$", Response(200, whole.headers, BLOCKS[2][:300000]))
    with FixtureServer([short] + snapshot_routes(SNAP, BLOCKS)) as srv:
        out = out_dir / "out.raw"
        error = failed_json(aws_env(srv.url, tmp_path), "image.convert",
                            {"source": f"ebs://{SNAP}", "destination": str(out), "output_format": "raw"})
        assert len(block_calls(srv, SNAP, 2)) == 3
        assert not srv.unmatched, srv.unmatched
    assert f"{SNAP} block 2" in error["message"], error
    assert "300000" in error["message"] and str(BLOCK) in error["message"], error
    assert empty_folder(out_dir), list(out_dir.iterdir())


# ---------------------------------------------------------------------------------------------
# ListChangedBlocks: a delta between two snapshots of one volume


def test_delta_from_list_changed_blocks_reads_only_changed_blocks(tmp_path):
    snap_a, snap_b = "snap-0aaaaaaaaaaaaaaa1", "snap-0bbbbbbbbbbbbbbb2"
    a = {i: block_bytes("A", i) for i in (0, 1, 2, 5, 100, 2047)}
    b = dict(a)
    b[1] = block_bytes("B", 1)      # rewritten
    del b[5]                        # trimmed: in A, not in B
    b[6] = block_bytes("B", 6)      # new
    b[7] = block_bytes("B", 7)      # new, next to the one before
    for i in range(8, 16):
        b[i] = block_bytes("B", i)  # a longer run of new blocks (4 MiB)...
    a[16] = b[16] = block_bytes("A", 16)  # ...then an unchanged one, which must not be read ahead
    b[2046] = block_bytes("B", 2046)

    def entry(i):
        e = {"BlockIndex": i}
        if i in a:
            e["FirstBlockToken"] = token_of(snap_a, i)
        if i in b:
            e["SecondBlockToken"] = token_of(snap_b, i)
        return e

    def changed_page(indexes, next_token):
        page = {"ChangedBlocks": [entry(i) for i in indexes], "BlockSize": BLOCK, "VolumeSize": 1,
                "ExpiryTime": time.time() + 3600}
        if next_token:
            page["NextToken"] = next_token
        return Response(200, {"Content-Type": "application/json"}, page)

    changed_pages = [(None, [1], "cb-2"), ("cb-2", [], "cb-3"), ("cb-3", [5, 6], "cb-4"), ("cb-4", [], "cb-5"),
                     ("cb-5", [7, 8, 9, 10, 11, 12, 13, 14, 15, 2046], None)]
    routes = []
    for asked, indexes, next_token in changed_pages:
        routes.append(Route("GET", rf"^/snapshots/{snap_b}/changedblocks$", changed_page(indexes, next_token),
                            when=lambda r, asked=asked: r.query.get("pageToken") == asked
                            and r.query.get("firstSnapshotId") == snap_a and r.query.get("maxResults") == "10000"))
    routes += snapshot_routes(snap_a, a) + snapshot_routes(snap_b, b)

    a_raw = write_raw(tmp_path / "a.raw", a)
    b_raw = write_raw(tmp_path / "b.raw", b)
    qemu_img("convert", "-f", "raw", "-O", "qcow2", a_raw, tmp_path / "base.qcow2")
    out = tmp_path / "out.qcow2"
    with FixtureServer(routes) as srv:
        p = no_secret(hsdk("delta", "create", "--base", f"ebs://{snap_a}", "--new", f"ebs://{snap_b}", "--backing", "base.qcow2",
                 out, "--json", env=aws_env(srv.url, tmp_path), timeout=60))
        assert not srv.unmatched, srv.unmatched
        lists = [c for c in srv.calls if c.path.endswith("/changedblocks")]
        assert [c.query.get("pageToken") for c in lists] == [None, "cb-2", "cb-3", "cb-4", "cb-5"]
        # Of B, only the changed blocks it holds, once each; block 5 (no SecondBlockToken) is zeros.
        fetched_b = fetched_indexes(srv, snap_b)
        fetched_a = fetched_indexes(srv, snap_a)
    result = json.loads(p.stdout)
    assert result["changes_from"] == "platform", result
    assert fetched_b == [1, 6, 7] + list(range(8, 16)) + [2046], fetched_b
    assert fetched_a == [], fetched_a  # the base is never read: the platform said what changed
    assert_same(out, "qcow2", b_raw)
    info = json.loads(qemu_img("info", "--output=json", out).stdout)
    assert info["backing-filename"] == "base.qcow2"


# ---------------------------------------------------------------------------------------------
# EC2 (query API, XML) for the aws provider


def xml_answer(action, inner, status=200):
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<{action}Response xmlns="{EC2_NS}">\n'
            f"    <requestId>59dbff89-35bd-4eac-99ed-be587EXAMPLE</requestId>\n{inner}\n</{action}Response>\n")
    return Response(status, {"Content-Type": "text/xml;charset=UTF-8"}, body)


def ec2_error(code, message, status=400):
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
            f"<Code>{code}</Code><Message>{message}</Message></Error></Errors>"
            "<RequestID>ea966190-f9aa-478e-9ede-example</RequestID></Response>")
    return Response(status, {"Content-Type": "text/xml;charset=UTF-8"}, body)


def ec2_route(action, responder, when=None):
    return Route("POST", r"^/$", responder,
                 when=lambda r: r.form.get("Action") == action and r.form.get("Version") == "2016-11-15"
                 and (when is None or when(r)))


def ec2_calls(srv, action):
    return [c for c in srv.calls if c.method == "POST" and c.path == "/" and c.form.get("Action") == action]


def provider_config(url, **more):
    config = {"endpoint_url": url, "region": "us-east-1"}
    config.update(more)
    return config


def instance_routes(volume_gib=1):
    instances = f"""    <reservationSet>
        <item>
            <reservationId>r-0a1b2c3d4e5f60718</reservationId>
            <ownerId>123456789012</ownerId>
            <groupSet/>
            <instancesSet>
                <item>
                    <instanceId>{INSTANCE}</instanceId>
                    <imageId>ami-0abcdef1234567890</imageId>
                    <instanceState><code>16</code><name>running</name></instanceState>
                    <privateDnsName>ip-10-0-0-12.ec2.internal</privateDnsName>
                    <instanceType>t3.micro</instanceType>
                    <launchTime>2024-05-01T09:00:00.000Z</launchTime>
                    <placement><availabilityZone>us-east-1a</availabilityZone><groupName/><tenancy>default</tenancy></placement>
                    <monitoring><state>disabled</state></monitoring>
                    <subnetId>subnet-0123abcd</subnetId>
                    <vpcId>vpc-0123abcd</vpcId>
                    <privateIpAddress>10.0.0.12</privateIpAddress>
                    <architecture>x86_64</architecture>
                    <rootDeviceType>ebs</rootDeviceType>
                    <rootDeviceName>/dev/xvda</rootDeviceName>
                    <blockDeviceMapping>
                        <item>
                            <deviceName>/dev/xvda</deviceName>
                            <ebs>
                                <volumeId>{VOLUME}</volumeId>
                                <status>attached</status>
                                <attachTime>2024-05-01T09:00:01.000Z</attachTime>
                                <deleteOnTermination>true</deleteOnTermination>
                            </ebs>
                        </item>
                    </blockDeviceMapping>
                    <virtualizationType>hvm</virtualizationType>
                    <tagSet><item><key>Name</key><value>web01</value></item></tagSet>
                    <hypervisor>xen</hypervisor>
                    <networkInterfaceSet>
                        <item>
                            <networkInterfaceId>eni-0123456789abcdef0</networkInterfaceId>
                            <subnetId>subnet-0123abcd</subnetId>
                            <vpcId>vpc-0123abcd</vpcId>
                            <macAddress>0A:1B:2C:3D:4E:5F</macAddress>
                            <privateIpAddress>10.0.0.12</privateIpAddress>
                            <attachment><attachmentId>eni-attach-0123</attachmentId><deviceIndex>0</deviceIndex><status>attached</status></attachment>
                        </item>
                    </networkInterfaceSet>
                    <platformDetails>Linux/UNIX</platformDetails>
                    <bootMode>uefi-preferred</bootMode>
                </item>
            </instancesSet>
        </item>
    </reservationSet>"""
    volumes = f"""    <volumeSet>
        <item>
            <volumeId>{VOLUME}</volumeId>
            <size>{volume_gib}</size>
            <snapshotId/>
            <availabilityZone>us-east-1a</availabilityZone>
            <status>in-use</status>
            <createTime>2024-05-01T09:00:00.000Z</createTime>
            <attachmentSet>
                <item><volumeId>{VOLUME}</volumeId><instanceId>{INSTANCE}</instanceId><device>/dev/xvda</device>
                      <status>attached</status><attachTime>2024-05-01T09:00:01.000Z</attachTime>
                      <deleteOnTermination>true</deleteOnTermination></item>
            </attachmentSet>
            <volumeType>gp3</volumeType>
            <iops>3000</iops>
            <encrypted>false</encrypted>
            <multiAttachEnabled>false</multiAttachEnabled>
            <throughput>125</throughput>
        </item>
    </volumeSet>"""
    return [
        ec2_route("DescribeInstances", xml_answer("DescribeInstances", instances),
                  when=lambda r: r.form.get("InstanceId.1") in (None, INSTANCE)),
        ec2_route("DescribeVolumes", xml_answer("DescribeVolumes", volumes), when=lambda r: r.form.get("VolumeId.1") == VOLUME),
    ]


def snapshot_item(snapshot, state, progress, state_tag="status"):
    return f"""        <item>
            <snapshotId>{snapshot}</snapshotId>
            <volumeId>{VOLUME}</volumeId>
            <{state_tag}>{state}</{state_tag}>
            <startTime>2024-05-01T10:00:00.000Z</startTime>
            <progress>{progress}</progress>
            <ownerId>123456789012</ownerId>
            <volumeSize>1</volumeSize>
            <description>libhypersdk export of {INSTANCE}</description>
            <encrypted>false</encrypted>
            <tagSet><item><key>Name</key><value>web01</value></item></tagSet>
        </item>"""


def create_snapshots_answer(snapshot):
    return xml_answer("CreateSnapshots", f"    <snapshotSet>\n{snapshot_item(snapshot, 'pending', '', 'state')}\n    </snapshotSet>")


def describe_snapshots_answer(snapshot, status, progress):
    return xml_answer("DescribeSnapshots", f"    <snapshotSet>\n{snapshot_item(snapshot, status, progress)}\n    </snapshotSet>")


def delete_snapshot_answer():
    return xml_answer("DeleteSnapshot", "    <return>true</return>")


EXPORT_TASK = "export-i-0a1b2c3d4e5f60718"
EXPORT_KEY = f"vms/{EXPORT_TASK}.vmdk"


def export_task_xml(state, message=""):
    return f"""<exportTaskId>{EXPORT_TASK}</exportTaskId>
        <description>libhypersdk export</description>
        <state>{state}</state>
        <statusMessage>{message}</statusMessage>
        <instanceExport>
            <instanceId>{INSTANCE}</instanceId>
            <targetEnvironment>vmware</targetEnvironment>
        </instanceExport>
        <exportToS3>
            <diskImageFormat>vmdk</diskImageFormat>
            <s3Bucket>exports</s3Bucket>
            <s3Key>{EXPORT_KEY}</s3Key>
        </exportToS3>"""


def ranged_object(data):
    """An S3 GetObject responder that honours Range: bytes=A-B (206 with Content-Range)."""
    def answer(r):
        headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes", "ETag": '"0123456789abcdef"',
                   "Last-Modified": "Wed, 01 May 2024 11:00:00 GMT"}
        wanted = r.headers.get("range")
        if not wanted:
            return Response(200, headers, data)
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", wanted.strip())
        if not m:
            return Response(400, {"Content-Type": "application/xml"}, "<Error><Code>InvalidArgument</Code></Error>")
        first = int(m.group(1))
        last = min(int(m.group(2)) if m.group(2) else len(data) - 1, len(data) - 1)
        if first >= len(data):
            return Response(416, {"Content-Type": "application/xml", "Content-Range": f"bytes */{len(data)}"},
                            "<Error><Code>InvalidRange</Code><Message>The requested range is not satisfiable</Message></Error>")
        headers["Content-Range"] = f"bytes {first}-{last}/{len(data)}"
        return Response(206, headers, data[first:last + 1])
    return answer


def export_task_config(url, **more):
    return provider_config(url, export_bucket="exports", export_prefix="vms/", poll_interval_ms=50, **more)


def test_export_task_polls_reads_the_object_by_ranges_and_deletes_it(tmp_path):
    raw = tmp_path / "disk.raw"
    write_pattern(raw, 6 * MiB, seed=41)
    with open(raw, "r+b") as f:
        f.truncate(GiB)  # the volume's size; the data in its first 6 MiB
    vmdk = tmp_path / "disk.vmdk"
    qemu_img("convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", raw, vmdk)
    data = vmdk.read_bytes()
    out = tmp_path / "export"
    states = [xml_answer("DescribeExportTasks", f"    <exportTaskSet><item>{export_task_xml(s, m)}</item></exportTaskSet>")
              for s, m in (("active", "Converting"), ("active", "Uploading to S3"), ("completed", ""))]
    routes = instance_routes() + [
        ec2_route("CreateInstanceExportTask", xml_answer("CreateInstanceExportTask", f"    <exportTask>{export_task_xml('active')}</exportTask>")),
        ec2_route("DescribeExportTasks", states, when=lambda r: r.form.get("ExportTaskId.1") == EXPORT_TASK),
        Route("GET", rf"^/exports/{re.escape(EXPORT_KEY)}$", ranged_object(data)),
        Route("DELETE", rf"^/exports/{re.escape(EXPORT_KEY)}$", Response(204, {}, b"")),
    ]
    with FixtureServer(routes) as srv:
        no_secret(hsdk("export", "--provider", "aws", "--config", json.dumps(export_task_config(srv.url)),
                       "--method", "export-task", "--vm", INSTANCE, "--out", out, "--format", "qcow2",
                       env=aws_env(srv.url, tmp_path), timeout=60))
        assert not srv.unmatched, srv.unmatched
        created = ec2_calls(srv, "CreateInstanceExportTask")
        assert len(created) == 1
        form = created[0].form
        assert form["InstanceId"] == INSTANCE and form["ExportToS3.S3Bucket"] == "exports"
        assert form["ExportToS3.S3Prefix"] == "vms/" and form["ExportToS3.DiskImageFormat"] == "VMDK"
        assert form["TargetEnvironment"] == "vmware"
        # Polled until completed, and no more.
        assert len(ec2_calls(srv, "DescribeExportTasks")) == 3
        gets = [c for c in srv.calls if c.method == "GET" and c.path == f"/exports/{EXPORT_KEY}"]
        assert gets and all(c.headers.get("range", "").startswith("bytes=") for c in gets)
        # Signed as S3 wants it (the signature itself is not recorded).
        assert all(c.headers.get("x-amz-content-sha256") == "UNSIGNED-PAYLOAD" and c.headers.get("x-amz-date") for c in gets)
        deletes = [c for c in srv.calls if c.method == "DELETE"]
        assert [c.path for c in deletes] == [f"/exports/{EXPORT_KEY}"]
        assert srv.calls[-1].method == "DELETE"  # after the last read
        assert not ec2_calls(srv, "CancelExportTask")
    disks = sorted(out.glob("*.qcow2"))
    assert len(disks) == 1, list(out.iterdir())
    assert_same(disks[0], "qcow2", raw)


def test_export_task_refused_for_a_marketplace_image(tmp_path):
    message = "The image ID (ami-0abcdef1234567890) provided contains AWS Marketplace product codes."
    routes = instance_routes() + [ec2_route("CreateInstanceExportTask", ec2_error("NotExportable", message))]
    out = tmp_path / "export"
    with FixtureServer(routes) as srv:
        p = no_secret(hsdk("export", "--provider", "aws", "--config", json.dumps(export_task_config(srv.url)),
                           "--method", "export-task", "--vm", INSTANCE, "--out", out, "--format", "qcow2",
                           env=aws_env(srv.url, tmp_path), check=False, timeout=60))
        assert not srv.unmatched, srv.unmatched
        assert len(ec2_calls(srv, "CreateInstanceExportTask")) == 1
        assert not ec2_calls(srv, "DescribeExportTasks")
    assert p.returncode != 0
    assert message in p.stderr and "NotExportable" in p.stderr, p.stderr
    assert "Marketplace AMIs" in p.stderr and "ebs-direct" in p.stderr, p.stderr
    assert empty_folder(out), list(out.iterdir())


def test_snapshot_pending_past_the_timeout_is_deleted(tmp_path):
    out = tmp_path / "export"
    routes = instance_routes() + [
        ec2_route("CreateSnapshots", create_snapshots_answer(SNAP), when=lambda r: r.form.get("InstanceSpecification.InstanceId") == INSTANCE),
        ec2_route("DescribeSnapshots", describe_snapshots_answer(SNAP, "pending", "10%"),
                  when=lambda r: r.form.get("SnapshotId.1") == SNAP),
        ec2_route("DeleteSnapshot", delete_snapshot_answer(), when=lambda r: r.form.get("SnapshotId") == SNAP),
    ]
    with FixtureServer(routes) as srv:
        error = failed_json(aws_env(srv.url, tmp_path), "export.run",
                            {"provider": "aws", "config": provider_config(srv.url, snapshot_timeout=1, poll_interval_ms=50),
                             "vm": INSTANCE, "output_dir": str(out), "format": "qcow2"})
        assert not srv.unmatched, srv.unmatched
        assert len(ec2_calls(srv, "CreateSnapshots")) == 1
        assert len(ec2_calls(srv, "DescribeSnapshots")) >= 2
        assert [c.form["SnapshotId"] for c in ec2_calls(srv, "DeleteSnapshot")] == [SNAP]
        assert not srv.count("GET", r"^/snapshots/")  # nothing was read from it
    assert error["code"] == "timeout", error
    assert SNAP in error["message"] and "pending" in error["message"] and "10%" in error["message"], error
    assert empty_folder(out), list(out.iterdir())


def test_block_tokens_about_to_expire_are_listed_again_first(tmp_path, out_dir):
    """ListSnapshotBlocks' tokens expire (ExpiryTime): a token within a minute of it is renewed by
    listing again from that block (startingBlockIndex) before the block is asked for; the service
    refuses the stale token, so only the renewed one works."""
    blocks = {i: block_bytes("E", i) for i in (0, 1, 7)}

    def listing(r):
        if "startingBlockIndex" in r.query:
            start = int(r.query["startingBlockIndex"])
            page = {"Blocks": [{"BlockIndex": i, "BlockToken": token_of(SNAP, i)} for i in sorted(blocks) if i >= start],
                    "BlockSize": BLOCK, "VolumeSize": 1, "ExpiryTime": time.time() + 3600}
        else:
            page = {"Blocks": [{"BlockIndex": i, "BlockToken": "stale-" + str(i)} for i in sorted(blocks)],
                    "BlockSize": BLOCK, "VolumeSize": 1, "ExpiryTime": time.time() + 20}
        return Response(200, {"Content-Type": "application/json"}, page)

    expected = write_raw(tmp_path / "expected.raw", blocks)
    with FixtureServer([Route("GET", rf"^/snapshots/{SNAP}/blocks$", listing)] + block_routes(SNAP, blocks)) as srv:
        out = out_dir / "out.raw"
        no_secret(hsdk("convert", "-O", "raw", f"ebs://{SNAP}", out, env=aws_env(srv.url, tmp_path), timeout=60))
        renewals = [c for c in srv.calls if c.path == f"/snapshots/{SNAP}/blocks" and "startingBlockIndex" in c.query]
        assert renewals, "the tokens were not renewed"
        assert all(c.query["blockToken"] == token_of(SNAP, int(c.path.rsplit("/", 1)[1])) for c in block_calls(srv, SNAP))
        assert fetched_indexes(srv, SNAP) == sorted(blocks)
    assert_same(out, "raw", expected)


def test_a_block_shorter_than_the_block_size_is_refused(tmp_path, out_dir):
    """AWS's blocks are always BlockSize long; a shorter one (with a matching length and checksum)
    is a broken answer, not zeros."""
    short = block_bytes("S", 3)[:1000]
    routes = paged_list_routes(SNAP, [(None, [3], None)]) + [
        Route("GET", rf"^/snapshots/{SNAP}/blocks/3$", block_answer(short))]
    with FixtureServer(routes) as srv:
        err = failed_json(aws_env(srv.url, tmp_path), "image.convert",
                          {"source": f"ebs://{SNAP}", "destination": str(out_dir / "out.raw"), "output_format": "raw"})
        assert err["code"] == "remote_error" and "block 3" in err["message"] and "524288" in err["message"], err
    assert empty_folder(out_dir)


def test_a_stalled_block_request_times_out_instead_of_hanging(tmp_path, out_dir):
    """A GetSnapshotBlock that never sends a byte is abandoned after --timeout seconds and tried
    again (--aws-attempts), then fails as a timeout naming the block: a job never hangs."""
    blocks = {4: block_bytes("T", 4)}

    def stall(r):
        time.sleep(4)
        return block_answer(blocks[4])

    routes = paged_list_routes(SNAP, [(None, [4], None)]) + [Route("GET", rf"^/snapshots/{SNAP}/blocks/4$", stall)]
    with FixtureServer(routes) as srv:
        p = no_secret(hsdk("convert", "--timeout", "1", "--aws-attempts", "2", "-O", "raw", f"ebs://{SNAP}", out_dir / "out.raw",
                           env=aws_env(srv.url, tmp_path), check=False, timeout=60))
        assert p.returncode != 0
        assert "block 4" in p.stderr and ("timed out" in p.stderr.lower() or "timeout" in p.stderr.lower()), p.stderr
        assert len(block_calls(srv, SNAP, 4)) == 2
    assert empty_folder(out_dir)
