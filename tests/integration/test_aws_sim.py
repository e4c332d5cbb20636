"""Self-tests of the AWS simulator (tests/sim/aws): moto's server plus the extensions, driven with
boto3 as a client would: volume contents, EBS direct data of EC2 snapshots, ListChangedBlocks,
snapshot state knobs, the request log, S3 path-style ranges, and signature checks in --auth mode."""
import base64
import hashlib
import json
import random

import pytest

boto3 = pytest.importorskip("boto3")
from botocore.exceptions import ClientError  # noqa: E402

from aws_sim import BLOCK  # noqa: E402

MiB = 1 << 20


def b64sha(data):
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def blocks_of(data):
    """{index: bytes} of the non-zero BLOCK-sized blocks of `data` (the last one zero-padded)."""
    out = {}
    for off in range(0, len(data), BLOCK):
        chunk = data[off:off + BLOCK].ljust(BLOCK, b"\0")
        if chunk.count(0) != len(chunk):
            out[off // BLOCK] = chunk
    return out


def hashes(blocks):
    return {str(i): hashlib.sha256(d).hexdigest() for i, d in blocks.items()}


def make_disks():
    rng = random.Random(0x45B5)
    d1 = bytearray(3 * MiB)  # blocks 0..5: data in 0, 2, 3, 5; holes at 1 and 4
    d1[0:300_000] = rng.randbytes(300_000)
    d1[2 * BLOCK + 4096:2 * BLOCK + 4096 + 10_000] = rng.randbytes(10_000)
    d1[3 * BLOCK:4 * BLOCK] = rng.randbytes(BLOCK)
    d1[5 * BLOCK + BLOCK - 512:6 * BLOCK] = rng.randbytes(512)
    d2 = bytearray(1 * MiB)  # block 0 a hole, data at the end of block 1
    d2[BLOCK + 1000:BLOCK + 3000] = rng.randbytes(2000)
    return bytes(d1), bytes(d2)


def raw_bodies(client, operation):
    """Collects the raw HTTP bodies `client` receives for `operation` (to see the wire format)."""
    seen = []
    client.meta.events.register(f"response-received.{client.meta.service_model.endpoint_prefix}.{operation}",
                                lambda response_dict=None, **kw: seen.append(response_dict["body"]))
    return seen


def test_snapshots_blocks_and_changed_blocks(aws_sim):
    d1, d2 = make_disks()
    inst = aws_sim.make_instance([d1, d2], name="web01", volume_tags={"Role": "data"})
    v1, v2 = inst["volumes"]
    assert v1["size_gib"] == 1 and v2["size_gib"] == 1
    assert v2["device"] == "/dev/sdf"
    assert aws_sim.volume(v1["volume_id"])["blocks"] == hashes(blocks_of(d1))
    assert aws_sim.volume(v2["volume_id"])["blocks"] == hashes(blocks_of(d2))

    ec2, ebs = aws_sim.boto3("ec2"), aws_sim.boto3("ebs")
    names = {t["Key"]: t["Value"] for t in ec2.describe_instances(InstanceIds=[inst["instance_id"]])["Reservations"][0]["Instances"][0]["Tags"]}
    assert names["Name"] == "web01"

    made = ec2.create_snapshots(InstanceSpecification={"InstanceId": inst["instance_id"]}, Description="hsdk",
                                CopyTagsFromSource="volume",
                                TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": "Backup", "Value": "1"}]}])["Snapshots"]
    by_volume = {s["VolumeId"]: s for s in made}
    assert set(by_volume) == {v1["volume_id"], v2["volume_id"]}
    for s in made:
        assert s["State"] == "completed" and s["VolumeSize"] == 1 and s["Progress"] == "100%"
        assert {t["Key"]: t["Value"] for t in s["Tags"]} == {"Role": "data", "Backup": "1"}
    snap1 = by_volume[v1["volume_id"]]["SnapshotId"]

    wire = raw_bodies(ebs, "ListSnapshotBlocks")
    for volume, data in ((v1, d1), (v2, d2)):
        sid = by_volume[volume["volume_id"]]["SnapshotId"]
        listed = ebs.list_snapshot_blocks(SnapshotId=sid)
        assert listed["BlockSize"] == BLOCK and listed["VolumeSize"] == 1
        expected = blocks_of(data)
        assert [int(b["BlockIndex"]) for b in listed["Blocks"]] == sorted(expected)
        for b in listed["Blocks"]:
            got = ebs.get_snapshot_block(SnapshotId=sid, BlockIndex=int(b["BlockIndex"]), BlockToken=b["BlockToken"])
            body = got["BlockData"].read()
            assert body == expected[int(b["BlockIndex"])]
            assert got["Checksum"] == b64sha(body) and got["ChecksumAlgorithm"] == "SHA256" and got["DataLength"] == BLOCK
    # moto's quirk, kept: BlockIndex is a JSON string on the wire (boto3 turns it into an int).
    assert isinstance(json.loads(wire[0])["Blocks"][0]["BlockIndex"], str)

    # A wrong block token is refused.
    with pytest.raises(ClientError) as e:
        ebs.get_snapshot_block(SnapshotId=snap1, BlockIndex=0, BlockToken="not-a-token")
    assert e.value.response["Error"]["Code"] == "ValidationException"

    # Change volume 1: new data in the hole at 1, part of 3 rewritten, 5 zeroed, 2 rewritten with
    # the same bytes (not a change), 0 untouched.
    rng = random.Random(7)
    new1 = rng.randbytes(1000)
    aws_sim.write(v1["volume_id"], BLOCK + 77, new1)
    aws_sim.write(v1["volume_id"], 3 * BLOCK + 5, b"\xff" * 100)
    aws_sim.write(v1["volume_id"], 5 * BLOCK, bytes(BLOCK))
    aws_sim.write(v1["volume_id"], 2 * BLOCK, d1[2 * BLOCK:3 * BLOCK])
    after = bytearray(d1)
    after[BLOCK + 77:BLOCK + 77 + 1000] = new1
    after[3 * BLOCK + 5:3 * BLOCK + 105] = b"\xff" * 100
    after[5 * BLOCK:6 * BLOCK] = bytes(BLOCK)
    assert aws_sim.volume(v1["volume_id"])["blocks"] == hashes(blocks_of(bytes(after)))

    # The first snapshot is frozen.
    old3 = [b for b in ebs.list_snapshot_blocks(SnapshotId=snap1)["Blocks"] if b["BlockIndex"] == 3][0]
    assert ebs.get_snapshot_block(SnapshotId=snap1, BlockIndex=3, BlockToken=old3["BlockToken"])["BlockData"].read() == blocks_of(d1)[3]

    snap2 = ec2.create_snapshot(VolumeId=v1["volume_id"], Description="second")["SnapshotId"]
    changed = ebs.list_changed_blocks(FirstSnapshotId=snap1, SecondSnapshotId=snap2)
    assert changed["BlockSize"] == BLOCK and changed["VolumeSize"] == 1
    items = {int(c["BlockIndex"]): c for c in changed["ChangedBlocks"]}
    assert list(items) == [1, 3, 5]
    assert "FirstBlockToken" not in items[1] and "SecondBlockToken" in items[1]  # only in the second
    assert "FirstBlockToken" in items[3] and "SecondBlockToken" in items[3]
    assert "FirstBlockToken" in items[5] and "SecondBlockToken" not in items[5]  # zeroed in the second
    got = ebs.get_snapshot_block(SnapshotId=snap2, BlockIndex=1, BlockToken=items[1]["SecondBlockToken"])["BlockData"].read()
    assert got == blocks_of(bytes(after))[1]
    # Without a first snapshot: every block of the second.
    all2 = ebs.list_changed_blocks(SecondSnapshotId=snap2)["ChangedBlocks"]
    assert [int(c["BlockIndex"]) for c in all2] == sorted(blocks_of(bytes(after)))

    # A volume made from a snapshot holds the snapshot's contents.
    restored = ec2.create_volume(SnapshotId=snap1, AvailabilityZone="us-east-1a")
    assert restored["Size"] == 1
    assert aws_sim.volume(restored["VolumeId"])["blocks"] == hashes(blocks_of(d1))

    known = {s["snapshot_id"]: s for s in aws_sim.snapshots()}
    assert known[snap1]["status"] == "completed" and known[snap1]["block_count"] == 4
    assert known[snap2]["block_count"] == 4 and known[snap2]["block_size"] == BLOCK


def test_native_snapshot_and_image(aws_sim):
    ec2, ebs = aws_sim.boto3("ec2"), aws_sim.boto3("ebs")
    data = bytearray(8192)
    data[100:700] = b"\x11" * 600  # 512-byte blocks 0 and 1
    data[5000:5100] = b"\x22" * 100  # block 9
    sid = aws_sim.ebs_snapshot(bytes(data))
    listed = ebs.list_snapshot_blocks(SnapshotId=sid)
    assert listed["BlockSize"] == 512  # moto-native snapshots use 512-byte blocks
    assert [b["BlockIndex"] for b in listed["Blocks"]] == [0, 1, 9]
    volume = ec2.create_volume(SnapshotId=sid, AvailabilityZone="us-east-1a")
    expected = bytes(data) + bytes(BLOCK - len(data))
    assert aws_sim.volume(volume["VolumeId"])["blocks"] == {"0": hashlib.sha256(expected).hexdigest()}

    # RegisterImage with the snapshot as root, RunInstances without mappings: the root volume
    # starts with the snapshot's contents.
    image = ec2.register_image(Name="hsdk-restored", RootDeviceName="/dev/xvda", Architecture="x86_64",
                               BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": sid, "VolumeSize": 2}}])["ImageId"]
    described = ec2.describe_images(ImageIds=[image])["Images"][0]
    assert described["RootDeviceName"] == "/dev/xvda"
    assert described["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"] == sid
    instance = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]
    root = {m["DeviceName"]: m["Ebs"]["VolumeId"] for m in instance["BlockDeviceMappings"]}["/dev/xvda"]
    state = aws_sim.volume(root)
    assert state["size_gib"] == 2 and state["blocks"] == {"0": hashlib.sha256(expected).hexdigest()}


def test_write_route_errors(aws_sim):
    inst = aws_sim.make_instance([1 * MiB])
    volume_id = inst["volumes"][0]["volume_id"]
    assert aws_sim.volume(volume_id)["blocks"] == {}
    status, _ = aws_sim._request("POST", "/_hsdk/write", {"volume_id": volume_id, "offset": (1 << 30) - 2, "data_b64": base64.b64encode(b"abc").decode()})
    assert status == 400
    status, _ = aws_sim._request("POST", "/_hsdk/write", {"volume_id": "vol-0000", "offset": 0, "data_b64": ""})
    assert status == 404


def test_pending_polls_and_snapshot_error(aws_sim):
    ec2, ebs = aws_sim.boto3("ec2"), aws_sim.boto3("ebs")
    inst = aws_sim.make_instance([b"\x01" * 4096], name="poll")
    volume_id = inst["volumes"][0]["volume_id"]
    aws_sim.control(pending_polls=2)
    try:
        made = ec2.create_snapshot(VolumeId=volume_id)
        sid = made["SnapshotId"]
        assert made["State"] == "pending"
        seen = [ec2.describe_snapshots(SnapshotIds=[sid])["Snapshots"][0] for _ in range(3)]
        assert [s["State"] for s in seen] == ["pending", "pending", "completed"]
        assert seen[0]["Progress"] != "100%" and seen[2]["Progress"] == "100%"
    finally:
        aws_sim.control(pending_polls=0)
    assert [b["BlockIndex"] for b in ebs.list_snapshot_blocks(SnapshotId=sid)["Blocks"]] == [0]

    # Pending snapshots are not readable through EBS direct (as on AWS).
    aws_sim.control(pending_polls=1)
    try:
        sid = ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"]
        with pytest.raises(ClientError) as e:
            ebs.list_snapshot_blocks(SnapshotId=sid)
        assert e.value.response["Error"]["Code"] == "ValidationException"
    finally:
        aws_sim.control(pending_polls=0)

    aws_sim.control(snapshot_error=True)
    try:
        sid = ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"]
    finally:
        aws_sim.control(snapshot_error=False)
    snap = ec2.describe_snapshots(SnapshotIds=[sid])["Snapshots"][0]
    assert snap["State"] == "error" and snap["StateMessage"]
    # Knobs off again: snapshots complete at once.
    assert ec2.create_snapshot(VolumeId=volume_id)["State"] == "completed"


def test_s3_path_style_ranges_and_log(aws_sim):
    s3, ec2, ebs = aws_sim.boto3("s3"), aws_sim.boto3("ec2"), aws_sim.boto3("ebs")
    body = random.Random(3).randbytes(MiB + 123)
    s3.create_bucket(Bucket="hsdk-sim-test")
    aws_sim.control(reset_log=True)
    s3.put_object(Bucket="hsdk-sim-test", Key="dir/disk.raw", Body=body)
    got = s3.get_object(Bucket="hsdk-sim-test", Key="dir/disk.raw", Range="bytes=1000-1999")
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["ContentRange"] == f"bytes 1000-1999/{len(body)}"
    assert got["Body"].read() == body[1000:2000]
    assert s3.head_object(Bucket="hsdk-sim-test", Key="dir/disk.raw")["ContentLength"] == len(body)
    ec2.describe_volumes()
    with pytest.raises(ClientError):
        ebs.list_snapshot_blocks(SnapshotId="snap-0123456789abcdef0")

    log = aws_sim.log()
    summary = [(e["method"], e["path"], e["service"], e["action"], e["status"]) for e in log]
    assert summary == [
        ("PUT", "/hsdk-sim-test/dir/disk.raw", "s3", None, 200),
        ("GET", "/hsdk-sim-test/dir/disk.raw", "s3", None, 206),
        ("HEAD", "/hsdk-sim-test/dir/disk.raw", "s3", None, 200),
        ("POST", "/", "ec2", "DescribeVolumes", 200),
        ("GET", "/snapshots/snap-0123456789abcdef0/blocks", "ebs", None, 404),
    ]
    assert log[1]["range"] == "bytes=1000-1999"
    text = json.dumps(log)
    assert aws_sim.secret_access_key not in text
    assert "Signature=" not in text and "AWS4-HMAC-SHA256" not in text and "uthorization" not in text


def _refused(call):
    with pytest.raises(ClientError) as e:
        call()
    return e.value.response["ResponseMetadata"]["HTTPStatusCode"], e.value.response["Error"]["Code"]


def test_auth_mode(aws_sim_auth):
    sim = aws_sim_auth
    assert sim.access_key_id.startswith("AKIA") and sim.secret_access_key != "hsdk-sim-secret"
    env = sim.env({"AWS_PROFILE": "x", "AWS_SESSION_TOKEN": "y", "PATH": "/bin"})
    assert "AWS_PROFILE" not in env and "AWS_SESSION_TOKEN" not in env and env["PATH"] == "/bin"
    assert env["AWS_ENDPOINT_URL"] == sim.url and env["AWS_SECRET_ACCESS_KEY"] == sim.secret_access_key

    # The right key is accepted everywhere (EBS direct GETs and PutSnapshotBlock included).
    inst = sim.make_instance([b"\x05" * 5000])
    ec2, ebs, s3 = sim.boto3("ec2"), sim.boto3("ebs"), sim.boto3("s3")
    sid = ec2.create_snapshot(VolumeId=inst["volumes"][0]["volume_id"])["SnapshotId"]
    assert [b["BlockIndex"] for b in ebs.list_snapshot_blocks(SnapshotId=sid)["Blocks"]] == [0]
    native = sim.ebs_snapshot(b"\x09" * 1024)
    assert len(ebs.list_changed_blocks(SecondSnapshotId=native)["ChangedBlocks"]) == 2
    s3.create_bucket(Bucket="hsdk-auth")
    s3.put_object(Bucket="hsdk-auth", Key="k", Body=b"0123456789")
    assert s3.get_object(Bucket="hsdk-auth", Key="k", Range="bytes=2-4")["Body"].read() == b"234"

    # A wrong secret is refused by each service, and so is an unknown key.
    bad = {svc: sim.boto3(svc, secret_access_key="wrong-secret") for svc in ("ec2", "ebs", "s3")}
    assert _refused(lambda: bad["ec2"].describe_volumes()) == (401, "AuthFailure")
    assert _refused(lambda: bad["ebs"].list_snapshot_blocks(SnapshotId=sid)) == (403, "SignatureDoesNotMatch")
    assert _refused(lambda: bad["s3"].get_object(Bucket="hsdk-auth", Key="k")) == (403, "SignatureDoesNotMatch")
    unknown = {svc: sim.boto3(svc, access_key_id="AKIAIOSFODNN7EXAMPLE", secret_access_key="x") for svc in ("ec2", "ebs", "s3")}
    assert _refused(lambda: unknown["ec2"].describe_volumes()) == (401, "AuthFailure")
    assert _refused(lambda: unknown["ebs"].list_snapshot_blocks(SnapshotId=sid)) == (403, "InvalidClientTokenId")
    assert _refused(lambda: unknown["s3"].get_object(Bucket="hsdk-auth", Key="k")) == (403, "InvalidAccessKeyId")
    assert sim.secret_access_key not in json.dumps(sim.log())
