"""hypersdk.HyperSDK, the client with the original HyperSDK SDK's API: its models, the requests it
sends and how it maps answers to results and errors. The HTTP tests run against a loopback
RECORDER (an http.server that records each request and replies with the answer a test set for that
route): it checks what the client sends and how it reads answers, and is no simulation of
hypervisord. The client against the real daemon, and in-process, is tested in
tests/integration/test_client_sdk.py."""
import datetime
import http.server
import json
import threading
import urllib.parse

import pytest

import hypersdk
import hypersdk.client as client_module
from hypersdk import (
    APIError,
    AuthenticationError,
    DaemonStatus,
    ExportFormat,
    ExportOptions,
    HyperSDK,
    HyperSDKError,
    JobDefinition,
    JobNotFoundError,
    JobProgress,
    JobStatus,
    ScheduledJob,
    VCenterConfig,
    Webhook,
)
from hypersdk.client import Job as ClientJob
from hypersdk.client_models import ExportMethod, JobResult, parse_time

UTC = datetime.timezone.utc
T0 = "2026-12-07T10:00:00Z"


def daemon_job(job_id="job-1", status="running", **extra):
    """A job as docs/daemon-routes.md describes it, with keys the old SDK never saw."""
    job = {
        "id": job_id, "name": "web", "status": status, "operation": "export",
        "definition": {"id": job_id, "name": "web", "vm_path": "/DC0/vm/web", "output_dir": "/out",
                       "output_path": "/out/web", "format": "ova", "compress": False, "provider": "vsphere",
                       "export_method": "ova", "options": {"shutdown_vm": False, "remove_cdrom": True, "new_option": 7}},
        "progress": {"job_id": job_id, "status": status, "phase": "downloading", "percent_complete": 42.5,
                     "percentage": 42.5, "bytes_downloaded": 100, "bytes_transferred": 100, "total_bytes": 1000,
                     "transfer_rate_mbps": 3.5, "speed_mbps": 3.5, "estimated_remaining": "1m30s",
                     "current_file": "disk1.vmdk", "files_downloaded": 0, "total_files": 2,
                     "progress": {"phase": "downloading"}},
        "created_at": T0, "updated_at": "2026-12-07T10:00:05.123Z", "started_at": "2026-12-07T10:00:01Z",
        "priority": 5, "depends_on": [], "retries": 0, "brand_new_field": {"x": 1},
    }
    job.update(extra)
    return job


STATUS = {"version": "0.2.0", "uptime": "1h2m3s", "uptime_seconds": 3723, "total_jobs": 3, "pending_jobs": 1,
          "running_jobs": 1, "completed_jobs": 1, "failed_jobs": 0, "cancelled_jobs": 0, "timestamp": T0}


class Recorder:
    """Loopback HTTP server recording every request; answers come from `routes`
    ((method, path) -> (status, body, content type)), else 404 {error: "not found: <path>"}."""

    def __init__(self):
        self.requests = []
        self.routes = {}
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                url = urllib.parse.urlsplit(self.path)
                recorder.requests.append({
                    "method": self.command, "path": url.path, "query": urllib.parse.parse_qs(url.query),
                    "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body,
                })
                # Unset routes: what hypervisord's router answers for a path it does not know.
                status, answer, ctype = recorder.routes.get((self.command, url.path), (
                    404, {"error": f"not found: {urllib.parse.unquote(url.path)}", "timestamp": T0}, None))
                if callable(answer):
                    answer = answer(recorder.requests[-1])
                if isinstance(answer, (bytes, str)):
                    data = answer.encode() if isinstance(answer, str) else answer
                    ctype = ctype or "text/plain; charset=utf-8"
                else:
                    data = json.dumps(answer).encode()
                    ctype = ctype or "application/json"
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def route(self, method, path, answer, status=200, content_type=None):
        self.routes[(method, path)] = (status, answer, content_type)

    def last(self):
        return self.requests[-1]

    def last_json(self):
        return json.loads(self.requests[-1]["body"])

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder():
    r = Recorder()
    yield r
    r.close()


@pytest.fixture
def client(recorder):
    return HyperSDK(recorder.url)


# ---- exports ------------------------------------------------------------------------------------

def test_exports_keep_the_library_job_and_errors():
    assert hypersdk.Job is hypersdk._api.Job  # the library's job, not shadowed
    assert ClientJob is hypersdk.client_models.Job and ClientJob is not hypersdk.Job
    assert issubclass(hypersdk.NotFoundError, hypersdk.Error)
    for name in ("HyperSDK", "JobDefinition", "VCenterConfig", "ExportOptions", "JobStatus", "ExportFormat",
                 "ScheduledJob", "Webhook", "DaemonStatus", "JobProgress", "JobResult", "HyperSDKError",
                 "AuthenticationError", "JobNotFoundError", "APIError"):
        assert getattr(hypersdk, name) is getattr(client_module, name), name
    for cls in (AuthenticationError, JobNotFoundError, APIError):
        assert issubclass(cls, HyperSDKError) and not issubclass(cls, hypersdk.Error)
    assert hypersdk.AsyncHyperSDK is HyperSDK


# ---- models ---------------------------------------------------------------------------------------

def test_job_from_a_daemon_answer_tolerates_keys_the_old_sdk_never_saw():
    job = ClientJob.from_dict(daemon_job())
    assert job.status is JobStatus.RUNNING and job.status == "running"
    assert job.id == "job-1" and job.definition.id == "job-1" and job.definition.vm_path == "/DC0/vm/web"
    assert job.definition.format is ExportFormat.OVA
    assert job.definition.export_method == "ova"  # not one of the old SDK's methods: kept as given
    assert job.definition.options.remove_cdrom is True and job.definition.options.shutdown_vm is False
    assert job.definition.options.extra == {"new_option": 7}
    assert job.updated_at == datetime.datetime(2026, 12, 7, 10, 0, 5, 123000, tzinfo=UTC)
    assert job.started_at == datetime.datetime(2026, 12, 7, 10, 0, 1, tzinfo=UTC) and job.completed_at is None
    assert job.progress.percent_complete == 42.5 and job.progress.phase == "downloading"
    assert job.progress.estimated_remaining == "1m30s" and job.progress.speed_mbps == 3.5
    assert job.result is None and job.error is None
    assert job.extra == {"brand_new_field": {"x": 1}}
    # A definition read back from the daemon is sent back with what it carried.
    sent = job.definition.to_dict()
    assert sent["options"]["new_option"] == 7 and sent["provider"] == "vsphere" and sent["format"] == "ova"


def test_definition_id_falls_back_to_the_job_id():
    data = daemon_job()
    del data["definition"]["id"]
    assert ClientJob.from_dict(data).definition.id == "job-1"


def test_results_of_exports_and_of_other_operations():
    done = daemon_job(status="completed", completed_at=T0, result={
        "vm_name": "web", "output_dir": "/out", "ovf_path": "/out/web.ovf", "files": ["/out/web.ovf", "/out/web-1.vmdk"],
        "total_size": 2048, "duration": 1500000000, "success": True, "export_method": "ova", "manifest": "/out/web.mf"})
    result = ClientJob.from_dict(done).result
    assert isinstance(result, JobResult)
    assert result.vm_name == "web" and result.total_size == 2048 and result.success is True
    assert result.files == ["/out/web.ovf", "/out/web-1.vmdk"] and result.extra == {"manifest": "/out/web.mf"}
    op = ClientJob.from_dict({"id": "op-1", "status": "failed", "operation": "image.check", "definition": {},
                              "result": {"clean": False}, "error": "corrupt image", "updated_at": T0})
    assert op.definition.vm_path == "" and op.result.extra == {"clean": False} and op.error == "corrupt image"
    assert op.status is JobStatus.FAILED


def test_a_job_without_updated_at_is_an_error_not_a_silent_default():
    data = daemon_job()
    del data["updated_at"]
    with pytest.raises(ValueError, match="updated_at"):
        ClientJob.from_dict(data)


def test_job_definition_body_is_the_old_sdks():
    d = JobDefinition(vm_path="/DC/vm/a", name="a", output_dir="/x",
                      vcenter=VCenterConfig("vc", "admin", "pw", insecure=True), format=ExportFormat.OVA,
                      options=ExportOptions(parallel_downloads=2))
    assert d.to_dict() == {
        "vm_path": "/DC/vm/a", "name": "a", "output_dir": "/x",
        "vcenter": {"server": "vc", "username": "admin", "password": "pw", "insecure": True},
        "format": "ova", "compress": False, "thin": False, "insecure": False,
        "options": {"parallel_downloads": 2, "remove_cdrom": False, "show_individual_progress": False,
                    "enable_pipeline": False, "pipeline_inspect": False, "pipeline_fix": False,
                    "pipeline_convert": False, "pipeline_validate": False, "pipeline_compress": False,
                    "compress_level": 6, "libvirt_integration": False, "libvirt_autostart": False},
    }
    # The old README passes the format as a string; the default method (AUTO, "") is not sent.
    assert JobDefinition(vm_path="/v", format="QCOW2").to_dict()["format"] == "qcow2"
    assert "export_method" not in JobDefinition(vm_path="/v").to_dict()
    # hypervisord's additions only when set.
    extra = JobDefinition("/v", priority=3, depends_on=["j0"], time_window="22:00-06:00", provider="vsphere").to_dict()
    assert (extra["priority"], extra["depends_on"], extra["time_window"], extra["provider"]) == (3, ["j0"], "22:00-06:00", "vsphere")


def test_a_vcenter_read_back_without_its_password_is_sent_without_one():
    job = ClientJob.from_dict(daemon_job(definition={"vm_path": "/v", "vcenter": {"server": "vc", "username": "u", "insecure": True}}))
    assert job.definition.vcenter == VCenterConfig("vc", "u", "", True)
    assert job.definition.to_dict()["vcenter"] == {"server": "vc", "username": "u", "insecure": True}


def test_enums_take_values_they_do_not_list():
    assert ExportFormat("vhdx") is ExportFormat.VHDX and ExportFormat("OVF") is ExportFormat.OVF
    odd = ExportFormat("qed")
    assert odd == "qed" and odd.value == "qed" and isinstance(odd, ExportFormat)
    assert ExportMethod("") is ExportMethod.AUTO and JobStatus("queued") == "queued"


@pytest.mark.parametrize("text,expected", [
    ("2026-12-07T10:00:00Z", datetime.datetime(2026, 12, 7, 10, tzinfo=UTC)),
    ("2026-12-07T10:00:00.5Z", datetime.datetime(2026, 12, 7, 10, 0, 0, 500000, tzinfo=UTC)),
    ("2026-12-07T10:00:00.123456789Z", datetime.datetime(2026, 12, 7, 10, 0, 0, 123456, tzinfo=UTC)),
    ("2026-12-07T12:00:00+02:00", datetime.datetime(2026, 12, 7, 10, tzinfo=UTC)),
    ("2026-12-07 10:00:00", datetime.datetime(2026, 12, 7, 10)),
    (None, None), ("", None),
])
def test_times(text, expected):
    assert parse_time(text) == expected


def test_webhook_status_progress_and_schedule_from_daemon_answers():
    hook = Webhook.from_dict({"id": "wh-1", "url": "http://127.0.0.1:1/h", "events": ["job_failed"],
                              "headers": {"X-Token": "********"}, "enabled": True})
    assert (hook.id, hook.url, hook.events, hook.enabled) == ("wh-1", "http://127.0.0.1:1/h", ["job_failed"], True)
    assert hook.to_dict() == {"url": "http://127.0.0.1:1/h", "events": ["job_failed"], "headers": {"X-Token": "********"}}
    st = DaemonStatus.from_dict(STATUS)
    assert (st.version, st.uptime, st.total_jobs, st.pending_jobs) == ("0.2.0", "1h2m3s", 3, 1)
    assert st.timestamp == datetime.datetime(2026, 12, 7, 10, tzinfo=UTC)
    p = JobProgress.from_dict({"job_id": "j", "status": "pending", "phase": "queued", "percent_complete": 0,
                               "estimated_remaining": None, "progress": {}})
    assert p.phase == "queued" and p.estimated_remaining is None and p.job_id == "j"
    s = ScheduledJob.from_dict({"id": "s-1", "name": "nightly", "schedule": "0 2 * * *", "enabled": False,
                                "job_template": {"vm_path": "/DC0/vm/web", "output_dir": "/b", "format": "ova"},
                                "next_run": "2026-12-08T02:00:00Z", "run_count": 4, "tags": ["t"], "owner": "x"})
    assert s.job_template.output_dir == "/b" and s.job_template.format is ExportFormat.OVA
    assert s.next_run == datetime.datetime(2026, 12, 8, 2, tzinfo=UTC) and s.run_count == 4 and not s.enabled
    assert s.extra == {"owner": "x"}
    # /schedules/create's shape: {name, cron, job_definition}
    s2 = ScheduledJob.from_dict({"name": "n", "cron": "*/5 * * * *", "job_definition": {"vm_path": "/v"}})
    assert s2.schedule == "*/5 * * * *" and s2.job_template.vm_path == "/v" and s2.extra == {}


# ---- requests and answers (recorder) --------------------------------------------------------------

def test_api_key_and_bearer_token_headers(recorder):
    recorder.route("GET", "/health", {"status": "healthy", "version": "0.2.0", "uptime": "1s", "timestamp": T0})
    recorder.route("POST", "/api/login", {"token": "tok-123", "expires_at": T0, "role": "admin"})
    recorder.route("POST", "/api/logout", {"status": "logged out"})
    c = HyperSDK(recorder.url + "/", api_key="key-1")
    assert c.health()["status"] == "healthy"
    assert recorder.last()["headers"]["x-api-key"] == "key-1" and "authorization" not in recorder.last()["headers"]
    assert c.login("admin", "pw") == "tok-123"
    assert recorder.last_json() == {"username": "admin", "password": "pw"}
    c.health()
    assert recorder.last()["headers"]["authorization"] == "Bearer tok-123"
    c.logout()
    assert recorder.last()["path"] == "/api/logout" and recorder.last()["body"] == b""
    c.health()
    assert "authorization" not in recorder.last()["headers"]
    # The old SDK's session headers: sent with every request.
    c.session.headers["X-Trace"] = "t-1"
    c.health()
    assert recorder.last()["headers"]["x-trace"] == "t-1" and recorder.last()["headers"]["x-api-key"] == "key-1"


def test_status_and_capabilities(client, recorder):
    recorder.route("GET", "/status", STATUS)
    recorder.route("GET", "/capabilities", {"providers": ["vsphere"], "formats": ["ova"], "export_methods": [],
                                            "operations": [], "features": {}})
    assert isinstance(client.status(), DaemonStatus) and client.status().running_jobs == 1
    assert client.capabilities()["providers"] == ["vsphere"]


def test_submit_one_many_and_refused(client, recorder):
    recorder.route("POST", "/jobs/submit", lambda req: {
        "job_ids": ["j1"] if isinstance(json.loads(req["body"]), dict) else ["j1", "j2"],
        "accepted": 1 if isinstance(json.loads(req["body"]), dict) else 2, "rejected": 0, "errors": [], "timestamp": T0})
    assert client.submit_job(JobDefinition(vm_path="/DC0/vm/a", output_dir="/o")) == "j1"
    assert recorder.last()["headers"]["content-type"] == "application/json"
    assert recorder.last_json()["vm_path"] == "/DC0/vm/a"
    assert client.submit_job({"vm_path": "/DC0/vm/b", "format": "qcow2"}) == "j1"
    assert recorder.last_json() == {"vm_path": "/DC0/vm/b", "format": "qcow2"}
    assert client.submit_jobs([JobDefinition(vm_path="/a"), {"vm_path": "/b"}]) == ["j1", "j2"]
    assert [d["vm_path"] for d in recorder.last_json()] == ["/a", "/b"]
    recorder.route("POST", "/jobs/submit", {"job_ids": [], "accepted": 0, "rejected": 1,
                                            "errors": ["vm_path is required"], "timestamp": T0})
    with pytest.raises(APIError, match="Job submission failed: vm_path is required"):
        client.submit_job({"name": "x"})
    recorder.route("POST", "/jobs/submit", {"error": "invalid format 'qed'", "timestamp": T0}, status=400)
    with pytest.raises(APIError, match="invalid format 'qed'") as e:
        client.submit_job({"vm_path": "/v", "format": "qed"})
    assert e.value.status_code == 400 and e.value.response["error"] == "invalid format 'qed'"


def test_jobs_query_progress_logs_eta_and_cancel(client, recorder):
    recorder.route("GET", "/jobs/job-1", daemon_job())
    recorder.route("POST", "/jobs/query", {"jobs": [daemon_job(), daemon_job("job-0", "completed")], "total": 2, "timestamp": T0})
    recorder.route("GET", "/jobs/query", {"jobs": [daemon_job()], "total": 1, "timestamp": T0})
    recorder.route("GET", "/jobs/progress/job-1", daemon_job()["progress"])
    recorder.route("GET", "/jobs/logs/job-1", f"{T0} INFO started\n{T0} INFO downloading disk1.vmdk\n")
    recorder.route("GET", "/jobs/eta/job-1", {"job_id": "job-1", "status": "running", "estimated_remaining": "1m30s",
                                             "eta_seconds": 90, "percent_complete": 42.5})
    job = client.get_job("job-1")
    assert isinstance(job, ClientJob) and job.status == JobStatus.RUNNING
    jobs = client.query_jobs(job_ids=["job-1", "job-0"], status=[JobStatus.RUNNING, "completed"], all=True, limit=10)
    assert recorder.last_json() == {"job_ids": ["job-1", "job-0"], "status": ["running", "completed"], "all": True, "limit": 10}
    assert [j.id for j in jobs] == ["job-1", "job-0"] and jobs[1].status is JobStatus.COMPLETED
    assert [j.id for j in client.list_jobs()] == ["job-1"]
    assert recorder.last()["query"] == {"all": ["true"]}
    client.list_jobs(all=False)
    assert recorder.last()["query"] == {}
    progress = client.get_job_progress("job-1")
    assert isinstance(progress, JobProgress) and progress.total_bytes == 1000
    logs = client.get_job_logs("job-1")
    assert logs.splitlines()[1].endswith("INFO downloading disk1.vmdk")
    assert client.get_job_eta("job-1") == "1m30s"
    recorder.route("POST", "/jobs/cancel", lambda req: {
        "cancelled": ["job-1"] if json.loads(req["body"])["job_ids"] == ["job-1"] else [],
        "failed": ["job-0"] if "job-0" in json.loads(req["body"])["job_ids"] else [],
        "errors": {"job-0": "job already completed"}, "timestamp": T0})
    assert client.cancel_job("job-1") is True
    assert recorder.last_json() == {"job_ids": ["job-1"]}
    with pytest.raises(APIError, match="Failed to cancel job: job already completed"):
        client.cancel_job("job-0")
    assert client.cancel_job("job-9") is False
    assert client.cancel_jobs(["job-0", "job-1"])["failed"] == ["job-0"]


def test_ids_are_escaped_in_paths(client, recorder):
    recorder.route("GET", "/jobs/..%2Fstatus", {"error": "job not found: ../status", "timestamp": T0}, status=404)
    with pytest.raises(JobNotFoundError):
        client.get_job("../status")
    assert recorder.last()["path"] == "/jobs/..%2Fstatus"


def test_error_mapping(client, recorder):
    recorder.route("GET", "/jobs/nope", {"error": "job not found: nope", "timestamp": T0}, status=404)
    with pytest.raises(JobNotFoundError, match="job not found: nope") as e:
        client.get_job("nope")
    assert e.value.status_code == 404
    recorder.route("GET", "/schedules/nope", {"error": "schedule not found: nope", "timestamp": T0}, status=404)
    with pytest.raises(JobNotFoundError):
        client.get_schedule("nope")
    # Any 404 of a served route is JobNotFoundError, as in the old SDK: a query of one unknown id,
    # a VM that does not exist.
    recorder.route("POST", "/jobs/query", {"error": "job not found: x", "timestamp": T0}, status=404)
    with pytest.raises(JobNotFoundError, match="job not found: x"):
        client.query_jobs(job_ids=["x"])
    recorder.route("POST", "/vms/info", {"error": "not found: VM /DC0/vm/x", "timestamp": T0}, status=404)
    with pytest.raises(JobNotFoundError, match="VM /DC0/vm/x"):
        client.get_vm_info(None, "/DC0/vm/x")
    # A served route the router does not know (an older daemon): APIError naming it.
    with pytest.raises(APIError, match="GET /jobs/eta/j1 is not served") as e:
        client.get_job_eta("j1")
    assert e.value.route == "GET /jobs/eta/j1" and not isinstance(e.value, JobNotFoundError)
    recorder.route("DELETE", "/webhooks/w1", {"error": "method DELETE not allowed on /webhooks/w1", "timestamp": T0}, status=405)
    with pytest.raises(APIError, match="DELETE /webhooks/w1 is not served") as e:
        client.delete_webhook("w1")
    assert e.value.status_code == 405
    recorder.route("GET", "/status", {"error": "missing credentials", "timestamp": T0}, status=401)
    with pytest.raises(AuthenticationError, match="missing credentials"):
        client.status()
    recorder.route("POST", "/jobs/cancel", {"error": "role read may not cancel jobs", "timestamp": T0}, status=403)
    with pytest.raises(APIError, match="role read may not cancel jobs") as e:
        client.cancel_job("j")
    assert e.value.status_code == 403 and e.value.route == "POST /jobs/cancel"
    recorder.route("GET", "/capabilities", "upstream exploded", status=500)
    with pytest.raises(APIError, match="upstream exploded") as e:
        client.capabilities()
    assert e.value.status_code == 500
    # Logs fail as APIError, as in the old SDK.
    with pytest.raises(APIError, match="Failed to get logs"):
        client.get_job_logs("nope")


@pytest.mark.parametrize("call,route", [
    (lambda c: c.enable_cbt("/DC0/vm/web"), "POST /cbt/enable"),
    (lambda c: c.disable_cbt("/DC0/vm/web"), "POST /cbt/disable"),
    (lambda c: c.get_cbt_status("/DC0/vm/web"), "POST /cbt/status"),
    (lambda c: c.analyze_incremental_export("/DC0/vm/web"), "POST /incremental/analyze"),
    (lambda c: c.project_yearly_cost("s3", "s3_standard", 100), "POST /cost/project"),
    (lambda c: c.estimate_export_size(100), "POST /cost/estimate-size"),
    (lambda c: c.shutdown_vm({"server": "vc"}, "/DC0/vm/web"), "POST /vms/shutdown"),
    (lambda c: c.list_domains(), "GET /libvirt/domains"),
    (lambda c: c.get_domain("d"), "GET /libvirt/domain"),
    (lambda c: c.start_domain("d"), "POST /libvirt/domain/start"),
    (lambda c: c.shutdown_domain("d"), "POST /libvirt/domain/shutdown"),
    (lambda c: c.list_snapshots("d"), "GET /libvirt/snapshots"),
    (lambda c: c.create_snapshot("d", "s", "why"), "POST /libvirt/snapshot/create"),
    (lambda c: c.convert_vm("/a.ovf", "/b.qcow2"), "POST /convert/vm"),
    (lambda c: c.get_conversion_status("c1"), "GET /convert/status"),
    (lambda c: c.create_advanced_schedule("n", "0 2 * * *", {"vm_path": "/v"}), "POST /schedules/advanced/create"),
    (lambda c: c.get_dependency_status("j"), "GET /schedules/dependencies"),
    (lambda c: c.get_retry_status("j"), "GET /schedules/retry"),
    (lambda c: c.get_timewindow_status("j"), "GET /schedules/timewindow"),
    (lambda c: c.get_job_queue_status(), "GET /schedules/queue"),
    (lambda c: c.validate_schedule("n", "0 2 * * *", {"vm_path": "/v"}), "POST /schedules/validate"),
    (lambda c: c.get_carbon_status(), "POST /carbon/status"),
    (lambda c: c.list_carbon_zones(), "GET /carbon/zones"),
    (lambda c: c.estimate_carbon_savings("DE", 10), "POST /carbon/estimate"),
    (lambda c: c.get_carbon_report("j", datetime.datetime(2026, 1, 1), datetime.datetime(2026, 1, 2), 10), "POST /carbon/report"),
])
def test_routes_the_daemon_does_not_serve_raise_api_error_naming_the_route(client, recorder, call, route):
    with pytest.raises(APIError) as e:
        call(client)
    assert not isinstance(e.value, JobNotFoundError)
    assert e.value.status_code == 404 and e.value.route == route
    method, path = route.split(" ")
    assert route in str(e.value) and f"not found: {path}" in str(e.value)
    assert (recorder.last()["method"], recorder.last()["path"]) == (method, path)


def test_cbt_sends_the_old_body_and_optionally_a_vcenter(client, recorder):
    recorder.route("POST", "/cbt/enable", {"provider": "vsphere", "vm": "/DC0/vm/web", "enabled": True, "disks": [],
                                           "vm_path": "/DC0/vm/web", "success": True, "timestamp": T0})
    recorder.route("POST", "/cbt/status", {"error": "unsupported: the provider has no CBT", "timestamp": T0}, status=501)
    assert client.enable_cbt("/DC0/vm/web")["enabled"] is True
    assert recorder.last_json() == {"vm_path": "/DC0/vm/web"}
    client.enable_cbt("/DC0/vm/web", VCenterConfig("https://vc/sdk", "u", "p"))
    assert recorder.last_json() == {"vm_path": "/DC0/vm/web", "vcenter": {"server": "https://vc/sdk", "username": "u",
                                                                          "password": "p", "insecure": False}}
    with pytest.raises(APIError, match="unsupported: the provider has no CBT") as e:
        client.get_cbt_status("/DC0/vm/web")
    assert e.value.status_code == 501 and "is not served" not in str(e.value)


def test_a_405_of_an_unserved_route_names_it_too(client, recorder):
    recorder.route("POST", "/schedules/validate", {"error": "method not allowed", "timestamp": T0}, status=405)
    with pytest.raises(APIError, match="POST /schedules/validate is not served") as e:
        client.validate_schedule("n", "0 2 * * *", {"vm_path": "/v"})
    assert e.value.status_code == 405
    # A route the service knows but does not implement answers 501.
    recorder.route("POST", "/cost/project", {"error": "unsupported: /cost/project"}, status=501)
    with pytest.raises(APIError, match="POST /cost/project is not served .*501: unsupported") as e:
        client.project_yearly_cost("s3", "s3_standard", 1.0)
    # GET /schedules/queue matches the daemon's GET /schedules/{id}: its 404 is about a schedule
    # "queue", but the route is the old SDK's queue status, which is not served.
    recorder.route("GET", "/schedules/queue", {"error": "schedule not found: queue"}, status=404)
    with pytest.raises(APIError, match="GET /schedules/queue is not served") as e:
        client.get_job_queue_status()
    assert not isinstance(e.value, JobNotFoundError)


def test_carbon_aware_submit_sends_the_old_metadata(client, recorder):
    recorder.route("POST", "/jobs/submit", {"job_ids": ["j1"], "accepted": 1, "rejected": 0, "errors": [], "timestamp": T0})
    assert client.submit_carbon_aware_job(JobDefinition(vm_path="/v"), max_delay_hours=1) == "j1"
    assert recorder.last_json()["metadata"] == {"carbon_aware": True, "carbon_zone": "US-CAL-CISO",
                                                "carbon_max_intensity": 200.0, "carbon_max_delay": 3_600_000_000_000}


def test_vms_list_and_info(client, recorder):
    vm = {"name": "web", "path": "/DC0/vm/web", "power_state": "poweredOn", "num_cpu": 2, "memory_mb": 4096, "guest_os": "linux"}
    recorder.route("POST", "/vms/list", {"vms": [vm], "total": 1, "timestamp": T0})
    recorder.route("POST", "/vms/info", dict(vm, disks=[], nics=[], firmware="bios"))
    vc = VCenterConfig("https://127.0.0.1:1/sdk", "u", "p", insecure=True)
    # The old SDK's call: the vCenter configuration itself; it travels as {vcenter: ...}.
    assert client.list_vms(vc.to_dict()) == [vm]
    assert recorder.last_json() == {"vcenter": vc.to_dict()}
    assert client.list_vms(vc, provider="vsphere", filter={"name_pattern": "web*"}) == [vm]
    assert recorder.last_json() == {"vcenter": vc.to_dict(), "provider": "vsphere", "filter": {"name_pattern": "web*"}}
    assert client.list_vms() == [vm] and recorder.last_json() == {}
    info = client.get_vm_info(vc, "/DC0/vm/web")
    assert info["firmware"] == "bios" and recorder.last_json() == {"vm_path": "/DC0/vm/web", "vcenter": vc.to_dict()}


def test_schedules(client, recorder):
    made = {"id": "s-1", "name": "nightly", "schedule": "0 2 * * *", "enabled": True, "run_count": 0,
            "job_template": {"vm_path": "/DC0/vm/web", "output_dir": "/b"}, "next_run": "2026-12-08T02:00:00Z",
            "created_at": T0, "updated_at": T0}
    recorder.route("POST", "/schedules", made, status=201)
    recorder.route("GET", "/schedules", [made])
    recorder.route("GET", "/schedules/s-1", made)
    recorder.route("PUT", "/schedules/s-1", dict(made, enabled=False))
    recorder.route("DELETE", "/schedules/s-1", {"status": "deleted"})
    for action in ("enable", "disable"):
        recorder.route("POST", f"/schedules/s-1/{action}", dict(made))
    recorder.route("POST", "/schedules/s-1/trigger", {"schedule_id": "s-1", "job_id": "j-7"})
    sched = ScheduledJob(name="nightly", schedule="0 2 * * *", description="d", tags=["prod"],
                         job_template=JobDefinition(vm_path="/DC0/vm/web", output_dir="/b"))
    created = client.create_schedule(sched)
    body = recorder.last_json()
    assert (body["name"], body["schedule"], body["enabled"], body["tags"]) == ("nightly", "0 2 * * *", True, ["prod"])
    assert body["job_template"]["vm_path"] == "/DC0/vm/web"
    assert created.id == "s-1" and created.next_run == datetime.datetime(2026, 12, 8, 2, tzinfo=UTC)
    assert [s.id for s in client.list_schedules()] == ["s-1"]
    assert client.get_schedule("s-1").job_template.output_dir == "/b"
    assert client.update_schedule("s-1", created).enabled is False
    assert recorder.last()["method"] == "PUT"
    assert client.enable_schedule("s-1") is None and client.disable_schedule("s-1") is None
    assert client.trigger_schedule("s-1") == {"schedule_id": "s-1", "job_id": "j-7"}
    assert client.delete_schedule("s-1") is None and recorder.last()["method"] == "DELETE"


def test_webhooks(client, recorder):
    stored = {"id": "wh-1", "url": "http://127.0.0.1:9/hook", "events": ["job_completed"],
              "headers": {"X-Token": "********"}, "enabled": True}
    recorder.route("GET", "/webhooks", [stored])
    recorder.route("POST", "/webhooks", stored, status=201)
    recorder.route("DELETE", "/webhooks/wh-1", {"status": "deleted"})
    recorder.route("POST", "/webhooks/test", lambda req: {
        "url": json.loads(req["body"])["url"], "status_code": 200 if "good" in req["body"].decode() else 500,
        "success": "good" in req["body"].decode(), "duration_ms": 3})
    added = client.add_webhook(Webhook(url="http://127.0.0.1:9/hook", events=["job_completed"], headers={"X-Token": "t"}))
    assert recorder.last_json() == {"url": "http://127.0.0.1:9/hook", "events": ["job_completed"], "headers": {"X-Token": "t"}}
    assert added.id == "wh-1"
    hooks = client.list_webhooks()
    assert hooks[0].headers == {"X-Token": "********"} and hooks[0].enabled is True
    assert client.test_webhook("http://127.0.0.1:9/good")["success"] is True
    with pytest.raises(APIError, match="Webhook test failed"):
        client.test_webhook("http://127.0.0.1:9/bad")
    assert client.delete_webhook("wh-1") is None


def test_an_unreachable_daemon_is_an_api_error():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(APIError, match="Request failed") as e:
        HyperSDK(f"http://127.0.0.1:{port}", timeout=5).health()
    assert e.value.status_code is None


def test_a_bad_base_url_is_refused():
    with pytest.raises(HyperSDKError):
        HyperSDK("localhost:8080")


def test_an_old_sdk_script_runs_unchanged(recorder):
    """The body of the old SDK's examples/submit_job.py and the monitor loop, verbatim in spirit:
    the calls, attribute accesses and enum comparisons they make."""
    recorder.route("GET", "/health", {"status": "healthy", "version": "0.2.0", "uptime": "1s", "timestamp": T0})
    recorder.route("GET", "/status", STATUS)
    recorder.route("POST", "/jobs/submit", {"job_ids": ["job-1"], "job_id": "job-1", "status": "pending", "created_at": T0,
                                            "accepted": 1, "rejected": 0, "errors": [], "timestamp": T0})
    recorder.route("GET", "/jobs/job-1", daemon_job(status="completed", completed_at=T0, result={
        "vm_name": "web", "output_dir": "/out", "ovf_path": "/out/web.ovf", "files": ["/out/web.ovf"],
        "total_size": 10, "duration": 10**9, "success": True, "export_method": "ova"}))
    recorder.route("GET", "/jobs/query", {"jobs": [daemon_job()], "total": 1, "timestamp": T0})
    lines = []
    with HyperSDK(recorder.url) as client:
        health = client.health()
        lines.append(f"Daemon is {health['status']}")
        status = client.status()
        lines.append(f"{status.version} {status.uptime} {status.total_jobs} {status.running_jobs}")
        vcenter = VCenterConfig(server="vcenter.example.com", username="administrator@vsphere.local",
                                password="your-password", insecure=True)
        job_def = JobDefinition(name="Export Ubuntu Server", vm_path="/Datacenter/vm/ubuntu-server", output_dir="/exports",
                                vcenter=vcenter, format=ExportFormat.OVF, compress=True, thin=True)
        job_id = client.submit_job(job_def)
        job = client.get_job(job_id)
        lines.append(f"Status: {job.status.value}")
        if job.status in [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED] and job.result:
            lines.append(f"{job.result.vm_name} {job.result.duration / 1e9:.2f}s {job.result.files}")
        for j in client.list_jobs(all=True):
            if j.status == JobStatus.RUNNING and j.progress:
                lines.append(f"{j.definition.id or 'Unknown'} {j.definition.name or j.definition.vm_path} "
                             f"{j.progress.percent_complete:.1f}% {j.progress.phase} {j.progress.estimated_remaining}")
    assert lines == ["Daemon is healthy", "0.2.0 1h2m3s 3 1", "Status: completed", "web 1.00s ['/out/web.ovf']",
                     "job-1 web 42.5% downloading 1m30s"]


# ---- in-process transport ------------------------------------------------------------------------

def test_in_process_requests_go_through_the_native_service_function(monkeypatch):
    """HyperSDK() sends the same requests to hypersdk._hypersdk._service_request (replaced here by a
    recorder) instead of HTTP; the answers are read the same way."""
    calls = []

    def service_request(method, target, body, headers):
        calls.append((method, target, body, headers))
        if target == "/status":
            return 200, "application/json", json.dumps(STATUS).encode()
        if target.startswith("/jobs/logs/"):
            return 200, "text/plain; charset=utf-8", b"a line\n"
        return 404, "application/json", json.dumps({"error": f"not found: {target}"}).encode()

    monkeypatch.setattr(hypersdk._hypersdk, "_service_request", service_request, raising=False)
    local = HyperSDK(api_key="k")
    assert local.in_process and local.base_url is None
    assert local.status().total_jobs == 3
    assert calls[-1] == ("GET", "/status", b"", {"accept": calls[-1][3]["accept"], "x-api-key": "k"})
    assert local.get_job_logs("j 1") == "a line\n"
    assert calls[-1][1] == "/jobs/logs/j%201"
    with pytest.raises(APIError) as e:
        local.enable_cbt("/v")
    assert e.value.route == "POST /cbt/enable"
    method, target, body, headers = calls[-1]
    assert (method, target, json.loads(body), headers["content-type"]) == ("POST", "/cbt/enable", {"vm_path": "/v"}, "application/json")
    assert all(isinstance(c[2], bytes) and all(k == k.lower() for k in c[3]) for c in calls)


def test_in_process_without_the_native_service_says_so(monkeypatch):
    monkeypatch.delattr(hypersdk._hypersdk, "_service_request", raising=False)
    with pytest.raises(HyperSDKError, match="_service_request"):
        HyperSDK()
