"""hypervisord (tools/hypervisord) started on a free loopback port: the existing daemon's routes and
JSON shapes, export jobs through govmomi's vSphere simulator (tests/sim/vsphere), cancel with
clean-up, persistence across restarts, cron schedules, signed webhooks to a loopback receiver,
API keys, sessions and roles, metrics, the WebSocket stream, the hyper2kvm hand-off and a
submitted password kept out of every response, log line and database page."""
import concurrent.futures
import hashlib
import hmac
import http.server
import json
import os
import pathlib
import signal
import sqlite3
import subprocess
import threading
import time

import pytest
import websocket

from conftest import MiB, qemu_img, write_pattern
from daemon_harness import HYPERVISORD, Daemon
from vsphere_sim import PASSWORD, USERNAME, Simulator

VM = "/DC0/vm/DC0_H0_VM0"
VM_BACKING = "[LocalDS_0] DC0_H0_VM0/disk1.vmdk"
VM1_BACKING = "[LocalDS_0] DC0_H0_VM1/disk1.vmdk"
WEBHOOK_SECRET = "webhook-signing-secret-for-tests"


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    d = tmp_path_factory.mktemp("image")
    raw = write_pattern(d / "disk.raw", 8 * MiB, seed=4242)
    vmdk = d / "disk.vmdk"
    qemu_img("convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", raw, vmdk)
    s = Simulator(tmp_path_factory.mktemp("sim"))
    s.upload(VM_BACKING, vmdk.read_bytes())
    s.upload(VM1_BACKING, vmdk.read_bytes())
    s.raw = raw
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def clean_sim(sim):
    sim.control(faults={}, reset_log=True, power_on=["DC0_H0_VM0", "DC0_H0_VM1"])
    yield


def vcenter(sim, password=PASSWORD):
    """The old SDK's vcenter block, password included (what users submit)."""
    return {"server": sim.url, "username": USERNAME, "password": password, "ca_file": sim.ca_file}


def vsphere_config(sim):
    return {"url": sim.url, "username": USERNAME, "password_env": "HSDK_TEST_PASSWORD", "ca_file": sim.ca_file}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory, sim):
    d = Daemon(tmp_path_factory.mktemp("daemon"),
               {"daemon": {"workers": 2}, "providers": {"vsphere": vsphere_config(sim)}, "webhook_secret": WEBHOOK_SECRET,
                "scheduler": {"retry_base_seconds": 0.2, "retry_cap_seconds": 1, "webhook_backoff_ms": 50}},
               args=["--no-auth"], env={"HSDK_TEST_PASSWORD": PASSWORD})
    yield d
    d.stop()


def submit(daemon, definition, expect=200, headers=None):
    status, body, _ = daemon.post("/jobs/submit", definition, headers=headers)
    assert status == expect, body
    return body


def export_job(daemon, sim, out, **extra):
    body = submit(daemon, {"name": "vm0", "vm_path": VM, "output_dir": str(out), "format": "vmdk", "vcenter": vcenter(sim), **extra})
    assert body["accepted"] == 1 and body["rejected"] == 0 and body["errors"] == []
    assert body["job_id"] == body["job_ids"][0] and body["status"] == "pending"
    return body["job_id"]


def wait_for(predicate, timeout=60, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


# ---- the daemon's own routes ------------------------------------------------------------------

def test_health_status_capabilities_and_errors(daemon):
    status, health, _ = daemon.get("/health")
    assert status == 200 and health["status"] == "healthy" and health["version"] and "uptime" in health
    status, st, _ = daemon.get("/status")
    assert status == 200
    for key in ("version", "uptime", "total_jobs", "running_jobs", "completed_jobs", "failed_jobs", "cancelled_jobs", "timestamp"):
        assert key in st, key
    status, caps, _ = daemon.get("/capabilities")
    assert status == 200 and "vsphere" in caps["providers"] and "export.run" in caps["operations"]
    status, err, _ = daemon.get("/no/such/route")
    assert status == 404 and set(err) == {"error", "timestamp"}
    status, err, _ = daemon.post("/jobs/submit", "{not json", headers={"Content-Type": "application/json"})
    assert status == 400 and err["error"].startswith("invalid request")
    status, err, _ = daemon.post("/jobs/submit", {"output_dir": "/tmp/x"})
    assert status == 400 and err["error"] == "invalid request: vm_path is required" and "timestamp" in err
    status, err, _ = daemon.request("DELETE", "/jobs/submit")
    assert status == 405
    status, q, _ = daemon.get("/jobs/query?status=cancelled&job_ids=none")
    assert status == 200 and q["jobs"] == [] and q["total"] == 0  # an empty list, never null
    status, _, _ = daemon.get("/jobs/not-a-job")
    assert status == 404
    status, _, _ = daemon.get("/api/v1/status")  # the Kubernetes runbook's path
    assert status == 200


def test_openapi_document_comes_from_the_operation_model(daemon):
    status, doc, _ = daemon.get("/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    assert "/v1/ops/export.run" in doc["paths"] and "/v1/ops/image.info" in doc["paths"]


def test_v1_ops_runs_any_operation_as_a_job(daemon, tmp_path):
    img = tmp_path / "d.qcow2"
    qemu_img("create", "-f", "qcow2", img, "3M")
    status, job, _ = daemon.post("/v1/ops/image.info?wait=true", {"path": str(img)})
    assert status == 200 and job["status"] == "completed" and job["operation"] == "image.info"
    assert job["result"]["format"] == "qcow2" and job["result"]["virtual-size"] == 3 * MiB
    status, err, _ = daemon.post("/v1/ops/image.info", {"path": 7})
    assert status == 400 and "/path" in err["error"]
    status, err, _ = daemon.post("/v1/ops/no.such", {})
    assert status == 404


def test_yaml_submit_and_several_jobs_at_once(daemon, tmp_path):
    body = "name: bad-one\noutput_dir: /tmp/nowhere\n"
    status, r, _ = daemon.post("/jobs/submit", body, headers={"Content-Type": "application/yaml"})
    assert status == 400 and r["rejected"] == 1
    status, r, _ = daemon.post("/jobs/submit", {"jobs": [{"vm_path": "/DC0/vm/none", "output_dir": str(tmp_path / "a")}, {"name": "x"}]})
    assert status == 200 and r["accepted"] == 1 and r["rejected"] == 1 and len(r["job_ids"]) == 1
    assert r["errors"] == ["invalid request: vm_path is required"]
    daemon.wait_job(r["job_ids"][0])


# ---- an export job from submit to result ------------------------------------------------------

def test_export_job_through_the_simulator(daemon, sim, tmp_path):
    out = tmp_path / "out"
    job_id = export_job(daemon, sim, out)
    job = daemon.wait_job(job_id)
    assert job["status"] == "completed", job
    assert job["definition"]["vm_path"] == VM and job["definition"]["output_dir"] == str(out)
    assert "password" not in json.dumps(job["definition"]["vcenter"])
    result = job["result"]
    assert result["success"] is True and result["vm_name"] == "DC0_H0_VM0" and result["total_size"] > 0
    assert result["duration"] == round(result["duration_seconds"] * 1e9)  # a Go time.Duration, as the old SDK reads it
    disk = [f for f in result["files"] if f.endswith(".vmdk")][0]
    qemu_img("compare", "-f", "vmdk", "-F", "raw", disk, sim.raw)
    for key in ("created_at", "updated_at", "started_at", "completed_at"):
        assert job[key].endswith("Z"), key

    status, p, _ = daemon.get(f"/jobs/progress/{job_id}")
    assert status == 200
    for key in ("phase", "percent_complete", "bytes_downloaded", "total_bytes", "transfer_rate_mbps", "estimated_remaining"):
        assert key in p and key in p["progress"], key  # both at the top and nested
    assert p["percent_complete"] == 100 and p["status"] == "completed"

    status, eta, _ = daemon.get(f"/jobs/eta/{job_id}")
    assert status == 200 and eta["estimated_remaining"] == "0s"

    status, logs, headers = daemon.get(f"/jobs/logs/{job_id}", raw=True)
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    assert "export.run started" in logs and "INFO" in logs
    assert logs.index("job.created") < logs.index("job.started (attempt 1 of 1)") < logs.index("job.completed")

    status, q, _ = daemon.get(f"/jobs/query?job_id={job_id}")
    assert status == 200 and q["status"] == "completed" and q["total"] == 1  # the seed workflow reads .status
    status, q, _ = daemon.post("/jobs/query", {"status": ["completed"], "limit": 1})
    assert status == 200 and len(q["jobs"]) == 1
    log = daemon.read_log()
    assert f"job submitted: {job_id}" in log and f"job completed: {job_id}" in log


def test_a_definition_may_name_its_job_id(daemon, tmp_path):
    r = submit(daemon, {"id": "job-abc-123", "vm_path": "/DC0/vm/missing", "output_dir": str(tmp_path / "o")})
    assert r["job_id"] == "job-abc-123"
    job = daemon.wait_job("job-abc-123")
    assert job["definition"]["id"] == "job-abc-123"
    status, err, _ = daemon.post("/jobs/submit", {"id": "job-abc-123", "vm_path": VM, "output_dir": str(tmp_path / "o")})
    assert status == 400 and "exists already" in err["error"]
    status, err, _ = daemon.post("/jobs/submit", {"id": "../x", "vm_path": VM, "output_dir": str(tmp_path / "o")})
    assert status == 400


def test_query_lists_newest_first(daemon, tmp_path):
    ids = []
    for i in range(3):
        r = submit(daemon, {"vm_path": f"/DC0/vm/missing-{i}", "output_dir": str(tmp_path / str(i))})
        ids.append(r["job_id"])
    status, q, _ = daemon.get("/jobs/query?all=true")
    listed = [j["id"] for j in q["jobs"] if j["id"] in ids]
    assert listed == list(reversed(ids))
    for i in ids:
        job = daemon.wait_job(i)
        assert job["status"] == "failed" and job["error"]
        assert f"job failed: {i}" in daemon.read_log()


def test_cancel_stops_the_export_and_cleans_up(daemon, sim, tmp_path):
    sim.control(faults={"nfc_stall_after": 300_000})
    out = tmp_path / "out"
    job_id = export_job(daemon, sim, out)
    wait_for(lambda: sim.state()["nfc_requests"], what="the download to start")
    status, r, _ = daemon.post("/jobs/cancel", {"job_ids": [job_id, "no-such-job"]})
    assert status == 200 and r["cancelled"] == [job_id] and r["failed"] == ["no-such-job"] and "no-such-job" in r["errors"]
    status, job, _ = daemon.get(f"/jobs/{job_id}")
    assert job["status"] == "cancelled"
    assert not [p for p in out.iterdir() if p.suffix == ".vmdk"] if out.exists() else True
    st = sim.state()
    assert st["snapshots"]["DC0_H0_VM0"] == 0 and st["calls"]["HttpNfcLeaseAbort"] == 1
    status, r, _ = daemon.post("/jobs/cancel", {"job_ids": [job_id]})
    assert r["failed"] == [job_id] and "already cancelled" in r["errors"][job_id]


def test_retries_with_backoff_then_fails(daemon, tmp_path):
    # Nothing listens on port 9: every attempt fails with a network error, which is retryable.
    r = submit(daemon, {"vm_path": VM, "output_dir": str(tmp_path / "o"), "max_retries": 2,
                        "vcenter": {"server": "https://127.0.0.1:9/sdk", "username": "u", "password": "p", "insecure": True, "max_attempts": 1}})
    job = daemon.wait_job(r["job_id"], timeout=60)
    assert job["status"] == "failed" and job["retries"] == 2
    status, logs, _ = daemon.get(f"/jobs/logs/{r['job_id']}", raw=True)
    assert logs.count("retrying after") == 2


def test_dependencies_and_time_windows(daemon, tmp_path):
    failing = submit(daemon, {"vm_path": "/DC0/vm/missing", "output_dir": str(tmp_path / "a")})["job_id"]
    dependent = submit(daemon, {"vm_path": "/DC0/vm/missing", "output_dir": str(tmp_path / "b"), "depends_on": [failing]})["job_id"]
    job = daemon.wait_job(dependent)
    assert job["status"] == "failed" and f"dependency {failing} failed" in job["error"]
    status, err, _ = daemon.post("/jobs/submit", {"vm_path": VM, "output_dir": "/tmp/x", "depends_on": ["nope"]})
    assert status == 400 and "unknown job" in err["error"]
    # A window that opened an hour from now holds the job back; cancelling it is immediate.
    now = time.localtime()
    start = (now.tm_hour + 1) % 24
    window = f"{start:02d}:00-{(start + 1) % 24:02d}:00"
    held = submit(daemon, {"vm_path": "/DC0/vm/missing", "output_dir": str(tmp_path / "c"), "time_window": window})["job_id"]
    time.sleep(1.5)
    assert daemon.get(f"/jobs/{held}")[1]["status"] == "pending"
    assert daemon.post("/jobs/cancel", {"job_ids": [held]})[1]["cancelled"] == [held]
    status, err, _ = daemon.post("/jobs/submit", {"vm_path": VM, "output_dir": "/tmp/x", "time_window": "25:00-01:00"})
    assert status == 400 and "time window" in err["error"]


def test_two_hundred_concurrent_queries_while_jobs_run(daemon, sim, tmp_path):
    ids = [export_job(daemon, sim, tmp_path / f"o{i}") for i in range(2)]

    def query(_):
        return daemon.get("/jobs/query?all=true")[0]

    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(pool.map(query, range(200)))
    assert statuses == [200] * 200
    for i in ids:
        assert daemon.wait_job(i)["status"] == "completed"


# ---- schedules and backup policies ------------------------------------------------------------

def test_schedule_crud_and_cron_firing(daemon, sim, tmp_path):
    tmpl = {"vm_path": VM, "output_dir": str(tmp_path / "sched"), "format": "vmdk", "overwrite": True}
    status, s, _ = daemon.post("/schedules", {"name": "every-second", "schedule": "@every 1s", "job_template": tmpl, "enabled": False})
    assert status == 201 and s["id"] and s["enabled"] is False and s["schedule"] == "@every 1s"
    status, listed, _ = daemon.get("/schedules")
    assert status == 200 and isinstance(listed, list) and s["id"] in [x["id"] for x in listed]
    status, s2, _ = daemon.request("PUT", f"/schedules/{s['id']}", {"description": "test", "schedule": "@every 1s"})
    assert status == 200 and s2["description"] == "test"
    daemon.post(f"/schedules/{s['id']}/enable")
    fired = wait_for(lambda: daemon.get(f"/schedules/{s['id']}")[1].get("last_job_ids"), what="the schedule to fire")
    daemon.post(f"/schedules/{s['id']}/disable")
    job = daemon.wait_job(fired[0])
    assert job["status"] == "completed" and job["schedule_id"] == s["id"]
    status, t, _ = daemon.post(f"/schedules/{s['id']}/trigger")
    assert status == 200 and t["job_id"]
    daemon.wait_job(t["job_id"])
    # The old client's update: GET, change a field, PUT back what it got (secrets masked, template
    # cut down to vm_path and name): the stored credentials stay.
    status, withpw, _ = daemon.post("/schedules", {"name": "creds", "schedule": "0 4 * * *", "job_template": {**tmpl, "vcenter": vcenter(sim)}})
    assert withpw["job_template"]["vcenter"]["password"] == "********"
    status, upd, _ = daemon.request("PUT", f"/schedules/{withpw['id']}", {"name": "creds", "schedule": "0 5 * * *",
                                                                            "job_template": {"vm_path": VM, "name": "creds", "vcenter": withpw["job_template"]["vcenter"]}})
    assert status == 200 and upd["schedule"] == "0 5 * * *"
    status, t, _ = daemon.post(f"/schedules/{withpw['id']}/trigger")
    assert daemon.wait_job(t["job_id"])["status"] == "completed"
    daemon.request("DELETE", f"/schedules/{withpw['id']}")
    status, err, _ = daemon.post("/schedules", {"name": "bad", "schedule": "61 * * * *", "job_template": tmpl})
    assert status == 400 and "minute 61" in err["error"]
    # The seed workflow's form.
    status, legacy, _ = daemon.post("/schedules/create", {"name": "nightly", "cron": "0 2 * * *", "job_definition": tmpl})
    assert status == 201 and legacy["schedule"] == "0 2 * * *" and legacy["next_run"].endswith("Z")
    status, _, _ = daemon.request("DELETE", f"/schedules/{legacy['id']}")
    assert status == 200 and daemon.get(f"/schedules/{legacy['id']}")[0] == 404
    daemon.request("DELETE", f"/schedules/{s['id']}")


# ---- webhooks ---------------------------------------------------------------------------------

class Receiver:
    """A loopback HTTP receiver recording each webhook delivery (headers and body)."""

    def __init__(self):
        self.calls = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.calls.append({"headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self):
        return [json.loads(c["body"])["event"] for c in self.calls]

    def close(self):
        self.server.shutdown()


def test_webhooks_are_signed_and_sent_for_job_events(daemon, tmp_path):
    rx = Receiver()
    try:
        status, hook, _ = daemon.post("/webhooks", {"url": rx.url, "events": ["job.created", "job.started", "job.failed"],
                                                    "headers": {"Authorization": "Bearer hook-token-123"}})
        assert status == 201 and hook["headers"] == {"Authorization": "********"}
        status, hooks, _ = daemon.get("/webhooks")
        assert any(h["id"] == hook["id"] for h in hooks) and "hook-token-123" not in json.dumps(hooks)
        job_id = submit(daemon, {"name": "hooked", "vm_path": "/DC0/vm/missing", "output_dir": str(tmp_path / "o")})["job_id"]
        daemon.wait_job(job_id)
        wait_for(lambda: "job.failed" in rx.events(), what="the job.failed webhook")
        assert rx.events()[:3] == ["job.created", "job.started", "job.failed"]
        for call in rx.calls:
            body = call["body"]
            expected = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
            assert hmac.compare_digest(call["headers"]["x-hypersdk-signature"], expected)
            assert call["headers"]["x-hypersdk-timestamp"].isdigit()
            assert call["headers"]["authorization"] == "Bearer hook-token-123"
            payload = json.loads(body)
            assert set(payload) == {"event", "timestamp", "data"}
            assert payload["data"]["job_id"] == job_id and payload["data"]["job_name"] == "hooked" and payload["data"]["vm_path"] == "/DC0/vm/missing"
        status, t, _ = daemon.post("/webhooks/test", {"url": rx.url})
        assert status == 200 and t["success"] is True and t["status_code"] == 200
        status, _, _ = daemon.request("DELETE", f"/webhooks/{hook['id']}")
        assert status == 200 and daemon.request("DELETE", f"/webhooks/{hook['id']}")[0] == 404
    finally:
        rx.close()


# ---- the hyper2kvm hand-off ---------------------------------------------------------------------

def test_hyper2kvm_daemon_mode_places_disks_and_writes_the_manifest(tmp_path, sim):
    watch = tmp_path / "watch"
    d = Daemon(tmp_path / "d", {"hyper2kvm": {"watch_dir": str(watch), "default_format": "qcow2"}}, args=["--no-auth"])
    try:
        out = tmp_path / "out"
        r = submit(d, {"vm_identifier": VM, "provider": "vsphere", "export_method": "ova", "export_path": str(out),
                       "vcenter": vcenter(sim), "options": {"shutdown_vm": False, "remove_cdrom": True},
                       "hyper2kvm_integration": {"enabled": True, "daemon_mode": True, "instance": "vsphere"}})
        job = d.wait_job(r["job_id"])
        assert job["status"] == "completed", job
        manifest = json.loads((out / "artifact-manifest.json").read_text())
        assert manifest["manifest_version"] == "1.0"
        assert manifest["source"]["provider"] == "vsphere" and manifest["source"]["vm_name"] == "DC0_H0_VM0" and manifest["source"]["datacenter"] == "DC0"
        assert {"cpu", "mem_gb", "firmware", "secureboot", "os_hint", "os_version"} <= set(manifest["vm"])
        disk = manifest["disks"][0]
        placed = pathlib.Path(disk["local_path"])
        assert placed.parent == watch / "vsphere" and placed.exists()
        assert disk["checksum"] == "sha256:" + hashlib.sha256(placed.read_bytes()).hexdigest()
        assert disk["bytes"] == placed.stat().st_size and disk["boot_order_hint"] == 1 and disk["disk_type"] == "os"
        assert manifest["output"]["format"] == "qcow2"
        assert not list((watch / "vsphere").glob(".*partial"))
        assert list((watch / "vsphere").glob("*.manifest.json"))
    finally:
        d.stop()


# ---- persistence ---------------------------------------------------------------------------------

def test_restart_keeps_jobs_and_schedules_and_fails_interrupted_jobs(tmp_path, sim):
    d = Daemon(tmp_path / "d", {"providers": {"vsphere": vsphere_config(sim)}}, args=["--no-auth"], env={"HSDK_TEST_PASSWORD": PASSWORD})
    try:
        done = submit(d, {"vm_path": VM, "output_dir": str(tmp_path / "a"), "format": "vmdk"})["job_id"]
        assert d.wait_job(done)["status"] == "completed"
        status, s, _ = d.post("/schedules", {"name": "kept", "schedule": "0 3 * * *", "job_template": {"vm_path": VM, "output_dir": "/tmp/k"}})
        sim.control(faults={"nfc_stall_after": 300_000})
        running = submit(d, {"vm_path": VM, "output_dir": str(tmp_path / "b"), "format": "vmdk"})["job_id"]
        wait_for(lambda: sim.state()["nfc_requests"], what="the download to start")
        # A hot backup of the database while the daemon runs (WAL).
        backup = tmp_path / "backup.db"
        subprocess.run(["sqlite3", str(d.workdir / "hypersdk.db"), f".backup {backup}"], check=True)
        with sqlite3.connect(backup) as db:
            assert db.execute("SELECT count(*) FROM jobs").fetchone()[0] >= 2
        d.stop(kill=True)
        d.start()
        assert d.get(f"/jobs/{done}")[1]["status"] == "completed"
        job = d.get(f"/jobs/{running}")[1]
        assert job["status"] == "failed" and job["error"] == "interrupted by restart"
        assert d.get(f"/schedules/{s['id']}")[0] == 200
    finally:
        d.stop()


# ---- security ----------------------------------------------------------------------------------

KEYS = {"reader": "read-key-0123456789abcdef", "operator": "operate-key-0123456789abcdef", "admin": "admin-key-0123456789abcdef"}


@pytest.fixture(scope="module")
def secured(tmp_path_factory, sim):
    d = Daemon(tmp_path_factory.mktemp("secured"),
               {"auth": {"api_keys": [{"name": "reader", "key": KEYS["reader"], "role": "read"},
                                      {"name": "operator", "key": KEYS["operator"], "role": "operate"},
                                      {"name": "admin", "key": KEYS["admin"], "role": "admin"}],
                         "users": [{"username": "alice", "password": "alice-password-1", "role": "operate"}]}},
               args=["--metrics-listen", "127.0.0.1:0"])
    yield d
    d.stop()


def test_api_keys_sessions_and_roles(secured, tmp_path):
    d = secured
    assert d.get("/health")[0] == 200  # open, for liveness probes
    status, err, headers = d.get("/jobs/query")
    assert status == 401 and "api key" in err["error"].lower()
    assert d.get("/jobs/query", headers={"X-API-Key": "wrong-key-0123456789"})[0] == 401
    assert d.get("/jobs/query", headers={"X-API-Key": KEYS["reader"]})[0] == 200
    assert d.get("/jobs/query", headers={"Authorization": "Bearer " + KEYS["reader"]})[0] == 200
    definition = {"vm_path": "/DC0/vm/missing", "output_dir": str(tmp_path / "o")}
    status, err, _ = d.post("/jobs/submit", definition, headers={"X-API-Key": KEYS["reader"]})
    assert status == 403 and "needs operate" in err["error"]
    status, r, _ = d.post("/jobs/submit", definition, headers={"X-API-Key": KEYS["operator"]})
    assert status == 200
    assert d.post("/webhooks", {"url": "http://127.0.0.1:9/x"}, headers={"X-API-Key": KEYS["operator"]})[0] == 403
    status, login, _ = d.post("/api/login", {"username": "alice", "password": "alice-password-1"})
    assert status == 200 and login["token"] and login["role"] == "operate"
    bearer = {"Authorization": "Bearer " + login["token"]}
    assert d.get("/status", headers=bearer)[0] == 200
    assert d.post("/api/logout", headers=bearer)[0] == 200
    assert d.get("/status", headers=bearer)[0] == 401
    assert d.post("/api/login", {"username": "alice", "password": "wrong"})[0] == 401
    audit = [json.loads(line) for line in (d.workdir / "state" / "audit.log").read_text().splitlines()]
    assert any(a["route"] == "/jobs/submit" and a["principal"] == "operator" and a["status"] == 200 for a in audit)
    assert any(a["route"] == "/jobs/submit" and a["status"] == 403 for a in audit)
    assert KEYS["operator"] not in (d.workdir / "state" / "audit.log").read_text()


def test_metrics_use_route_templates_and_the_metrics_port_needs_no_key(secured):
    d = secured
    d.get("/jobs/some-job-id", headers={"X-API-Key": KEYS["reader"]})
    status, text, _ = d.get("/metrics", headers={"X-API-Key": KEYS["reader"]}, raw=True)
    assert status == 200
    for name in ("hypersdk_http_requests_total", "hypersdk_active_jobs", "hypersdk_queued_jobs", "hypersdk_jobs_completed_total",
                 "hypersdk_jobs_failed_total", "hypersdk_bytes_exported_total", "hypersdk_job_duration_seconds_bucket",
                 "hypersdk_build_info", "process_resident_memory_bytes", "process_open_fds"):
        assert name in text, name
    assert 'route="/jobs/{id}"' in text and "some-job-id" not in text
    assert d.get("/metrics")[0] == 401
    line = [l for l in d.read_log().splitlines() if "metrics on " in l][0]
    metrics_url = line.split("metrics on ")[1].strip()
    import urllib.request
    with urllib.request.urlopen(metrics_url, timeout=10) as r:
        assert r.status == 200 and b"hypersdk_build_info" in r.read()
    with urllib.request.urlopen(metrics_url.replace("/metrics", "/health"), timeout=10) as r:
        assert r.status == 200


def test_weak_keys_and_no_auth_off_loopback_are_refused(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("auth:\n  api_keys:\n    - {name: short, key: abc123, role: admin}\n")
    p = subprocess.run([str(HYPERVISORD), "--config", str(cfg), "--listen", "127.0.0.1:0", "--state-dir", str(tmp_path / "s")],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "too weak" in p.stderr and "abc123" not in p.stderr
    p = subprocess.run([str(HYPERVISORD), "--no-auth", "--listen", "0.0.0.0:0", "--state-dir", str(tmp_path / "s")],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "loopback" in p.stderr
    p = subprocess.run([str(HYPERVISORD), "--listen", "127.0.0.1:0", "--state-dir", str(tmp_path / "s")], capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "authentication is required" in p.stderr


def test_sighup_reloads_keys(tmp_path):
    key = "first-key-0123456789abcdef"
    d = Daemon(tmp_path / "d", {"auth": {"api_keys": [{"name": "a", "key": key, "role": "read"}]}})
    try:
        assert d.get("/status", headers={"X-API-Key": key})[0] == 200
        new = "second-key-0123456789abcdef"
        d.config["auth"]["api_keys"] = [{"name": "b", "key": new, "role": "read"}]
        import yaml
        d.config_path.write_text(yaml.safe_dump(d.config))
        d.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "config reloaded" in d.read_log(), what="the reload")
        assert d.get("/status", headers={"X-API-Key": new})[0] == 200
        assert d.get("/status", headers={"X-API-Key": key})[0] == 401
    finally:
        d.stop()


def test_submitted_password_is_never_shown_logged_or_stored_in_clear(daemon, sim, tmp_path):
    secret = PASSWORD
    job_id = export_job(daemon, sim, tmp_path / "o")
    daemon.wait_job(job_id)
    bodies = [daemon.get(p, raw=True)[1] for p in
              ("/jobs/query?all=true", f"/jobs/{job_id}", f"/jobs/progress/{job_id}", f"/jobs/logs/{job_id}", f"/jobs/eta/{job_id}", "/status", "/metrics")]
    bodies.append(daemon.post("/jobs/query", {"all": True}, raw=True)[1])
    for b in bodies:
        assert secret not in b
    assert secret not in daemon.read_log()
    for f in daemon.workdir.rglob("*"):
        if f.is_file() and f.name != "config.yaml":
            assert secret.encode() not in f.read_bytes(), f


# ---- the WebSocket stream ------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/ws", "/websocket"])
def test_websocket_sends_status_jobs_and_updates(daemon, tmp_path, path):
    ws = websocket.create_connection(daemon.url.replace("http", "ws") + path, timeout=30)
    try:
        first = json.loads(ws.recv())
        second = json.loads(ws.recv())
        assert first["type"] == "status" and set(first) == {"type", "timestamp", "data"}
        assert second["type"] == "jobs" and isinstance(second["data"], list)
        job_id = submit(daemon, {"vm_path": "/DC0/vm/missing", "output_dir": str(tmp_path / "o")})["job_id"]
        seen = set()
        while "failed" not in seen:
            m = json.loads(ws.recv())
            if m["type"] == "job_update" and m["data"]["id"] == job_id:
                seen.add(m["data"]["status"])
        assert "pending" in seen
    finally:
        ws.close()


# ---- the seed workflow's names ---------------------------------------------------------------------

def test_seed_workflow_routes(daemon, sim, tmp_path):
    status, vms, _ = daemon.post("/vms/list", {"provider": "vsphere"})
    assert status == 200 and isinstance(vms, list) and VM in [v["path"] for v in vms]  # a bare list, as the old clients read it
    status, vms, _ = daemon.post("/vms/list", {"provider": "vsphere", "filter": {"datacenter": "DC0", "name_pattern": "DC0_H0_VM1"}})
    assert [v["name"] for v in vms] == ["DC0_H0_VM1"]
    # The old clients post the bare vCenter block.
    status, vms, _ = daemon.post("/vms/list", {"server": sim.url, "username": USERNAME, "password": PASSWORD, "insecure": True})
    assert status == 200 and len(vms) == 4
    status, info, _ = daemon.get(f"/vms/info?identifier={VM}&provider=vsphere")
    assert status == 200 and info["name"] == "DC0_H0_VM0" and info["num_cpu"] >= 1
    status, info, _ = daemon.post("/vms/info", {"vm_path": VM})
    assert status == 200 and info["path"] == VM
    status, err, _ = daemon.post("/vms/info", {})
    assert status == 400
    img = tmp_path / "disk.vmdk"
    qemu_img("create", "-f", "vmdk", img, "2M")
    status, parsed, _ = daemon.get(f"/parse-vmdk?path={img}")
    assert status == 200 and parsed["format"] == "vmdk"
    status, dom, _ = daemon.post("/import-to-kvm", {"vm_name": "vm-123", "disk_path": str(img), "memory_mb": 512, "vcpus": 2})
    assert status == 200 and "<domain" in dom["domain_xml"] and dom["defined"] is False
    status, cbt, _ = daemon.post("/cbt/status", {"vm_path": VM})
    assert status == 200 and "enabled" in cbt and "cbt_enabled" in cbt and "can_incremental" in cbt
    # The old SDK's cost request.
    status, cost, _ = daemon.post("/cost/estimate", {"provider": "s3", "region": "us-east-1", "storage_class": "s3_standard",
                                                     "storage_gb": 500, "transfer_gb": 0, "requests": 0, "duration_days": 30})
    assert status == 200 and cost["total_usd"] == pytest.approx(11.54, abs=1e-6)
    status, err, _ = daemon.post("/cost/estimate", {"provider": "s3", "storage_class": "standard", "storage_gb": 5, "transfer_gb": 3})
    assert status == 400 and "transfer_gb" in err["error"]
    status, cmp, _ = daemon.post("/cost/compare", {"storage_gb": 100, "duration_days": 90})
    assert status == 200 and cmp["estimates"][0]["total_usd"] <= cmp["estimates"][-1]["total_usd"]


# ---- scheduling limits, GOVC_* credentials, TLS, backup policies -----------------------------------

def test_per_host_limit_and_priorities(tmp_path, sim):
    # One export at a time against the simulator's host: a stalled one holds the others back, and
    # when it is cancelled the higher priority goes first.
    d = Daemon(tmp_path / "d", {"daemon": {"workers": 4}, "scheduler": {"per_host_limit": 1},
                                "providers": {"vsphere": vsphere_config(sim)}},
               args=["--no-auth"], env={"HSDK_TEST_PASSWORD": PASSWORD})
    try:
        sim.control(faults={"nfc_stall_after": 300_000})
        first = submit(d, {"vm_path": VM, "output_dir": str(tmp_path / "a"), "format": "vmdk"})["job_id"]
        wait_for(lambda: sim.state()["nfc_requests"], what="the download to start")
        low = submit(d, {"vm_path": VM, "output_dir": str(tmp_path / "b"), "format": "vmdk", "priority": 0})["job_id"]
        high = submit(d, {"vm_path": VM, "output_dir": str(tmp_path / "c"), "format": "vmdk", "priority": 10})["job_id"]
        time.sleep(1.0)
        assert d.get(f"/jobs/{low}")[1]["status"] == "pending" and d.get(f"/jobs/{high}")[1]["status"] == "pending"
        assert d.post("/jobs/cancel", {"job_ids": [first]})[1]["cancelled"] == [first]
        h, l = d.wait_job(high), d.wait_job(low)
        assert h["status"] == l["status"] == "completed"
        assert h["completed_at"] <= l["started_at"]
    finally:
        d.stop()


def test_govc_variables_give_the_vsphere_credentials(tmp_path, sim):
    env = {"GOVC_URL": sim.url, "GOVC_USERNAME": USERNAME, "GOVC_PASSWORD": PASSWORD, "GOVC_INSECURE": "1"}
    d = Daemon(tmp_path / "d", {}, args=["--no-auth"], env=env)
    try:
        job = d.wait_job(submit(d, {"vm_path": VM, "output_dir": str(tmp_path / "o"), "format": "vmdk"})["job_id"])
        assert job["status"] == "completed", job
    finally:
        d.stop()


def test_tls_listener(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    port = __import__("ports").free_port()
    proc = subprocess.Popen([str(HYPERVISORD), "--listen", f"127.0.0.1:{port}", "--no-auth", "--state-dir", str(tmp_path / "s"),
                             "--tls-cert", str(cert), "--tls-key", str(key)], stderr=subprocess.PIPE, text=True)
    try:
        import ssl
        import urllib.request
        ctx = ssl.create_default_context(cafile=str(cert))

        def health():
            try:
                with urllib.request.urlopen(f"https://127.0.0.1:{port}/health", context=ctx, timeout=2) as r:
                    return json.loads(r.read())
            except OSError:
                return None
        assert wait_for(health, what="the TLS listener")["status"] == "healthy"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_backup_policy_backs_up_matching_vms_and_prunes(daemon, sim, tmp_path):
    vm_name = "DC0_C0_RP0_VM0"
    raw = write_pattern(tmp_path / "v0.raw", 4 * MiB, seed=99)
    sim.control(plant_disk={"vm": vm_name, "raw": str(raw)})
    status, r, _ = daemon.post("/cbt/enable", {"vm_path": f"/DC0/vm/{vm_name}"})
    assert status == 200 and r["success"] is True
    repo = tmp_path / "repo"
    status, policy, _ = daemon.post("/backup-policies/create", {
        "name": "production-vms", "vm_filter": {"datacenter": "DC0", "name_pattern": "*_RP0_VM0", "power_state": "poweredOn"},
        "schedule": "0 2 * * *", "retention": {"count": 1, "age_days": 30}, "repo": str(repo)})
    assert status == 201 and policy["kind"] == "backup_policy"
    for _ in range(2):
        status, t, _ = daemon.post(f"/schedules/{policy['id']}/trigger")
        assert status == 200 and t["job_ids"]
        jobs = [daemon.wait_job(j, timeout=120) for j in t["job_ids"]]
        assert [j["operation"] for j in jobs][:2] == ["backup.run", "backup.prune"]
        assert all(j["status"] == "completed" for j in jobs), jobs
    status, listed, _ = daemon.post("/v1/ops/backup.list?wait=true", {"repo": str(repo)})
    points = [p for v in listed["result"]["vms"] for p in v["points"]]
    assert 1 <= len(points) <= 2
    status, analysis, _ = daemon.post("/incremental/analyze", {"vm_path": f"/DC0/vm/{vm_name}", "repo": str(repo)})
    assert status == 200 and analysis["cbt_enabled"] is True and analysis["can_incremental"] is True
    # What keeping this repository in GCS Nearline costs: sized from its files, grown at its measured rate.
    status, cost, _ = daemon.post("/cost/estimate", {"provider": "gcs", "storage_class": "nearline", "repo": str(repo), "days": 90})
    stored = sum((repo / v["folder"] / d["file"]).stat().st_size for v in listed["result"]["vms"] for p in v["points"] for d in p["disks"])
    assert status == 200 and cost["input"]["stored_bytes"] == stored and cost["input"]["monthly_growth_bytes"] >= 0


# ---- what the dashboard needs -------------------------------------------------------------------

def test_dashboard_files_preview_whoami_and_websocket_token(secured, tmp_path):
    import http.client
    d = secured
    status, _, headers = d.get("/", raw=True)
    assert status == 200 and headers["Content-Type"].startswith("text/html")  # urllib followed the 302
    status, page, _ = d.get("/dashboard/", raw=True)
    assert status == 200 and "<html" in page.lower()
    for bad in ("/dashboard/../CMakeLists.txt", "/dashboard/%2e%2e/CMakeLists.txt", "/dashboard/.hidden", "/dashboard/nope.js"):
        conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
        conn.request("GET", bad)
        r = conn.getresponse()
        assert r.status == 404, bad
        conn.close()
    key = {"X-API-Key": KEYS["reader"]}
    status, preview, _ = d.get("/schedules/preview?schedule=0%202%20*%20*%200&count=3", headers=key)
    assert status == 200 and len(preview["next_runs"]) == 3
    status, err, _ = d.get("/schedules/preview?schedule=61%20*%20*%20*%20*", headers=key)
    assert status == 400 and "minute 61" in err["error"]
    assert d.get("/api/whoami")[0] == 401
    status, me, _ = d.get("/api/whoami", headers=key)
    assert status == 200 and me == {"principal": "reader", "role": "read", "auth_required": True}
    with pytest.raises(websocket.WebSocketBadStatusException):
        websocket.create_connection(d.url.replace("http", "ws") + "/ws", timeout=10)
    ws = websocket.create_connection(d.url.replace("http", "ws") + "/ws?access_token=" + KEYS["reader"], timeout=10)
    assert json.loads(ws.recv())["type"] == "status"
    ws.close()
