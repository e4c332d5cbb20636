"""The aws provider and the ebs:// and s3:// sources against the AWS simulator (tests/sim/aws:
moto's server, plus our extensions for what moto lacks: volume contents, EC2 snapshots the EBS
direct APIs can read, AWS's ListChangedBlocks semantics; see its README). What moto cannot serve
at all (paging, throttling, checksum failures, export tasks) is in test_aws_fixtures.py.

Images are judged by qemu-img (compare, check); the calls by the simulator's request log."""
import base64
import json
import os
import pathlib
import random
import subprocess

import pytest

from conftest import HSDK, MiB, hsdk, qemu_img, assert_qemu_check_clean

BLOCK = 512 * 1024


def disk_bytes(size, seed, blocks):
    """`size` bytes holding seeded random data in the given 512 KiB blocks (partly: the tail of
    each block stays zero), zeros elsewhere."""
    rng = random.Random(seed)
    data = bytearray(size)
    for b in blocks:
        n = rng.randrange(4096, BLOCK)
        data[b * BLOCK:b * BLOCK + n] = rng.randbytes(n)
    return data


def write_raw(path, data):
    path.write_bytes(bytes(data))
    return path


def run_json(env, *args, check=True):
    p = hsdk(*args, "--json", check=check, env=env)
    return p, (json.loads(p.stdout) if p.returncode == 0 else None)


def run_op(env, operation, request, check=True):
    p = hsdk("run", operation, "-r", json.dumps(request), "--json", check=False, env=env)
    out = json.loads(p.stdout) if p.stdout.strip() else {}
    if check:
        assert p.returncode == 0, p.stdout + p.stderr
        return out
    assert p.returncode != 0, p.stdout
    return out["error"]


def export(sim, instance, out, fmt, config=None, **extra):
    return run_op(sim.env(), "export.run", {"provider": "aws", "config": config or {}, "vm": instance["instance_id"],
                                            "output_dir": str(out), "format": fmt, **extra})


def ours_left(sim):
    """Snapshots of ours the simulator still holds (tagged hsdk:created-by)."""
    snaps = sim.boto3("ec2").describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "tag-key", "Values": ["hsdk:created-by"]}])
    return [s["SnapshotId"] for s in snaps["Snapshots"]]


def get_block_calls(sim):
    return [c for c in sim.log() if c["method"] == "GET" and "/blocks/" in c["path"]]


@pytest.fixture
def instance(aws_sim, tmp_path):
    d1 = disk_bytes(8 * MiB, seed=11, blocks=[0, 1, 2, 5, 9, 11])
    d2 = disk_bytes(2 * MiB, seed=12, blocks=[3])
    inst = aws_sim.make_instance([bytes(d1), bytes(d2)], name=f"web-{tmp_path.name[-12:]}")
    inst["raw"] = [write_raw(tmp_path / "planted1.raw", d1), write_raw(tmp_path / "planted2.raw", d2)]
    inst["data"] = [d1, d2]
    return inst


def test_discovery_fills_the_vm_model(aws_sim, instance):
    env = aws_sim.env()
    _, listed = run_json(env, "vms", "list", "--provider", "aws")
    assert instance["instance_id"] in [v["id"] for v in listed]
    _, vm = run_json(env, "vms", "describe", "--provider", "aws", "--vm", instance["instance_id"])
    assert vm["provider"] == "aws" and vm["id"] == instance["instance_id"]
    assert vm["cpus"] == 2 and vm["memory_mib"] == 4096  # t3.medium
    assert [d["id"] for d in vm["disks"]] == [v["volume_id"] for v in instance["volumes"]]
    assert vm["disks"][0]["boot_order"] == 1 and vm["disks"][0]["label"] == instance["volumes"][0]["device"]
    assert all(d["capacity_bytes"] == 1 << 30 for d in vm["disks"])
    assert vm["nics"] and vm["nics"][0]["mac"].count(":") == 5
    # By name too.
    _, by_name = run_json(env, "vms", "describe", "--provider", "aws", "--vm", vm["name"])
    assert by_name["id"] == vm["id"]


def test_unknown_instance_is_not_found(aws_sim):
    e = run_op(aws_sim.env(), "vms.describe", {"provider": "aws", "vm": "i-0123456789abcdef0"}, check=False)
    assert e["code"] == "not_found", e


@pytest.mark.parametrize("fmt,qemu_fmt", [("qcow2", "qcow2"), ("raw", "raw"), ("vmdk", "vmdk"), ("vhdx", "vhdx")])
def test_instance_export_equals_the_volumes_and_leaves_no_snapshot(aws_sim, instance, tmp_path, fmt, qemu_fmt):
    out = tmp_path / "out"
    r = export(aws_sim, instance, out, fmt)
    disks = sorted(f for f in r["files"] if f.endswith("." + fmt))
    assert len(disks) == 2, r
    for planted, disk in zip(instance["raw"], disks):
        qemu_img("compare", "-f", "raw", "-F", qemu_fmt, planted, disk)
    if fmt == "qcow2":
        assert_qemu_check_clean(disks[0], "qcow2")
    assert r["snapshot_used"] and "EBS direct" in r["method"]
    assert not ours_left(aws_sim)


def test_export_reads_only_the_blocks_that_hold_data(aws_sim, instance, tmp_path):
    aws_sim.control(reset_log=True)
    hsdk("export", "--provider", "aws", "--vm", instance["instance_id"], "--out", str(tmp_path / "out"), "--format", "raw",
         env=aws_sim.env())
    fetched = get_block_calls(aws_sim)
    assert len(fetched) == 6 + 1, [c["path"] for c in fetched]  # the non-zero blocks of both disks, once each


def test_ova_and_hyper2kvm_manifest(aws_sim, instance, tmp_path):
    env = aws_sim.env()
    r = export(aws_sim, instance, tmp_path / "ova", "ova")
    ova = [f for f in r["files"] if f.endswith(".ova")][0]
    assert run_op(env, "ova.verify", {"path": ova})["ok"]
    r = export(aws_sim, instance, tmp_path / "q", "qcow2", hyper2kvm_manifest=True)
    manifest = json.loads(pathlib.Path([f for f in r["files"] if f.endswith(".hyper2kvm.json")][0]).read_text())
    assert len(json.dumps(manifest)) > 0 and all(pathlib.Path(f).exists() for f in r["files"])
    assert not ours_left(aws_sim)


def test_keep_snapshots_keeps_them(aws_sim, instance, tmp_path):
    export(aws_sim, instance, tmp_path / "out", "raw", config={"keep_snapshots": True})
    kept = ours_left(aws_sim)
    assert len(kept) == 2
    for s in kept:
        aws_sim.boto3("ec2").delete_snapshot(SnapshotId=s)


def test_ebs_snapshot_is_an_image_for_every_image_command(aws_sim, instance, tmp_path):
    env = aws_sim.env()
    ec2 = aws_sim.boto3("ec2")
    snap = ec2.create_snapshot(VolumeId=instance["volumes"][0]["volume_id"])["SnapshotId"]
    loc = "ebs://" + snap
    _, info = run_json(env, "info", loc)
    assert info["format"] == "raw" and info["virtual-size"] == 1 << 30
    mapped = json.loads(hsdk("map", loc, "--output=json", env=env).stdout)
    data = [(m["start"], m["length"]) for m in mapped if m["data"]]
    expect_blocks = [0, 1, 2, 5, 9, 11]
    covered = set()
    for start, length in data:
        covered.update(range(start // BLOCK, (start + length) // BLOCK))
    assert covered == set(expect_blocks), data
    out = tmp_path / "c.qcow2"
    hsdk("convert", "-O", "qcow2", loc, str(out), env=env)
    qemu_img("compare", "-f", "raw", "-F", "qcow2", instance["raw"][0], out)
    hsdk("compare", loc, str(instance["raw"][0]), "-F", "raw", env=env)
    # A moto-native snapshot (512-byte blocks, BlockIndex as a JSON string) reads the same.
    native = aws_sim.ebs_snapshot(bytes(instance["data"][1]))
    hsdk("compare", "ebs://" + native, str(instance["raw"][1]), "-F", "raw", env=env)
    ec2.delete_snapshot(SnapshotId=snap)


def test_unknown_snapshot_and_bad_locations(aws_sim):
    env = aws_sim.env()
    e = run_op(env, "image.info", {"path": "ebs://snap-0123456789abcdef0"}, check=False)
    assert e["code"] == "not_found" and "snap-0123456789abcdef0" in e["message"], e
    e = run_op(env, "image.info", {"path": "ebs://vol-123"}, check=False)
    assert e["code"] == "invalid_argument", e
    e = run_op(env, "image.info", {"path": "s3://bucket"}, check=False)
    assert e["code"] == "invalid_argument", e


def test_delta_between_two_snapshots_uses_list_changed_blocks(aws_sim, instance, tmp_path):
    env = aws_sim.env()
    ec2 = aws_sim.boto3("ec2")
    vol = instance["volumes"][0]["volume_id"]
    a = ec2.create_snapshot(VolumeId=vol)["SnapshotId"]
    base = tmp_path / "base.qcow2"
    hsdk("convert", "-O", "qcow2", "ebs://" + a, str(base), env=env)
    data = bytearray(instance["data"][0])
    data[5 * BLOCK + 100:5 * BLOCK + 4196] = os.urandom(4096)       # a changed block
    data[9 * BLOCK:10 * BLOCK] = bytes(BLOCK)                          # a block zeroed
    data[14 * BLOCK:14 * BLOCK + 300] = b"n" * 300                     # a new block
    aws_sim.write(vol, 5 * BLOCK, bytes(data[5 * BLOCK:6 * BLOCK]))
    aws_sim.write(vol, 9 * BLOCK, bytes(BLOCK))
    aws_sim.write(vol, 14 * BLOCK, bytes(data[14 * BLOCK:15 * BLOCK]))
    expected = write_raw(tmp_path / "b.raw", data)
    b = ec2.create_snapshot(VolumeId=vol)["SnapshotId"]
    aws_sim.control(reset_log=True)
    _, r = run_json(env, "delta", "create", "--base", "ebs://" + a, "--new", "ebs://" + b, "--backing", "base.qcow2",
                    str(tmp_path / "delta.qcow2"))
    assert r["changes_from"] == "platform" and r["changed_bytes"] == 3 * BLOCK, r
    fetched = sorted(int(c["path"].rsplit("/", 1)[1]) for c in get_block_calls(aws_sim))
    assert fetched == [5, 14], fetched  # the zeroed block is not in b: nothing to fetch
    qemu_img("compare", "-F", "raw", str(tmp_path / "delta.qcow2"), expected)
    for s in (a, b):
        ec2.delete_snapshot(SnapshotId=s)


def test_backups_full_then_incremental_from_changed_blocks(aws_sim, instance, tmp_path):
    env = aws_sim.env()
    repo = tmp_path / "repo"
    vm = instance["instance_id"]
    _, first = run_json(env, "backup", "--provider", "aws", "--vm", vm, "--repo", str(repo))
    assert first["kind"] == "full"
    assert len(ours_left(aws_sim)) == 2  # the point's snapshots stay: the next one starts from them

    vol = instance["volumes"][0]["volume_id"]
    data = bytearray(instance["data"][0])
    data[2 * BLOCK:2 * BLOCK + 5000] = b"x" * 5000
    aws_sim.write(vol, 2 * BLOCK, bytes(data[2 * BLOCK:3 * BLOCK]))
    second_raw = write_raw(tmp_path / "second.raw", data)
    aws_sim.control(reset_log=True)
    _, second = run_json(env, "backup", "--provider", "aws", "--vm", vm, "--repo", str(repo))
    assert second["kind"] == "incremental", second
    d1 = second["disks"][0]
    assert not d1["full"] and d1["changed_bytes"] == BLOCK and d1["backing_file"], d1
    assert second["disks"][1]["changed_bytes"] == 0
    fetched = get_block_calls(aws_sim)
    assert len(fetched) == 1, [c["path"] for c in fetched]
    changed = [c for c in aws_sim.log() if c["path"].endswith("/changedblocks")]
    assert len(changed) == 2  # one per disk
    left = ours_left(aws_sim)
    assert len(left) == 2 and not set(left) & set(first["snapshot"].split(","))  # the previous point's are gone

    assert json.loads(hsdk("chain", "verify", "--json", d1["file"]).stdout)["ok"]
    r = json.loads(hsdk("restore", "--repo", str(repo), "--vm", vm, "-O", "raw", "--out", str(tmp_path / "r2"), "--json").stdout)
    qemu_img("compare", "-f", "raw", "-F", "raw", second_raw, sorted(r["files"])[0])
    r = json.loads(hsdk("restore", "--repo", str(repo), "--vm", vm, "--point", "1", "-O", "raw", "--out", str(tmp_path / "r1"),
                        "--json").stdout)
    qemu_img("compare", "-f", "raw", "-F", "raw", instance["raw"][0], sorted(r["files"])[0])
    # The state names snapshots, never a secret.
    state = (repo / next(p.name for p in repo.iterdir() if p.is_dir()) / "state.json").read_text()
    assert aws_sim.secret_access_key not in state
    for s in ours_left(aws_sim):
        aws_sim.boto3("ec2").delete_snapshot(SnapshotId=s)


def test_a_deleted_previous_snapshot_gives_a_full_copy_with_a_notice(aws_sim, instance, tmp_path):
    env = aws_sim.env()
    repo = tmp_path / "repo"
    vm = instance["instance_id"]
    _, first = run_json(env, "backup", "--provider", "aws", "--vm", vm, "--repo", str(repo))
    for s in first["snapshot"].split(","):
        aws_sim.boto3("ec2").delete_snapshot(SnapshotId=s)
    _, second = run_json(env, "backup", "--provider", "aws", "--vm", vm, "--repo", str(repo))
    assert all(d["full"] and d["notice"] for d in second["disks"]), second
    for s in ours_left(aws_sim):
        aws_sim.boto3("ec2").delete_snapshot(SnapshotId=s)


def test_s3_object_is_an_image(aws_sim, tmp_path):
    env = aws_sim.env()
    raw = tmp_path / "disk.raw"
    raw.write_bytes(bytes(disk_bytes(3 * MiB, seed=5, blocks=[0, 3, 4])))
    vmdk = tmp_path / "disk.vmdk"
    qemu_img("convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", raw, vmdk)
    s3 = aws_sim.boto3("s3")
    s3.create_bucket(Bucket="images")
    s3.put_object(Bucket="images", Key="exports/disk one.vmdk", Body=vmdk.read_bytes())
    out = tmp_path / "out.qcow2"
    hsdk("convert", "-O", "qcow2", "s3://images/exports/disk one.vmdk", str(out), env=env)
    qemu_img("compare", "-f", "raw", "-F", "qcow2", raw, out)
    _, info = run_json(env, "info", "s3://images/exports/disk one.vmdk")
    assert info["format"] == "vmdk"
    e = run_op(env, "image.info", {"path": "s3://images/missing.vmdk"}, check=False)
    assert e["code"] == "not_found", e


def test_credentials_from_a_profile_and_flags(aws_sim, instance, tmp_path):
    creds = tmp_path / "credentials"
    creds.write_text(f"[default]\naws_access_key_id = nobody\naws_secret_access_key = nothing\n\n"
                     f"[sim]\naws_access_key_id = {aws_sim.access_key_id}\naws_secret_access_key = {aws_sim.secret_access_key}\n")
    config = tmp_path / "config"
    config.write_text(f"[profile sim]\nregion = {aws_sim.region}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_SHARED_CREDENTIALS_FILE=str(creds), AWS_CONFIG_FILE=str(config))
    _, vm = run_json(env, "vms", "describe", "--provider", "aws", "--profile", "sim", "--endpoint-url", aws_sim.url,
                     "--vm", instance["instance_id"])
    assert vm["id"] == instance["instance_id"]
    env["AWS_PROFILE"] = "sim"
    env["AWS_ENDPOINT_URL_EC2"] = aws_sim.url
    _, vm = run_json(env, "vms", "describe", "--provider", "aws", "--vm", instance["instance_id"])
    assert vm["id"] == instance["instance_id"]
    # No credentials anywhere: a clear error.
    bare = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    bare.update(HOME=str(tmp_path / "nohome"), AWS_REGION="us-east-1", AWS_ENDPOINT_URL=aws_sim.url)
    e = run_op(bare, "vms.list", {"provider": "aws"}, check=False)
    assert e["code"] == "auth_failed" and "AWS_ACCESS_KEY_ID" in e["message"], e
    e = run_op(dict(bare, AWS_PROFILE="nope"), "vms.list", {"provider": "aws"}, check=False)
    assert e["code"] == "invalid_argument" and "nope" in e["message"], e


def test_sigv4_is_checked_and_a_wrong_secret_is_auth_failed(aws_sim_auth, tmp_path):
    sim = aws_sim_auth
    good = sim.env()
    inst = sim.make_instance([bytes(disk_bytes(1 * MiB, seed=3, blocks=[0]))], name="signed")
    snap = sim.boto3("ec2").create_snapshot(VolumeId=inst["volumes"][0]["volume_id"])["SnapshotId"]
    s3 = sim.boto3("s3")
    s3.create_bucket(Bucket="signed")
    s3.put_object(Bucket="signed", Key="d.raw", Body=b"\1" * 4096)
    # Signed right: every service answers.
    _, vm = run_json(good, "vms", "describe", "--provider", "aws", "--vm", inst["instance_id"])
    assert vm["id"] == inst["instance_id"]
    run_json(good, "info", "ebs://" + snap)
    run_json(good, "info", "-f", "raw", "s3://signed/d.raw")
    # A wrong secret: auth_failed from each, the secret in no message.
    wrong = dict(good, AWS_SECRET_ACCESS_KEY="wrong-" + sim.secret_access_key)
    for op, request in [("vms.list", {"provider": "aws"}), ("image.info", {"path": "ebs://" + snap}),
                        ("image.info", {"path": "s3://signed/d.raw", "format": "raw"})]:
        p = hsdk("run", op, "-r", json.dumps(request), "--json", check=False, env=wrong)
        assert p.returncode != 0
        e = json.loads(p.stdout)["error"]
        assert e["code"] == "auth_failed", (op, e)
        assert sim.secret_access_key not in p.stdout + p.stderr
    # Export with a wrong secret: refused, nothing written, nothing made.
    p = hsdk("export", "--provider", "aws", "--vm", inst["instance_id"], "--out", str(tmp_path / "out"), "--format", "raw",
             check=False, env=wrong)
    assert p.returncode != 0 and not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")


def test_secrets_stay_out_of_logs_and_arguments(aws_sim, instance, tmp_path):
    env = dict(aws_sim.env(), HSDK_LOG="debug")
    p = hsdk("export", "--provider", "aws", "--vm", instance["instance_id"], "--out", str(tmp_path / "o"), "--format", "raw",
             "-v", env=env, check=False)
    assert p.returncode == 0, p.stderr
    assert aws_sim.secret_access_key not in p.stdout + p.stderr
    # A config naming the secret by variable: the variable is read, the value not echoed.
    env["MY_SECRET"] = aws_sim.secret_access_key
    env.pop("AWS_SECRET_ACCESS_KEY")
    cfg = {"access_key_id": aws_sim.access_key_id, "secret_access_key_env": "MY_SECRET"}
    _, vm = run_json(env, "vms", "describe", "--provider", "aws", "--config", json.dumps(cfg), "--vm", instance["instance_id"])
    assert vm["id"] == instance["instance_id"]


def test_an_interrupted_export_resumes_without_fetching_a_block_twice(aws_sim, instance, tmp_path):
    import signal
    out = tmp_path / "out"
    env = aws_sim.env()
    aws_sim.control(reset_log=True)
    args = [str(HSDK), "export", "--provider", "aws", "--config", json.dumps({"rate": 3, "requests_in_flight": 2}),
            "--vm", instance["instance_id"], "--out", str(out), "--format", "qcow2", "--resume", "-p"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    # Interrupt once some blocks have arrived (by the simulator's log, not by time).
    while len([c for c in get_block_calls(aws_sim) if c["status"] == 200]) < 3:
        assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    first_run = get_block_calls(aws_sim)
    kept = ours_left(aws_sim)
    assert len(kept) == 2, "the snapshots are kept for the resumed run"
    marker = out / f".hsdk-resume-aws-{instance['instance_id']}.json"
    assert marker.exists()
    journaled = sum(len(p.read_text().splitlines()) for p in (out / marker.stem).glob("*.journal"))
    assert journaled >= 3
    assert not [p for p in out.iterdir() if p.name.endswith(".qcow2")]

    aws_sim.control(reset_log=True)
    r = run_op(env, "export.run", {"provider": "aws", "vm": instance["instance_id"], "output_dir": str(out), "format": "qcow2",
                                   "resume": True})
    second_run = get_block_calls(aws_sim)
    assert not [c for c in aws_sim.log() if c.get("action") == "CreateSnapshots"], "the kept snapshots were read again"
    assert len(second_run) == 7 - journaled, (len(first_run), journaled, len(second_run))
    for planted, disk in zip(instance["raw"], sorted(f for f in r["files"] if f.endswith(".qcow2"))):
        qemu_img("compare", "-f", "raw", "-F", "qcow2", planted, disk)
    assert not ours_left(aws_sim)
    assert sorted(p.name for p in out.iterdir()) == sorted(pathlib.Path(f).name for f in r["files"])


def test_a_kept_resume_state_is_cleaned_by_a_run_without_resume(aws_sim, instance, tmp_path):
    import signal
    out = tmp_path / "out"
    env = aws_sim.env()
    aws_sim.control(reset_log=True)
    args = [str(HSDK), "export", "--provider", "aws", "--config", json.dumps({"rate": 2}), "--vm", instance["instance_id"],
            "--out", str(out), "--format", "raw", "--resume", "-p"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    while not get_block_calls(aws_sim):
        assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    assert len(ours_left(aws_sim)) == 2
    run_op(env, "export.run", {"provider": "aws", "vm": instance["instance_id"], "output_dir": str(out), "format": "raw", "overwrite": True})
    assert not ours_left(aws_sim)
    assert not [p for p in out.iterdir() if ".hsdk" in p.name]


def test_snapshots_and_tracking_through_the_provider_commands(aws_sim, instance):
    env = aws_sim.env()
    vm = instance["instance_id"]
    created = json.loads(hsdk("vms", "snapshots", "create", "--provider", "aws", "--vm", vm, "--name", "before-upgrade", "--json",
                              env=env).stdout)
    ids = created["snapshot"].split(",")
    assert len(ids) == 2 and all(i.startswith("snap-") for i in ids), created
    listed = json.loads(hsdk("vms", "snapshots", "list", "--provider", "aws", "--vm", vm, "--json", env=env).stdout)
    assert {s["id"] for s in listed["snapshots"]} >= set(ids)
    assert all("before-upgrade" in s["name"] for s in listed["snapshots"] if s["id"] in ids)
    # A snapshot that is not ours is refused, not deleted.
    foreign = aws_sim.boto3("ec2").create_snapshot(VolumeId=instance["volumes"][0]["volume_id"])["SnapshotId"]
    e = run_op(env, "vms.snapshots.remove", {"provider": "aws", "vm": vm, "snapshot": foreign}, check=False)
    assert e["code"] == "permission_denied", e
    hsdk("vms", "snapshots", "remove", "--provider", "aws", "--vm", vm, "--snapshot", created["snapshot"], env=env)
    assert not ours_left(aws_sim)
    aws_sim.boto3("ec2").delete_snapshot(SnapshotId=foreign)

    status = json.loads(hsdk("cbt", "status", "--provider", "aws", "--vm", vm, "--json", env=env).stdout)
    assert status["enabled"] and [d["disk_id"] for d in status["disks"]] == [v["volume_id"] for v in instance["volumes"]], status
    e = run_op(env, "cbt.enable", {"provider": "aws", "vm": vm, "enabled": False}, check=False)
    assert e["code"] == "unsupported", e


def test_pending_snapshots_are_waited_for(aws_sim, instance, tmp_path):
    aws_sim.control(pending_polls=3, reset_log=True)
    try:
        r = export(aws_sim, instance, tmp_path / "out", "raw", config={"poll_interval_ms": 20})
    finally:
        aws_sim.control(pending_polls=0)
    polls = [c for c in aws_sim.log() if c.get("action") == "DescribeSnapshots"]
    assert len(polls) >= 4, len(polls)
    qemu_img("compare", "-f", "raw", "-F", "raw", instance["raw"][0], sorted(r["files"])[0])
    assert not ours_left(aws_sim)


def test_a_failed_snapshot_fails_the_export_and_is_deleted(aws_sim, instance, tmp_path):
    aws_sim.control(snapshot_error=True)
    try:
        e = run_op(aws_sim.env(), "export.run", {"provider": "aws", "vm": instance["instance_id"], "output_dir": str(tmp_path / "out"),
                                                 "format": "raw", "config": {"poll_interval_ms": 20}}, check=False)
    finally:
        aws_sim.control(snapshot_error=False)
    assert e["code"] == "remote_error" and "snap-" in e["message"], e
    assert not ours_left(aws_sim)
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")
