"""hypersdk.HyperSDK, the client with the original HyperSDK SDK's API, against the real hypervisord
(build/<preset>/tools/hypervisord/hypervisord, started by daemon_harness.Daemon) and in-process
(HyperSDK() without a URL): the calls an old SDK script makes (health, status, submit, query,
cancel, progress, logs, ETA, schedules, webhooks, VMs), with jobs exporting from the bundled vSphere
simulator; API keys and login with authentication on; and the old SDK's routes the daemon does not
serve raising APIError naming the route.

Needs the in-tree Python module (build/<preset>/bindings/python, with hypersdk/client.py copied in
by the build), the daemon and the simulator (build/sim/vspheresim)."""
import http.server
import pathlib
import re
import sys
import threading
import time

import pytest

from conftest import BUILD, MiB, qemu_img, write_pattern
from daemon_harness import Daemon
from vsphere_sim import PASSWORD, USERNAME, Simulator

PYTHON_PATH = BUILD / "bindings" / "python"
VM = "/DC0/vm/DC0_H0_VM0"
VM_BACKING = "[LocalDS_0] DC0_H0_VM0/disk1.vmdk"
TERMINAL = ("completed", "failed", "cancelled")
LOG_LINE = re.compile(r"^\S+ [A-Z]+ \S.*$")  # <timestamp> <LEVEL> <message>

ADMIN_KEY = "admin-key-0123456789abcdef"
READ_KEY = "read-key-0123456789abcdef"
OPERATOR = ("alice", "alice-password-42")


@pytest.fixture(scope="module")
def sdk():
    """The in-tree hypersdk package, with its client."""
    client_py = PYTHON_PATH / "hypersdk" / "client.py"
    assert client_py.exists(), (f"{client_py} is missing: build the Python module (bindings/python/CMakeLists.txt "
                                "copies hypersdk/client.py, client_models.py and client_errors.py into the build)")
    if str(PYTHON_PATH) not in sys.path:
        sys.path.insert(0, str(PYTHON_PATH))
    import hypersdk
    assert pathlib.Path(hypersdk.__file__).parent == PYTHON_PATH / "hypersdk", hypersdk.__file__
    return hypersdk


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    d = tmp_path_factory.mktemp("client-sim")
    raw = write_pattern(d / "disk.raw", 4 * MiB, seed=2718)
    vmdk = d / "disk.vmdk"
    qemu_img("convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", raw, vmdk)
    s = Simulator(d / "sim")
    s.upload(VM_BACKING, vmdk.read_bytes())
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def reset_faults(request):
    if "sim" in request.fixturenames:
        request.getfixturevalue("sim").control(faults={}, reset_log=True, power_on=["DC0_H0_VM0"])
    yield


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    d = Daemon(tmp_path_factory.mktemp("client-daemon"), args=["--no-auth"])
    yield d
    d.stop()


@pytest.fixture(scope="module")
def auth_daemon(tmp_path_factory):
    config = {"auth": {
        "api_keys": [{"name": "ci", "key": ADMIN_KEY, "role": "admin"}, {"name": "viewer", "key": READ_KEY, "role": "read"}],
        "users": [{"username": OPERATOR[0], "password": OPERATOR[1], "role": "operate"}],
    }}
    d = Daemon(tmp_path_factory.mktemp("client-auth-daemon"), config=config)
    yield d
    d.stop()


@pytest.fixture(scope="module")
def provider_daemon(tmp_path_factory, sim):
    """A daemon with the simulator as its configured vCenter (providers.vsphere), which the old
    SDK's calls that name no vCenter (enable_cbt(vm_path), list_vms()) use."""
    config = {"providers": {"vsphere": {"url": sim.url, "username": USERNAME, "password": PASSWORD, "insecure": True}}}
    d = Daemon(tmp_path_factory.mktemp("client-provider-daemon"), config=config, args=["--no-auth"])
    yield d
    d.stop()


@pytest.fixture
def client(sdk, daemon):
    with sdk.HyperSDK(daemon.url) as c:
        yield c


def vcenter(sdk, sim):
    return sdk.VCenterConfig(server=sim.url, username=USERNAME, password=PASSWORD, insecure=True)


def wait_job(client, job_id, states=TERMINAL, timeout=120):
    deadline = time.monotonic() + timeout
    while True:
        job = client.get_job(job_id)
        if job.status.value in states:
            return job
        assert time.monotonic() < deadline, f"job {job_id} stayed {job.status.value}: {job}"
        time.sleep(0.05)


# ---- daemon, no authentication ----------------------------------------------------------------

def test_health_status_capabilities(sdk, client):
    health = client.health()
    assert health["status"] == "healthy" and health["version"]
    status = client.status()
    assert isinstance(status, sdk.DaemonStatus)
    assert status.version and status.uptime and status.timestamp.tzinfo is not None
    for n in (status.total_jobs, status.running_jobs, status.completed_jobs, status.failed_jobs, status.cancelled_jobs):
        assert isinstance(n, int) and n >= 0
    caps = client.capabilities()
    assert "vsphere" in caps["providers"]
    assert {"ova", "ovf", "qcow2"} <= set(caps["formats"])


def test_an_old_sdk_export_runs_to_completion(sdk, client, sim, tmp_path):
    """What the old SDK's examples do: submit a JobDefinition with a VCenterConfig and the default
    format, watch it, read its progress, logs and ETA, find it by query."""
    out = tmp_path / "exports"
    job_def = sdk.JobDefinition(name="Export VM0", vm_path=VM, output_dir=str(out), vcenter=vcenter(sdk, sim))
    job_id = client.submit_job(job_def)
    assert isinstance(job_id, str) and job_id

    job = wait_job(client, job_id)
    assert job.status is sdk.JobStatus.COMPLETED, job.error
    assert job.definition.id == job_id and job.definition.vm_path == VM and job.definition.name == "Export VM0"
    assert job.definition.vcenter is None or job.definition.vcenter.password in ("", "********")  # no secrets
    assert job.completed_at is not None and job.started_at is not None and job.completed_at >= job.started_at
    result = job.result
    assert result is not None and result.success is True and result.vm_name == "DC0_H0_VM0"
    assert result.files and result.total_size > 0
    written = {p.name for p in out.rglob("*") if p.is_file()}
    assert {pathlib.Path(f).name for f in result.files} <= written, (result.files, written)

    progress = client.get_job_progress(job_id)
    assert isinstance(progress, sdk.JobProgress)
    assert progress.percent_complete == pytest.approx(100) and progress.total_bytes > 0
    assert job.progress is not None and job.progress.percent_complete == pytest.approx(100)

    logs = client.get_job_logs(job_id)
    lines = logs.splitlines()
    assert lines and all(LOG_LINE.match(line) for line in lines), logs
    assert isinstance(client.get_job_eta(job_id), str)

    assert [j.id for j in client.query_jobs(job_ids=[job_id])] == [job_id]
    assert job_id in [j.id for j in client.query_jobs(status=[sdk.JobStatus.COMPLETED], all=True)]
    assert job_id not in [j.id for j in client.query_jobs(status=[sdk.JobStatus.FAILED], all=True)]
    listed = client.list_jobs(all=True)
    assert job_id in [j.definition.id for j in listed]
    assert all(isinstance(j, sdk.client.Job) for j in listed)


def test_submit_many_and_a_failing_job(sdk, client, sim, tmp_path):
    vc = vcenter(sdk, sim)
    ids = client.submit_jobs([
        sdk.JobDefinition(vm_path="/DC0/vm/no-such-vm", output_dir=str(tmp_path / "a"), vcenter=vc),
        {"vm_path": "/DC0/vm/also-missing", "output_dir": str(tmp_path / "b"), "vcenter": vc.to_dict(), "format": "ova"},
    ])
    assert len(ids) == 2 and len(set(ids)) == 2
    for job_id in ids:
        job = wait_job(client, job_id)
        assert job.status is sdk.JobStatus.FAILED and job.error, job
    assert client.status().failed_jobs >= 2


def test_cancel_a_running_export(sdk, client, sim, tmp_path):
    sim.control(faults={"nfc_stall_after": 200_000})  # the download stalls until the client leaves
    job_id = client.submit_job(sdk.JobDefinition(vm_path=VM, output_dir=str(tmp_path / "out"), vcenter=vcenter(sdk, sim),
                                                 format=sdk.ExportFormat.OVA))
    deadline = time.monotonic() + 60
    while not (sim.state()["nfc_requests"] and client.get_job(job_id).status is sdk.JobStatus.RUNNING):
        assert time.monotonic() < deadline, client.get_job(job_id)
        time.sleep(0.02)
    running = client.get_job_progress(job_id)
    assert running.status == "running" and running.percent_complete < 100
    assert client.get_job_eta(job_id)
    assert client.cancel_job(job_id) is True
    job = wait_job(client, job_id, timeout=60)
    assert job.status is sdk.JobStatus.CANCELLED
    answer = client.cancel_jobs(["no-such-job"])
    assert answer["cancelled"] == [] and answer["failed"] == ["no-such-job"] and answer["errors"]["no-such-job"]


def test_unknown_ids_are_job_not_found(sdk, client):
    for call in (client.get_job, client.get_job_progress, client.get_job_eta, client.get_schedule, client.delete_webhook):
        with pytest.raises(sdk.JobNotFoundError):
            call("no-such-id")
    with pytest.raises(sdk.APIError, match="Failed to get logs"):
        client.get_job_logs("no-such-id")


def test_vms_list_and_info(sdk, client, sim):
    vc = vcenter(sdk, sim)
    vms = client.list_vms(vc.to_dict())  # the old SDK's call: the vCenter configuration as the argument
    by_path = {vm["path"]: vm for vm in vms}
    assert VM in by_path, vms
    vm = by_path[VM]
    assert vm["name"] == "DC0_H0_VM0" and vm["power_state"] == "poweredOn" and vm["num_cpu"] >= 1 and vm["memory_mb"] > 0
    info = client.get_vm_info(vc.to_dict(), VM)
    assert info["name"] == "DC0_H0_VM0" and len(info["disks"]) == 1 and info["nics"]


def test_schedules(sdk, client, sim, tmp_path):
    template = sdk.JobDefinition(vm_path=VM, output_dir=str(tmp_path / "sched"), vcenter=vcenter(sdk, sim))
    created = client.create_schedule(sdk.ScheduledJob(name="nightly", schedule="0 2 * * *", job_template=template,
                                                      description="every night", tags=["prod"]))
    assert isinstance(created, sdk.ScheduledJob) and created.id
    assert (created.name, created.schedule, created.enabled, created.tags) == ("nightly", "0 2 * * *", True, ["prod"])
    assert created.job_template.vm_path == VM and created.next_run is not None
    assert created.id in [s.id for s in client.list_schedules()]
    assert client.get_schedule(created.id).description == "every night"

    triggered = client.trigger_schedule(created.id)
    assert triggered["schedule_id"] == created.id
    job = wait_job(client, triggered["job_id"])
    assert job.status is sdk.JobStatus.COMPLETED, job.error
    assert job.schedule_id == created.id

    client.disable_schedule(created.id)
    assert client.get_schedule(created.id).enabled is False
    client.enable_schedule(created.id)
    assert client.get_schedule(created.id).enabled is True

    # The old SDK's way to change a schedule: read it, change a field, PUT it back whole. The
    # template comes back with its password masked; the schedule must keep working.
    fetched = client.get_schedule(created.id)
    fetched.description = "changed"
    updated = client.update_schedule(created.id, fetched)
    assert updated.description == "changed" and client.get_schedule(created.id).description == "changed"
    after_update = wait_job(client, client.trigger_schedule(created.id)["job_id"])

    client.delete_schedule(created.id)
    with pytest.raises(sdk.JobNotFoundError):
        client.get_schedule(created.id)
    assert created.id not in [s.id for s in client.list_schedules()]
    assert after_update.status is sdk.JobStatus.COMPLETED, (
        f"PUT /schedules/{{id}} with the template as GET showed it (password \"********\") broke the schedule: {after_update.error}")


class HookRecorder:
    """Loopback receiver recording the webhook deliveries the daemon makes (a recorder, not a simulator)."""

    def __init__(self):
        self.posts = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                recorder.posts.append((self.path, dict(self.headers), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_webhooks(sdk, client, sim, tmp_path):
    receiver = HookRecorder()
    try:
        added = client.add_webhook(sdk.Webhook(url=receiver.url, events=["job_completed", "job_failed"],
                                               headers={"X-Token": "hook-secret"}))
        assert added.id and added.url == receiver.url
        listed = {w.id: w for w in client.list_webhooks()}
        assert listed[added.id].url == receiver.url and listed[added.id].headers == {"X-Token": "********"}

        answer = client.test_webhook(receiver.url)
        assert answer["success"] is True and answer["status_code"] == 200
        assert receiver.posts, "the test delivery did not arrive"

        # A job's end is delivered with the configured header.
        before = len(receiver.posts)
        job_id = client.submit_job(sdk.JobDefinition(vm_path="/DC0/vm/no-such-vm", output_dir=str(tmp_path / "x"),
                                                     vcenter=vcenter(sdk, sim)))
        wait_job(client, job_id)
        deadline = time.monotonic() + 30
        while not any(job_id in body.decode(errors="replace") for _, _, body in receiver.posts[before:]):
            assert time.monotonic() < deadline, receiver.posts[before:]
            time.sleep(0.05)
        _, headers, _ = next(p for p in receiver.posts[before:] if job_id in p[2].decode(errors="replace"))
        assert {k.lower(): v for k, v in headers.items()}.get("x-token") == "hook-secret"

        client.delete_webhook(added.id)
        assert added.id not in [w.id for w in client.list_webhooks()]
    finally:
        receiver.close()
    with pytest.raises(sdk.APIError):
        client.test_webhook(receiver.url)  # nothing listens there any more
    # The old SDK's event names come back as they were given.
    assert added.events == ["job_completed", "job_failed"] and listed[added.id].events == ["job_completed", "job_failed"]


def test_cbt_and_vms_of_the_configured_vcenter(sdk, provider_daemon):
    """The old SDK's enable_cbt(vm_path) and list_vms() name no vCenter: the daemon's own serves."""
    c = sdk.HyperSDK(provider_daemon.url)
    assert VM in [vm["path"] for vm in c.list_vms()]
    assert c.enable_cbt(VM)["success"] is True
    status = c.get_cbt_status(VM)
    assert status["vm_path"] == VM and status["enabled"] is True and status["disks"]
    analysis = c.analyze_incremental_export(VM)
    assert analysis["cbt_enabled"] is True and analysis["can_incremental"] is False  # no earlier backup
    assert c.disable_cbt(VM)["success"] is True
    assert c.get_cbt_status(VM)["enabled"] is False
    with pytest.raises(sdk.HyperSDKError):
        c.get_cbt_status("/DC0/vm/no-such-vm")


@pytest.mark.parametrize("call,route", [
    (lambda c: c.project_yearly_cost("s3", "s3_standard", 100.0), "POST /cost/project"),
    (lambda c: c.list_domains(), "GET /libvirt/domains"),
    (lambda c: c.create_snapshot("web", "before"), "POST /libvirt/snapshot/create"),
    (lambda c: c.shutdown_vm({"server": "vc"}, VM), "POST /vms/shutdown"),
    (lambda c: c.get_carbon_status(), "POST /carbon/status"),
    (lambda c: c.list_carbon_zones(), "GET /carbon/zones"),
    (lambda c: c.convert_vm("/a.ovf", "/b.qcow2"), "POST /convert/vm"),
    (lambda c: c.get_job_queue_status(), "GET /schedules/queue"),
    (lambda c: c.validate_schedule("n", "0 2 * * *", {"vm_path": VM}), "POST /schedules/validate"),
    (lambda c: c.create_advanced_schedule("n", "0 2 * * *", {"vm_path": VM}), "POST /schedules/advanced/create"),
])
def test_routes_the_daemon_does_not_serve(sdk, client, call, route):
    with pytest.raises(sdk.APIError) as e:
        call(client)
    assert not isinstance(e.value, sdk.JobNotFoundError)
    assert e.value.route == route and f"{route} is not served" in str(e.value)
    assert e.value.status_code in (404, 405, 501)
    assert isinstance(e.value.response, dict) and e.value.response.get("error")


# ---- daemon with authentication ---------------------------------------------------------------

def test_without_or_with_a_wrong_key_is_authentication_error(sdk, auth_daemon):
    for key in (None, "not-a-key"):
        with pytest.raises(sdk.AuthenticationError) as e:
            sdk.HyperSDK(auth_daemon.url, api_key=key).status()
        assert e.value.status_code == 401


def test_api_keys_and_roles(sdk, auth_daemon, tmp_path):
    admin = sdk.HyperSDK(auth_daemon.url, api_key=ADMIN_KEY)
    assert admin.status().version
    job_id = admin.submit_job(sdk.JobDefinition(vm_path="/DC0/vm/x", output_dir=str(tmp_path),
                                                vcenter=sdk.VCenterConfig("https://127.0.0.1:1/sdk", "u", "p", True)))
    viewer = sdk.HyperSDK(auth_daemon.url, api_key=READ_KEY)
    assert viewer.get_job(job_id).id == job_id
    with pytest.raises(sdk.APIError) as e:
        viewer.submit_job({"vm_path": "/DC0/vm/y", "output_dir": str(tmp_path)})
    assert e.value.status_code == 403
    wait_job(admin, job_id)


def test_login_and_logout(sdk, auth_daemon):
    c = sdk.HyperSDK(auth_daemon.url)
    with pytest.raises(sdk.AuthenticationError):
        c.login(OPERATOR[0], "wrong-password")
    token = c.login(*OPERATOR)
    assert isinstance(token, str) and token and c.token == token
    assert c.status().version
    assert isinstance(c.list_jobs(), list)
    c.logout()
    assert c.token is None
    with pytest.raises(sdk.AuthenticationError):
        c.status()
    # The token itself no longer works either.
    stale = sdk.HyperSDK(auth_daemon.url)
    stale._token = token
    with pytest.raises(sdk.AuthenticationError):
        stale.status()


# ---- in-process: HyperSDK() without a daemon ---------------------------------------------------

def test_in_process_service(sdk, sim, tmp_path):
    local = sdk.HyperSDK()
    assert local.in_process
    assert local.health()["status"] == "healthy"
    status = local.status()
    assert isinstance(status, sdk.DaemonStatus) and status.version == local.health()["version"]
    assert "vsphere" in local.capabilities()["providers"]
    job_id = local.submit_job(sdk.JobDefinition(vm_path="/DC0/vm/no-such-vm", output_dir=str(tmp_path / "out"),
                                                vcenter=vcenter(sdk, sim)))
    job = wait_job(local, job_id)
    assert job.status is sdk.JobStatus.FAILED
    assert job.error and "no-such-vm" in job.error, job.error
    assert job_id in [j.id for j in local.query_jobs(status=[sdk.JobStatus.FAILED], all=True)]
    assert local.get_job_logs(job_id).strip()
    with pytest.raises(sdk.APIError) as e:
        local.list_domains()
    assert e.value.route == "GET /libvirt/domains" and e.value.status_code == 404
    # CBT in-process: no vCenter is configured, so the call names one (an addition to the old API).
    assert local.get_cbt_status(VM, vcenter(sdk, sim))["vm_path"] == VM
