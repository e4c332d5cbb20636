"""The openstack provider against request/response fixtures shaped like the OpenStack API references
(tests/integration/openstack_fixtures.py: Keystone v3 tokens and catalog, Nova v2.1, Cinder v3,
Glance v2). Credentials come from OS_* variables, the config, clouds.yaml or an application
credential; exports go through Nova's createImage (image-backed servers) or Cinder's
upload-to-image (volume-backed ones) and Glance's image data, checked against its md5 and sha512.
Every export test checks that no image of ours is left and that one token served it."""
import json
import os
import pathlib

import pytest

from conftest import HSDK, MiB, hsdk, qemu_img
from conftest_openstack import PASSWORD_ENV, SECRET_ENV, bare_env, password_config
from conftest_openstack import openstack, openstack_disks, openstack_server  # noqa: F401
from openstack_fixtures import GiB, os_env, write_clouds_yaml

REGION_ONE_NAMES = ["app01", "app02", "app03", "db01", "web01"]


def leaked(state, p):
    """Whether the output shows the password, the application credential secret or a token."""
    text = p.stdout + p.stderr
    return any(s in text for s in [state.password, state.app_credential_secret, *state.tokens])


def run_op(state, operation, request, env, check=True, cwd=None):
    p = hsdk("run", operation, "-r", json.dumps(request), "--json", check=False, env=env, cwd=cwd)
    assert not leaked(state, p), p.stdout + p.stderr
    out = json.loads(p.stdout) if p.stdout.strip() else {}
    if check:
        assert p.returncode == 0, p.stdout + p.stderr
        return out
    assert p.returncode != 0, p.stdout
    return out["error"]


def config_env(state, **more):
    """No OS_* variables; the password for password_config's password_env."""
    return bare_env(**{PASSWORD_ENV: state.password, **more})


def export(state, tmp_path, vm="web01", fmt="raw", config=None, env=None, check=True):
    request = {"provider": "openstack", "config": config or password_config(state), "vm": vm,
               "output_dir": str(tmp_path / "out"), "format": fmt}
    return run_op(state, "export.run", request, env or config_env(state), check=check)


def disk_files(result, fmt):
    return [f for f in result["files"] if f.endswith("." + fmt)]


def assert_clean(state, out_dir):
    """Nothing of ours left in the cloud, nothing that looks finished (or half done) in out_dir."""
    assert not state.images_left(), state.images_left()
    left = sorted(os.listdir(out_dir)) if pathlib.Path(out_dir).exists() else []
    assert not [n for n in left if n.rsplit(".", 1)[-1] in ("raw", "qcow2", "vmdk", "ova", "ovf")], left
    assert not [n for n in left if ".hsdk" in n], left


def vm_names(result):
    vms = result["vms"] if isinstance(result, dict) else result
    return sorted(v["name"] for v in vms)


# ---- credentials -------------------------------------------------------------------------------
def test_password_auth_from_os_variables(openstack):
    env = os_env(openstack)
    assert vm_names(run_op(openstack, "vms.list", {"provider": "openstack"}, env)) == REGION_ONE_NAMES
    assert [t["method"] for t in openstack.token_log] == ["password"]
    auth = next(c for c in openstack.srv.calls if c.path.endswith("/auth/tokens"))
    assert auth.json["auth"]["scope"]["project"]["name"] == "hsdk-project"
    # the command line's form
    p = hsdk("vms", "list", "--provider", "openstack", "--json", env=env)
    assert vm_names(json.loads(p.stdout)) == REGION_ONE_NAMES and not leaked(openstack, p)


@pytest.mark.parametrize("source", ["password_env", "password_file", "project_id"])
def test_password_auth_from_the_config(openstack, tmp_path, source):
    if source == "password_env":
        config, env = password_config(openstack), config_env(openstack)
    elif source == "project_id":
        config, env = password_config(openstack, project_id=openstack.project_id), config_env(openstack)
        del config["project_name"], config["project_domain_name"]
    else:
        secret = tmp_path / "os-password"
        secret.write_text(openstack.password + "\n")
        config = password_config(openstack, password_file=str(secret))
        config.pop("password_env")
        env = bare_env()
    assert vm_names(run_op(openstack, "vms.list", {"provider": "openstack", "config": config}, env)) == REGION_ONE_NAMES
    scope = next(c for c in openstack.srv.calls if c.path.endswith("/auth/tokens")).json["auth"]["scope"]["project"]
    if source == "project_id":
        assert scope["id"] == openstack.project_id, scope
    else:
        assert scope["name"] == "hsdk-project" and scope["domain"] == {"name": "Default"}, scope
    # config keys override OS_* variables (these name a project and region the config does not)
    env = dict(env, OS_AUTH_URL=openstack.url + "/nowhere/v3", OS_REGION_NAME="RegionTwo", OS_PROJECT_NAME="hsdk-other-project")
    assert vm_names(run_op(openstack, "vms.list", {"provider": "openstack", "config": config}, env)) == REGION_ONE_NAMES


@pytest.mark.parametrize("where", ["OS_CLIENT_CONFIG_FILE", "current directory", "XDG_CONFIG_HOME", "config cloud key"])
def test_clouds_yaml(openstack, tmp_path, where):
    xdg = tmp_path / "xdg"
    xdg.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    env = bare_env(XDG_CONFIG_HOME=str(xdg), OS_CLOUD="hsdk-test")
    request = {"provider": "openstack"}
    if where == "OS_CLIENT_CONFIG_FILE":
        env["OS_CLIENT_CONFIG_FILE"] = str(write_clouds_yaml(tmp_path / "elsewhere" / "my-clouds.yaml", openstack))
    elif where == "current directory":
        write_clouds_yaml(work / "clouds.yaml", openstack)
    elif where == "XDG_CONFIG_HOME":
        write_clouds_yaml(xdg / "openstack" / "clouds.yaml", openstack)
    else:
        del env["OS_CLOUD"]
        write_clouds_yaml(work / "clouds.yaml", openstack)
        request["config"] = {"cloud": "hsdk-test", "poll_interval_ms": 20}
    assert vm_names(run_op(openstack, "vms.list", request, env, cwd=work)) == REGION_ONE_NAMES
    assert openstack.tokens_issued == 1  # the decoy entry (a wrong password) was not tried


def test_clouds_yaml_region_and_os_cloud_override(openstack, tmp_path):
    path = write_clouds_yaml(tmp_path / "clouds.yaml", openstack, cloud="hsdk-r2", region="RegionTwo")
    env = bare_env(OS_CLIENT_CONFIG_FILE=str(path), OS_CLOUD="hsdk-r2", XDG_CONFIG_HOME=str(tmp_path))
    assert vm_names(run_op(openstack, "vms.list", {"provider": "openstack"}, env)) == ["r2vm01"]


@pytest.mark.parametrize("source", ["OS variables", "config"])
def test_application_credential(openstack, source):
    if source == "OS variables":
        request, env = {"provider": "openstack"}, os_env(openstack, app_credential=True)
    else:
        config = {"auth_url": openstack.auth_url, "application_credential_id": openstack.app_credential_id,
                  "application_credential_secret_env": SECRET_ENV, "region_name": "RegionOne", "poll_interval_ms": 20}
        request, env = {"provider": "openstack", "config": config}, bare_env(**{SECRET_ENV: openstack.app_credential_secret})
    assert vm_names(run_op(openstack, "vms.list", request, env)) == REGION_ONE_NAMES
    assert [t["method"] for t in openstack.token_log] == ["application_credential"]
    auth = next(c for c in openstack.srv.calls if c.path.endswith("/auth/tokens")).json["auth"]
    assert auth["identity"]["methods"] == ["application_credential"]
    assert auth["identity"]["application_credential"] == {"id": openstack.app_credential_id, "secret": "***"}
    assert "scope" not in auth  # an application credential is bound to its project


def test_a_wrong_password_is_auth_failed_and_never_shown(openstack, tmp_path):
    wrong = "wrong-t0ken-" + openstack.password
    env = os_env(openstack, password=wrong)
    p = hsdk("run", "vms.list", "-r", json.dumps({"provider": "openstack"}), "--json", check=False, env=env)
    assert p.returncode != 0
    e = json.loads(p.stdout)["error"]
    assert e["code"] == "auth_failed", e
    assert wrong not in p.stdout + p.stderr and "wrong-t0ken" not in p.stdout + p.stderr
    p = hsdk("vms", "list", "--provider", "openstack", check=False, env=env)
    assert p.returncode != 0 and "wrong-t0ken" not in p.stdout + p.stderr
    # the same through the config, for an export: nothing started, nothing written
    env = bare_env(**{PASSWORD_ENV: wrong})
    e = export(openstack, tmp_path, env=env, check=False)
    assert e["code"] == "auth_failed", e
    assert "wrong-t0ken" not in e["message"]
    assert not openstack.created_images and openstack.tokens_issued == 0
    assert_clean(openstack, tmp_path / "out")


def test_the_region_and_interface_are_honoured(openstack):
    # RegionTwo from the config: only RegionTwo's endpoints are used (they know r2vm01 only)
    config = password_config(openstack, region_name="RegionTwo")
    assert vm_names(run_op(openstack, "vms.list", {"provider": "openstack", "config": config}, config_env(openstack))) == ["r2vm01"]
    assert openstack.endpoint_calls and all(region == "RegionTwo" for region, _, _ in openstack.endpoint_calls), openstack.endpoint_calls
    vm = run_op(openstack, "vms.describe", {"provider": "openstack", "config": config, "vm": "r2vm01"}, config_env(openstack))["vm"]
    assert vm["nics"][0]["mac"] == "fa:16:3e:22:22:22"
    e = run_op(openstack, "vms.describe", {"provider": "openstack", "config": config, "vm": "web01"}, config_env(openstack),
               check=False)
    assert e["code"] == "not_found", e
    # OS_REGION_NAME and OS_INTERFACE
    openstack.endpoint_calls.clear()
    env = os_env(openstack, region="RegionTwo", interface="internal")
    assert vm_names(run_op(openstack, "vms.list", {"provider": "openstack"}, env)) == ["r2vm01"]
    assert set((r, i) for r, i, _ in openstack.endpoint_calls) == {("RegionTwo", "internal")}, openstack.endpoint_calls
    # the default: RegionOne's public endpoints only
    openstack.endpoint_calls.clear()
    run_op(openstack, "vms.list", {"provider": "openstack", "config": password_config(openstack)}, config_env(openstack))
    assert not openstack.calls_outside("RegionOne", "public"), openstack.endpoint_calls


# ---- discovery ---------------------------------------------------------------------------------
def test_discovery_pages_and_reads_flavors(openstack):
    env, config = config_env(openstack), password_config(openstack)
    vms = run_op(openstack, "vms.list", {"provider": "openstack", "config": config}, env)["vms"]
    assert vm_names(vms) == REGION_ONE_NAMES
    assert openstack.calls["list_servers"] >= 3  # five servers, at most two a page: servers_links followed
    by_name = {v["name"]: v for v in vms}
    assert by_name["web01"]["cpus"] == 1 and by_name["web01"]["memory_mib"] == 2048
    vm = run_op(openstack, "vms.describe", {"provider": "openstack", "config": config, "vm": "web01"}, env)["vm"]
    assert vm["provider"] == "openstack" and vm["name"] == "web01"
    assert vm["cpus"] == 1 and vm["memory_mib"] == 2048
    assert len(vm["disks"]) == 1 and vm["disks"][0]["capacity_bytes"] == 1 * GiB  # m1.small's 1 GiB root
    assert [n["mac"] for n in vm["nics"]] == ["fa:16:3e:12:34:56"]
    db = run_op(openstack, "vms.describe", {"provider": "openstack", "config": config, "vm": "db01"}, env)["vm"]
    assert db["cpus"] == 2 and db["memory_mib"] == 4096
    assert [d["capacity_bytes"] for d in db["disks"]] == [GiB, GiB]  # the boot volume first
    assert [n["mac"] for n in db["nics"]] == ["fa:16:3e:aa:bb:cc", "fa:16:3e:aa:bb:cd"]
    # by id too
    web = openstack.find_server("web01")
    assert run_op(openstack, "vms.describe", {"provider": "openstack", "config": config, "vm": web.id}, env)["vm"]["name"] == "web01"
    e = run_op(openstack, "vms.describe", {"provider": "openstack", "config": config, "vm": "nope"}, env, check=False)
    assert e["code"] == "not_found", e
    p = hsdk("vms", "describe", "--provider", "openstack", "--config", json.dumps(config), "--vm", "web01", "--json", env=env)
    out = json.loads(p.stdout)
    assert out.get("vm", out)["memory_mib"] == 2048
    assert not openstack.created_images  # discovery makes nothing


# ---- exports -----------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["raw", "qcow2", "vmdk"])
def test_export_equals_the_planted_disk(openstack, tmp_path, fmt):
    r = export(openstack, tmp_path, fmt=fmt)
    disks = disk_files(r, fmt)
    assert len(disks) == 1 and sorted(os.listdir(tmp_path / "out")) == [pathlib.Path(disks[0]).name]
    qemu_img("compare", "-f", "raw", "-F", fmt, openstack.disks.web01, disks[0])
    # one createImage snapshot, read whole, then deleted; one token for all of it
    assert len(openstack.created_images) == 1 and openstack.deleted_images == openstack.created_images
    assert not openstack.images_left() and not openstack.nova_volume_snapshots
    assert {d["image"] for d in openstack.downloads} == set(openstack.created_images)
    assert openstack.tokens_issued == 1, openstack.token_log
    action = next(c for c in openstack.srv.calls if c.path.endswith("/action"))
    assert set(action.json) == {"createImage"} and action.json["createImage"]["name"]


def test_export_from_the_command_line(openstack, tmp_path):
    env = os_env(openstack)
    p = hsdk("export", "--provider", "openstack", "--config", json.dumps({"poll_interval_ms": 20}), "--vm", "web01",
             "--out", str(tmp_path / "out"), "--format", "qcow2", env=env)
    assert not leaked(openstack, p)
    files = [f for f in os.listdir(tmp_path / "out") if f.endswith(".qcow2")]
    assert len(files) == 1
    qemu_img("compare", "-f", "raw", "-F", "qcow2", openstack.disks.web01, tmp_path / "out" / files[0])
    assert not openstack.images_left()


def test_ova_with_a_verified_manifest(openstack, tmp_path):
    r = export(openstack, tmp_path, fmt="ova")
    ova = [f for f in r["files"] if f.endswith(".ova")][0]
    assert sorted(os.listdir(tmp_path / "out")) == [pathlib.Path(ova).name]
    assert hsdk("ova", "verify", ova).returncode == 0
    report = run_op(openstack, "ova.verify", {"path": ova}, bare_env())
    assert report["ok"], report
    members = [m["name"] for m in run_op(openstack, "ova.list", {"path": ova}, bare_env())["members"]]
    assert any(n.endswith(".mf") for n in members) and any(n.endswith(".vmdk") for n in members)
    assert not openstack.images_left()


def test_a_volume_backed_server_exports_each_volume_through_cinder(openstack, tmp_path):
    r = export(openstack, tmp_path, vm="db01", fmt="raw")
    disks = disk_files(r, "raw")
    assert len(disks) == 2, r["files"]
    # the boot volume first; each equals its volume (data, then zeros to 1 GiB)
    qemu_img("compare", "-f", "raw", "-F", "raw", openstack.disks.db01_boot, disks[0])
    qemu_img("compare", "-f", "raw", "-F", "raw", openstack.disks.db01_data, disks[1])
    assert all(os.path.getsize(d) == GiB for d in disks)
    db = openstack.find_server("db01")
    assert sorted(v for v, _ in openstack.volume_uploads) == sorted(vol.id for _, vol, _ in db.volumes)
    assert not openstack.nova_volume_snapshots  # never Nova's createImage (a block-device-mapping snapshot, no data)
    uploads = [c.json["os-volume_upload_image"] for c in openstack.srv.calls if c.path.endswith("/action") and "/volume/" in c.path]
    assert len(uploads) == 2
    assert all(u["force"] in (True, "true", "True") and u.get("disk_format", "raw") == "raw" for u in uploads), uploads
    assert all(vol.status == "in-use" for _, vol, _ in db.volumes)
    assert not openstack.images_left() and len(openstack.deleted_images) == 2
    assert openstack.tokens_issued == 1


def test_keep_images_keeps_them(openstack, tmp_path):
    export(openstack, tmp_path, config=password_config(openstack, keep_images=True))
    kept = openstack.images_left()
    assert len(kept) == 1 and openstack.images[kept[0]].status == "active" and not openstack.deleted_images


@pytest.mark.parametrize("final", ["killed", "deleted"])
def test_an_image_that_fails_is_a_clear_error_and_nothing_is_left(openstack, tmp_path, final):
    openstack.image_final = final
    e = export(openstack, tmp_path, check=False)
    assert len(openstack.created_images) == 1, e  # the snapshot was asked for, and then failed
    assert e["code"] in ("remote_error", "not_found", "conflict"), e
    if final == "killed":
        assert "killed" in e["message"], e
    assert_clean(openstack, tmp_path / "out")
    assert not openstack.downloads


def test_a_checksum_mismatch_leaves_no_output(openstack, tmp_path):
    openstack.corrupt_at = 5 * MiB + 3
    e = export(openstack, tmp_path, fmt="qcow2", check=False)
    assert e["code"] == "checksum_mismatch", e
    assert_clean(openstack, tmp_path / "out")


def test_a_dropped_download_resumes_with_a_range(openstack, tmp_path):
    openstack.drop_after = 6 * MiB + 123
    r = export(openstack, tmp_path, fmt="qcow2")
    qemu_img("compare", "-f", "raw", "-F", "qcow2", openstack.disks.web01, disk_files(r, "qcow2")[0])
    downloads = openstack.downloads
    cut = [i for i, d in enumerate(downloads) if d["cut"] is not None]
    assert len(cut) == 1 and downloads[cut[0]]["stream"].cut, openstack.ranges_seen()
    dropped_at = downloads[cut[0]]["start"] + 6 * MiB + 123
    resumed = [d for d in downloads[cut[0] + 1:] if d["range"] and d["start"] > 0]
    assert resumed, openstack.ranges_seen()
    assert 0 < resumed[0]["start"] <= dropped_at and resumed[0]["range"].startswith(f"bytes={resumed[0]['start']}-")
    assert sum(1 for d in downloads if d["start"] == 0 and d["length"] > 1) == 1, openstack.ranges_seen()  # not started over
    assert not openstack.images_left() and openstack.tokens_issued == 1


def test_one_token_serves_a_whole_export(openstack, tmp_path):
    openstack.image_polls = 6  # several polls, each with the same token
    export(openstack, tmp_path)
    assert openstack.tokens_issued == 1, openstack.token_log
    assert openstack.calls["get_image"] >= 6


def test_an_expired_token_is_replaced(openstack, tmp_path):
    openstack.token_lifetime = 2  # expires_at says so; a call after it answers 401
    openstack.image_polls = 12
    r = export(openstack, tmp_path, config=password_config(openstack, poll_interval_ms=300))
    qemu_img("compare", "-f", "raw", "-F", "raw", openstack.disks.web01, disk_files(r, "raw")[0])
    assert openstack.tokens_issued >= 2, openstack.token_log
    assert not openstack.images_left()


@pytest.mark.parametrize("when", [{"get_image": 2}, {"image_file": 1}], ids=["while polling", "at the download"])
def test_a_401_midway_authenticates_again_once(openstack, tmp_path, when):
    openstack.revoke_at = dict(when)
    r = export(openstack, tmp_path, fmt="raw")
    qemu_img("compare", "-f", "raw", "-F", "raw", openstack.disks.web01, disk_files(r, "raw")[0])
    assert openstack.tokens_issued == 2, openstack.token_log
    assert not openstack.images_left()


# ---- glance:// sources ---------------------------------------------------------------------------
def test_glance_images_are_sources(openstack, tmp_path):
    env = os_env(openstack)
    out = tmp_path / "from-qcow2.qcow2"
    p = hsdk("convert", "-O", "qcow2", f"glance://{openstack.qcow2_image.id}", str(out), env=env)
    assert not leaked(openstack, p)
    qemu_img("compare", "-f", "raw", "-F", "qcow2", openstack.disks.web01, out)
    out = tmp_path / "from-raw.qcow2"
    hsdk("convert", "-f", "raw", "-O", "qcow2", f"glance://{openstack.raw_image.id}", str(out), env=env)
    qemu_img("compare", "-f", "raw", "-F", "qcow2", openstack.disks.web01, out)
    info = json.loads(hsdk("info", "--json", f"glance://{openstack.qcow2_image.id}", env=env).stdout)
    assert info["format"] == "qcow2" and info["virtual-size"] == 16 * MiB
    info = json.loads(hsdk("info", "--json", "-f", "raw", f"glance://{openstack.raw_image.id}", env=env).stdout)
    assert info["virtual-size"] == 16 * MiB
    assert all(d["image"] in (openstack.qcow2_image.id, openstack.raw_image.id) for d in openstack.downloads)
    assert not openstack.created_images  # reading an image makes nothing
    e = run_op(openstack, "image.info", {"path": "glance://00000000-0000-0000-0000-000000000000"}, env, check=False)
    assert e["code"] == "not_found", e
    e = run_op(openstack, "image.info", {"path": f"glance://{openstack.qcow2_image.id}"}, os_env(openstack, password="wrong-t0ken"),
               check=False)
    assert e["code"] == "auth_failed" and "wrong-t0ken" not in e["message"], e


def test_cancel_mid_download_deletes_our_image(openstack, tmp_path):
    import signal
    import subprocess
    openstack.chunk_delay = 0.1
    out = tmp_path / "out"
    args = [str(HSDK), "export", "--provider", "openstack", "--config", json.dumps(password_config(openstack)), "--vm", "web01",
            "--out", str(out), "--format", "qcow2", "-p"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=config_env(openstack))
    line = ""
    while "disk 1" not in line:
        line = proc.stderr.readline()
        assert line or proc.poll() is None, "the export ended before it reported progress"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert openstack.password not in stderr
    assert_clean(openstack, out)
