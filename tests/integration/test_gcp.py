"""The gcp provider and gs:// sources against request/response fixtures shaped like Google's REST
references (tests/integration/gcp_fixtures.py: the OAuth 2.0 token endpoint with real JWT
signature checks, the metadata server, Compute Engine v1, Cloud Build v1's image export build)
with the export objects in a real Cloud Storage peer, fake-gcs-server (tests/sim/gcs).

An export makes, per disk, an image of ours (labelled created-by=hypersdk), runs the
gce_vm_image_export build to gs://BUCKET/hypersdk-exports/..., streams the object into the output
(a tar.gz holding disk.raw by default, sparse on our side), then deletes the image and the object.
GCP disks are whole GiB: the planted disks are 1 GiB with data in their first MiBs and zeros after.
Every test checks that no image of ours, no export object and no running build is left, and that
no secret (private key, client secret, refresh token, access token) shows in any output."""
import json
import os
import pathlib
import signal
import subprocess
import threading
import time

import pytest

from conftest import HSDK, MiB, hsdk, qemu_img
from conftest_gcp import GcpCloud, fake_gcs, pattern_disk  # noqa: F401
from gcp_fixtures import EXPORT_STEP, GiB, Attached, Instance, Nic, export_tar_gz, make_disk

OUTPUT_SUFFIXES = (".raw", ".qcow2", ".vmdk", ".vhdx", ".vhd", ".vdi", ".ova", ".ovf")


# ---- setup -------------------------------------------------------------------------------------------
@pytest.fixture
def cloud(fake_gcs, tmp_path):
    """One project, page size 1 (every list is paged):
      web01  us-central1-a   e2-standard-2 (2 vCPUs, 8 GiB), RUNNING, UEFI + Secure Boot; its data
                             disk web01-data (NVMe) listed before its boot disk web01 (SCSI);
      app01  us-central1-b   n2-custom-2-4096 (a custom type: no machineTypes answer), RUNNING;
      db01   europe-west1-b  custom-4-8192, TERMINATED, BIOS.
    cloud.planted: {vm: [raw files, boot disk first]}, each a sparse 1 GiB file."""
    c = GcpCloud(fake_gcs, tmp_path / "cloud", page_size=1)
    st = c.state
    web_boot = pattern_disk(tmp_path / "web01.raw", seed=101)
    web_data = pattern_disk(tmp_path / "web01-data.raw", seed=102, data_bytes=4 * MiB)
    boot = make_disk(st, "web01", "us-central1-a", path=web_boot,
                     guest_os_features=["UEFI_COMPATIBLE", "VIRTIO_SCSI_MULTIQUEUE", "GVNIC"])
    data = make_disk(st, "web01-data", "us-central1-a", path=web_data, source_image=None, licenses=[])
    st.add_instance(Instance("web01", [Attached(data, index=1, interface="NVME"), Attached(boot, boot=True, index=0)],
                             machine_type="e2-standard-2", secure_boot=True,
                             nics=[Nic(ip="10.128.0.2", external_ip="34.1.2.3", nic_type="GVNIC")]))
    app = pattern_disk(tmp_path / "app01.raw", seed=103)
    st.add_instance(Instance("app01", [Attached(make_disk(st, "app01", "us-central1-b", path=app), boot=True)],
                             machine_type="n2-custom-2-4096", nics=[Nic(ip="10.128.0.3")]))
    db = pattern_disk(tmp_path / "db01.raw", seed=104, data_bytes=2 * MiB)
    st.add_instance(Instance("db01", [Attached(make_disk(st, "db01", "europe-west1-b", path=db, licenses=[]), boot=True)],
                             machine_type="custom-4-8192", status="TERMINATED", nics=[Nic(ip="10.132.0.2")]))
    c.planted = {"web01": [web_boot, web_data], "app01": [app], "db01": [db]}
    yield c
    try:
        assert not c.srv.unmatched, [f"{r.method} {r.raw_path}" for r in c.srv.unmatched]
    finally:
        c.stop()


def assert_no_secrets(cloud, text, *infos):
    for s in cloud.secrets(*infos):
        assert s not in text, "a secret shows in the output"


def run_op(cloud, operation, request, check=True, env=None, infos=()):
    p = hsdk("run", operation, "-r", json.dumps(request), "--json", check=False, env=env or cloud.env())
    assert_no_secrets(cloud, p.stdout + p.stderr, *infos)
    out = json.loads(p.stdout) if p.stdout.strip() else {}
    if check:
        assert p.returncode == 0, p.stdout + p.stderr
        return out
    assert p.returncode != 0, p.stdout
    return out["error"]


def export(cloud, vm, out, fmt, check=True, env=None, **config):
    return run_op(cloud, "export.run", {"provider": "gcp", "config": cloud.config(**config), "vm": vm, "output_dir": str(out),
                                        "format": fmt}, check=check, env=env)


def finished_outputs(out):
    """Files in `out` that look like a finished export (an output suffix, no temporary marker)."""
    if not out.exists():
        return []
    return sorted(p.name for p in out.iterdir() if p.name.endswith(OUTPUT_SUFFIXES) and ".hsdk" not in p.name)


def assert_equal_to_planted(planted, files, fmt):
    """Each planted disk equals one exported file (qemu-img compare), one to one."""
    left = list(files)
    for raw in planted:
        match = None
        for f in left:
            if qemu_img("compare", "-f", "raw", "-F", fmt, raw, f, check=False).returncode == 0:
                match = f
                break
        assert match is not None, f"no exported disk equals {raw}: {left}"
        left.remove(match)
    assert not left, left


def export_builds(cloud):
    return [cloud.state.builds[b] for b in cloud.state.created_builds]


# ---- discovery ---------------------------------------------------------------------------------------
def test_discovery_pages_and_fills_the_vm_model(cloud):
    st = cloud.state
    vms = run_op(cloud, "vms.list", {"provider": "gcp", "config": cloud.config()})["vms"]
    assert sorted(v["name"] for v in vms) == ["app01", "db01", "web01"]
    # page size 1: three pages of the aggregated list (or one zonal list per zone, paged)
    assert st.calls["aggregated_instances"] >= 3 or st.calls["list_instances"] >= 3, st.calls
    assert all(v["provider"] == "gcp" for v in vms)

    vm = run_op(cloud, "vms.describe", {"provider": "gcp", "config": cloud.config(), "vm": "web01"})["vm"]
    assert vm["provider"] == "gcp" and vm["name"] == "web01" and vm["id"]
    assert (vm["cpus"], vm["memory_mib"]) == (2, 8192)  # e2-standard-2, from machineTypes.get
    assert vm["firmware"] == "efi" and vm["secure_boot"] is True
    assert vm["power_state"] == "poweredOn"
    disks = vm["disks"]
    assert [d["capacity_bytes"] for d in disks] == [GiB, GiB]
    assert disks[0]["boot_order"] == 1, disks  # the boot disk first although the API lists the data disk first
    assert "web01-data" not in json.dumps(disks[0]) and "web01-data" in json.dumps(disks[1])
    assert disks[0]["controller"] == "scsi" and disks[1]["controller"] == "nvme", disks
    assert len(vm["nics"]) == 1 and "default" in json.dumps(vm["nics"][0])

    app = run_op(cloud, "vms.describe", {"provider": "gcp", "config": cloud.config(), "vm": "app01"})["vm"]
    assert (app["cpus"], app["memory_mib"]) == (2, 4096)  # n2-custom-2-4096, parsed by the client
    assert app["firmware"] == "bios"
    db = run_op(cloud, "vms.describe", {"provider": "gcp", "config": cloud.config(zone="europe-west1-b"), "vm": "db01"})["vm"]
    assert (db["cpus"], db["memory_mib"]) == (4, 8192) and db["firmware"] == "bios"  # custom-4-8192
    assert db["power_state"] == "poweredOff"  # TERMINATED
    assert st.calls["get_instance"] >= 1
    e = run_op(cloud, "vms.describe", {"provider": "gcp", "config": cloud.config(), "vm": "nope"}, check=False)
    assert e["code"] == "not_found", e
    assert st.tokens_issued("jwt_bearer") >= 1 and not st.created_images


def test_cli_flags_name_the_endpoints(cloud):
    env = cloud.env(GOOGLE_APPLICATION_CREDENTIALS=cloud.key_path)
    flags = ["--provider", "gcp", "--project", cloud.state.project, "--token-uri", cloud.state.token_uri,
             "--compute-endpoint", cloud.url, "--storage-endpoint", cloud.gcs.url]
    listed = json.loads(hsdk("vms", "list", *flags, "--json", env=env).stdout)
    assert sorted(v["name"] for v in listed) == ["app01", "db01", "web01"]
    vm = json.loads(hsdk("vms", "describe", *flags, "--zone", "us-central1-a", "--vm", "web01", "--json", env=env).stdout)
    assert vm["name"] == "web01" and vm["cpus"] == 2
    # GOOGLE_CLOUD_PROJECT instead of --project.
    no_project = [f for f in flags if f not in ("--project", cloud.state.project)]
    vm = json.loads(hsdk("vms", "describe", *no_project, "--vm", "app01", "--json",
                         env=dict(env, GOOGLE_CLOUD_PROJECT=cloud.state.project)).stdout)
    assert vm["name"] == "app01"
    p = hsdk("vms", "list", "--provider", "vsphere", "--compute-endpoint", cloud.url, check=False, env=env)
    assert p.returncode != 0 and "--provider gcp" in p.stderr
    assert cloud.state.tokens_issued("jwt_bearer") >= 1
    # --retries is the provider's max_attempts: one try meets the 429, the default retries past it.
    cloud.state.throttle = {"aggregated_instances": 1}
    p = hsdk("vms", "list", *flags, "--retries", "1", "--json", check=False, env=env)
    assert p.returncode != 0 and "HTTP 429" in p.stderr and "after 1 tries" in p.stderr, p.stderr
    cloud.state.throttle = {"aggregated_instances": 1}
    assert sorted(v["name"] for v in json.loads(hsdk("vms", "list", *flags, "--json", env=env).stdout)) == ["app01", "db01", "web01"]


# ---- credentials -------------------------------------------------------------------------------------
def test_service_account_jwt_is_verified_and_its_token_reused(cloud):
    st = cloud.state
    run_op(cloud, "vms.describe", {"provider": "gcp", "config": cloud.config(), "vm": "web01"})
    grants = [r for r in st.token_requests if r["grant"] == "jwt_bearer"]
    assert grants and all(r["outcome"] == "issued" for r in grants), grants
    assert grants[0]["subject"] == cloud.key["client_email"]
    assert st.tokens_issued() == 1, "one token serves every call of a short run"


def test_google_application_credentials_names_the_key(cloud):
    cfg = cloud.config(credentials_file=None)
    vm = run_op(cloud, "vms.describe", {"provider": "gcp", "config": cfg, "vm": "web01"},
                env=cloud.env(GOOGLE_APPLICATION_CREDENTIALS=cloud.key_path))["vm"]
    assert vm["name"] == "web01" and cloud.state.tokens_issued("jwt_bearer") == 1


def test_authorized_user_credentials_use_the_refresh_token(cloud):
    st = cloud.state
    user = st.make_authorized_user(cloud.tmp / "adc.json")
    cfg = cloud.config(credentials_file=str(cloud.tmp / "adc.json"))
    vm = run_op(cloud, "vms.describe", {"provider": "gcp", "config": cfg, "vm": "web01"}, infos=(user,))["vm"]
    assert vm["name"] == "web01"
    assert st.tokens_issued("refresh_token") >= 1 and st.tokens_issued("jwt_bearer") == 0
    wrong = st.make_authorized_user(cloud.tmp / "adc-wrong.json", registered=False)
    e = run_op(cloud, "vms.list", {"provider": "gcp", "config": cloud.config(credentials_file=str(cloud.tmp / "adc-wrong.json"))},
               check=False, infos=(user, wrong))
    assert e["code"] == "auth_failed", e


def test_a_given_access_token_is_used_as_it_is(cloud):
    st = cloud.state
    token = st.issue_token()
    (cloud.tmp / "token.txt").write_text(token + "\n")
    by_env = cloud.config(credentials_file=None, access_token_env="MY_GCP_TOKEN")
    vm = run_op(cloud, "vms.describe", {"provider": "gcp", "config": by_env, "vm": "web01"}, env=cloud.env(MY_GCP_TOKEN=token))["vm"]
    assert vm["name"] == "web01"
    by_file = cloud.config(credentials_file=None, access_token_file=str(cloud.tmp / "token.txt"))
    assert run_op(cloud, "vms.list", {"provider": "gcp", "config": by_file})["vms"]
    assert st.tokens_issued() == 0 and not st.token_requests, "no token was asked for"
    # A token the API refuses: auth_failed, never shown.
    e = run_op(cloud, "vms.list", {"provider": "gcp", "config": by_env}, env=cloud.env(MY_GCP_TOKEN="ya29.not-a-valid-token"),
               check=False)
    assert e["code"] == "auth_failed", e


def test_the_metadata_server_gives_the_token_and_the_project(cloud):
    st = cloud.state
    cfg = cloud.config(credentials_file=None, project=None)  # metadata_host: the fixture
    vm = run_op(cloud, "vms.describe", {"provider": "gcp", "config": cfg, "vm": "web01"})["vm"]
    assert vm["name"] == "web01"
    assert st.tokens_issued("metadata") >= 1 and st.tokens_issued("jwt_bearer") == 0
    # GCE_METADATA_HOST alone (the environment names it; no metadata_host in the config).
    cfg = cloud.config(credentials_file=None, metadata_host=None)
    assert run_op(cloud, "vms.list", {"provider": "gcp", "config": cfg}, env=cloud.env(GCE_METADATA_HOST=st.metadata_host))["vms"]


def test_a_wrong_key_is_auth_failed_and_never_shown(cloud, tmp_path):
    st = cloud.state
    forged = st.make_service_account_key(tmp_path / "forged.json", forged=True)
    unknown = st.make_service_account_key(tmp_path / "unknown.json", email="nobody@hsdk-test.iam.gserviceaccount.com",
                                          registered=False)
    for path, info in ((tmp_path / "forged.json", forged), (tmp_path / "unknown.json", unknown)):
        cfg = cloud.config(credentials_file=str(path))
        p = hsdk("run", "vms.list", "-r", json.dumps({"provider": "gcp", "config": cfg}), "--json", check=False, env=cloud.env())
        assert p.returncode != 0
        e = json.loads(p.stdout)["error"]
        assert e["code"] == "auth_failed", e
        assert_no_secrets(cloud, p.stdout + p.stderr, info)
        e = export(cloud, "web01", tmp_path / "out", "raw", check=False, credentials_file=str(path))
        assert e["code"] == "auth_failed", e
    assert not finished_outputs(tmp_path / "out") and not st.created_images and not st.created_builds
    assert st.tokens_issued("metadata") == 0, "no fall back to the metadata server after explicit credentials failed"


def test_tokens_are_renewed_when_they_expire(cloud, tmp_path):
    st = cloud.state
    st.token_lifetime = 2
    st.build_working_polls = 12
    r = export(cloud, "app01", tmp_path / "out", "raw", poll_interval_ms=300)
    assert_equal_to_planted(cloud.planted["app01"], [f for f in r["files"] if f.endswith(".raw")], "raw")
    assert st.tokens_issued("jwt_bearer") >= 2, "the short-lived token was not renewed"
    cloud.assert_nothing_left()


# ---- export -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["raw", "qcow2"])
def test_export_equals_the_disk_sparsely_and_cleans_up(cloud, tmp_path, fmt):
    st = cloud.state
    out = tmp_path / "out"
    r = export(cloud, "app01", out, fmt)
    disks = [f for f in r["files"] if f.endswith("." + fmt)]
    assert len(disks) == 1, r
    assert_equal_to_planted(cloud.planted["app01"], disks, fmt)
    if fmt == "raw":
        assert os.path.getsize(disks[0]) == GiB
        assert os.stat(disks[0]).st_blocks * 512 < 64 * MiB, "zero runs were written, not skipped"
    assert sorted(os.listdir(out)) == sorted(pathlib.Path(f).name for f in r["files"])
    # One image of ours (labelled, from the disk, forced: the instance runs), one export build.
    (insert,) = st.image_inserts
    assert insert["labels"].get("created-by") == "hypersdk" and insert["source_disk"].endswith("zones/us-central1-b/disks/app01")
    assert insert["force_create"]
    (build,) = export_builds(cloud)
    assert build["step"]["name"].startswith(EXPORT_STEP)
    assert build["flags"]["source_image"].endswith("global/images/" + insert["name"])
    assert build["flags"]["destination_uri"].startswith(f"gs://{st.bucket}/hypersdk-exports/")
    assert "format" not in build["flags"]
    assert st.exports and st.exports[0]["uri"] == build["flags"]["destination_uri"]
    cloud.assert_nothing_left()


def test_a_two_disk_vm_exports_both_boot_first(cloud, tmp_path):
    st = cloud.state
    r = export(cloud, "web01", tmp_path / "out", "raw")
    disks = [f for f in r["files"] if f.endswith(".raw")]
    assert len(disks) == 2, r
    assert_equal_to_planted(cloud.planted["web01"], disks, "raw")
    qemu_img("compare", "-f", "raw", "-F", "raw", cloud.planted["web01"][0], disks[0])  # in order: the boot disk first
    assert len(st.image_inserts) == 2 and len(st.created_builds) == 2
    cloud.assert_nothing_left()


def test_ova_with_a_verified_manifest(cloud, tmp_path):
    out = tmp_path / "out"
    r = export(cloud, "app01", out, "ova")
    ova = [f for f in r["files"] if f.endswith(".ova")][0]
    assert sorted(os.listdir(out)) == [pathlib.Path(ova).name]
    report = run_op(cloud, "ova.verify", {"path": ova})
    assert report["ok"], report
    members = {m["name"] for m in run_op(cloud, "ova.list", {"path": ova})["members"]}
    assert any(n.endswith(".mf") for n in members) and any(n.endswith(".vmdk") for n in members)
    cloud.assert_nothing_left()


@pytest.mark.parametrize("export_format", ["vmdk", "qcow2"])
def test_export_format_has_cloud_build_convert_the_image(cloud, tmp_path, export_format):
    st = cloud.state
    r = export(cloud, "app01", tmp_path / "out", "qcow2", export_format=export_format)
    (build,) = export_builds(cloud)
    assert build["flags"].get("format") == export_format
    assert_equal_to_planted(cloud.planted["app01"], [f for f in r["files"] if f.endswith(".qcow2")], "qcow2")
    assert len(st.exports) == 1
    cloud.assert_nothing_left()


def test_keep_exports_keeps_the_image_and_the_object(cloud, tmp_path):
    st = cloud.state
    export(cloud, "app01", tmp_path / "out", "raw", keep_exports=True)
    assert len(st.images_left()) == 1 and len(st.objects_left()) == 1
    assert not st.running_builds()


def test_object_prefix_is_where_the_objects_go(cloud, tmp_path):
    st = cloud.state
    export(cloud, "app01", tmp_path / "out", "raw", object_prefix="team-a/exports/", keep_exports=True)
    assert len(st.objects_left("team-a/exports/")) == 1 and not st.objects_left("hypersdk-exports/")


def test_a_failing_build_fails_the_export_naming_it(cloud, tmp_path):
    st = cloud.state
    st.build_outcome = "FAILURE"
    st.build_status_detail = "Build step failure: build step 0 failed: step exited with non-zero status: 1 (disk too large)"
    e = export(cloud, "app01", tmp_path / "out", "raw", check=False)
    (build,) = export_builds(cloud)
    assert e["code"] == "remote_error", e
    assert build["id"] in e["message"] and "disk too large" in e["message"], e
    assert not finished_outputs(tmp_path / "out")
    cloud.assert_nothing_left()


@pytest.mark.parametrize("outcome", ["TIMEOUT", "INTERNAL_ERROR"])
def test_a_build_that_times_out_or_breaks_fails_the_export(cloud, tmp_path, outcome):
    cloud.state.build_outcome = outcome
    e = export(cloud, "app01", tmp_path / "out", "raw", check=False)
    assert e["code"] in ("remote_error", "timeout"), e
    assert export_builds(cloud)[0]["id"] in e["message"], e
    assert not finished_outputs(tmp_path / "out")
    cloud.assert_nothing_left()


def test_an_image_quota_error_fails_the_export_cleanly(cloud, tmp_path):
    st = cloud.state
    st.operation_error = "QUOTA_EXCEEDED"
    e = export(cloud, "app01", tmp_path / "out", "raw", check=False)
    assert e["code"] in ("remote_error", "permission_denied", "no_space"), e
    assert "QUOTA_EXCEEDED" in e["message"] or "Quota" in e["message"], e
    assert not st.created_builds and not finished_outputs(tmp_path / "out")
    cloud.assert_nothing_left()


@pytest.mark.parametrize("knob,value", [("truncate_object", 0.5), ("corrupt_object", "data"), ("corrupt_object", "crc"),
                                        ("short_disk_raw", MiB)],
                         ids=["truncated", "flipped-byte", "bad-crc", "short-disk-raw"])
@pytest.mark.parametrize("fmt", ["raw", "qcow2"])
def test_a_damaged_export_object_is_an_error_and_leaves_nothing_finished(cloud, tmp_path, knob, value, fmt):
    st = cloud.state
    setattr(st, knob, value)
    out = tmp_path / "out"
    e = export(cloud, "app01", out, fmt, check=False)
    assert e["code"] in ("corrupt_image", "checksum_mismatch", "io_error"), e
    assert not finished_outputs(out), os.listdir(out)
    assert not [n for n in (os.listdir(out) if out.exists() else []) if ".hsdk" in n]
    cloud.assert_nothing_left()


def test_a_damaged_converted_object_is_an_error(cloud, tmp_path):
    cloud.state.truncate_object = 0.5
    e = export(cloud, "app01", tmp_path / "out", "raw", check=False, export_format="vmdk")
    assert e["code"] in ("corrupt_image", "checksum_mismatch", "io_error"), e
    assert not finished_outputs(tmp_path / "out")
    cloud.assert_nothing_left()


def test_a_manifest_member_multi_member_gzip_and_a_base256_size_are_read(cloud, tmp_path):
    st = cloud.state
    st.tar_manifest, st.gzip_members, st.tar_base256 = True, 4, True
    r = export(cloud, "app01", tmp_path / "out", "raw")
    assert_equal_to_planted(cloud.planted["app01"], [f for f in r["files"] if f.endswith(".raw")], "raw")
    cloud.assert_nothing_left()


def test_throttling_and_transient_errors_are_retried(cloud, tmp_path):
    st = cloud.state
    st.throttle = {"insert_image": 1, "get_build": 1, "aggregated_instances": 1}
    st.unavailable = {"get_operation": 1, "create_build": 1, "token": 1}
    r = export(cloud, "app01", tmp_path / "out", "raw")
    assert_equal_to_planted(cloud.planted["app01"], [f for f in r["files"] if f.endswith(".raw")], "raw")
    assert not any(st.throttle.values()) and not any(st.unavailable.values())
    assert len(st.image_inserts) == 1 and len(st.created_builds) == 1, "a retried create made a second image or build"
    cloud.assert_nothing_left()


def test_storage_gets_the_bearer_token(cloud, tmp_path):
    st = cloud.state
    st.storage_requires_auth = True
    r = export(cloud, "app01", tmp_path / "out", "raw", storage="proxy")
    assert_equal_to_planted(cloud.planted["app01"], [f for f in r["files"] if f.endswith(".raw")], "raw")
    assert st.calls["storage"] >= 1 and not [x for x in st.storage_requests if x[3] == 401]
    cloud.assert_nothing_left()


def test_secrets_stay_out_of_logs(cloud, tmp_path):
    env = cloud.env(HSDK_LOG="debug")
    p = hsdk("export", "--provider", "gcp", "--config", json.dumps(cloud.config()), "--vm", "app01", "--out", str(tmp_path / "o"),
             "--format", "raw", "-v", env=env, check=False)
    assert p.returncode == 0, p.stderr
    assert_no_secrets(cloud, p.stdout + p.stderr)
    assert cloud.key["private_key_id"] not in p.stdout + p.stderr
    cloud.assert_nothing_left()


# ---- cancel -----------------------------------------------------------------------------------------
class Running:
    """hsdk export of app01 with progress (-p) in the background; its stderr read by a thread."""

    def __init__(self, cloud, out, fmt="qcow2", **config):
        args = [str(HSDK), "export", "--provider", "gcp", "--config", json.dumps(cloud.config(**config)), "--vm", "app01",
                "--out", str(out), "--format", fmt, "-p"]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cloud.env())
        self.lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line)

    def wait_until(self, condition, what, timeout=60):
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.proc.poll() is None, f"the export ended before {what}: {''.join(self.lines)[-2000:]}"
            assert time.monotonic() < deadline, f"no {what} within {timeout} s"
            time.sleep(0.05)

    def interrupt(self):
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=120)
        self.reader.join(timeout=10)
        self.proc.stdout.close()
        return self.proc.returncode, "".join(self.lines)


def test_cancel_during_a_slow_read_deletes_the_image_and_the_object(cloud, tmp_path):
    st = cloud.state
    st.storage_delay = 0.2  # a 256 KiB piece every 0.2 s: the object takes a minute
    out = tmp_path / "out"
    run = Running(cloud, out, storage="proxy")
    # Wait (by progress and by the bytes moving, not by time) until the disk is being read.
    run.wait_until(lambda: any("disk 1" in line for line in run.lines) and any(r[4] for r in st.storage_requests),
                   "the download moved")
    status, stderr = run.interrupt()
    st.storage_delay = 0
    assert status == 130, stderr
    assert_no_secrets(cloud, stderr)
    assert not finished_outputs(out) and not [n for n in (os.listdir(out) if out.exists() else []) if ".hsdk" in n]
    cloud.assert_nothing_left()


def test_cancel_while_the_build_runs_cancels_it(cloud, tmp_path):
    st = cloud.state
    st.build_outcome = "hang"
    out = tmp_path / "out"
    run = Running(cloud, out)
    run.wait_until(lambda: st.created_builds and st.builds[st.created_builds[0]]["polls"] >= 2, "a build being polled")
    status, stderr = run.interrupt()
    assert status == 130, stderr
    assert st.cancel_calls == [st.created_builds[0]], st.cancel_calls
    assert not finished_outputs(out)
    cloud.assert_nothing_left()


# ---- gs:// sources -----------------------------------------------------------------------------------
def test_a_gs_object_is_an_image(cloud, tmp_path):
    gcs = cloud.gcs
    raw = pattern_disk(tmp_path / "disk.raw", seed=7, data_bytes=3 * MiB, size=8 * MiB)
    vmdk = tmp_path / "disk.vmdk"
    qemu_img("convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", raw, vmdk)
    bucket = cloud.state.bucket
    gcs.upload(bucket, "images/disk one.vmdk", vmdk.read_bytes())
    for host in (gcs.emulator_host, gcs.url):  # STORAGE_EMULATOR_HOST as host:port and as a URL
        env = cloud.env(STORAGE_EMULATOR_HOST=host)
        out = tmp_path / f"out-{len(host)}.qcow2"
        hsdk("convert", "-O", "qcow2", f"gs://{bucket}/images/disk one.vmdk", str(out), env=env)
        qemu_img("compare", "-f", "raw", "-F", "qcow2", raw, out)
    env = cloud.env(STORAGE_EMULATOR_HOST=gcs.emulator_host)
    info = json.loads(hsdk("info", f"gs://{bucket}/images/disk one.vmdk", "--json", env=env).stdout)
    assert info["format"] == "vmdk" and info["virtual-size"] == 8 * MiB
    e = run_op(cloud, "image.info", {"path": f"gs://{bucket}/images/missing.vmdk"}, check=False, env=env)
    assert e["code"] == "not_found", e
    e = run_op(cloud, "image.info", {"path": "gs://"}, check=False, env=env)
    assert e["code"] == "invalid_argument", e


def test_a_gs_tar_gz_holding_disk_raw_is_read_as_a_stream(cloud, tmp_path):
    gcs = cloud.gcs
    raw = pattern_disk(tmp_path / "disk.raw", seed=8, data_bytes=5 * MiB, size=64 * MiB)
    bucket = cloud.state.bucket
    gcs.upload(bucket, "exports/x.tar.gz", export_tar_gz(raw, 64 * MiB), content_type="application/x-gzip")
    env = cloud.env(STORAGE_EMULATOR_HOST=gcs.emulator_host)
    out = tmp_path / "x.qcow2"
    hsdk("convert", "-O", "qcow2", f"gs://{bucket}/exports/x.tar.gz", str(out), env=env)
    qemu_img("compare", "-f", "raw", "-F", "qcow2", raw, out)
    # The image.convert operation reads it the same way.
    p = hsdk("run", "image.convert", "-r", json.dumps({"source": f"gs://{bucket}/exports/x.tar.gz",
                                                       "destination": str(tmp_path / "y.raw"), "output_format": "raw"}),
             "--json", check=False, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    qemu_img("compare", "-f", "raw", "-F", "raw", raw, tmp_path / "y.raw")
