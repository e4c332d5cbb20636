"""hyperctl (tools/hyperctl) against hypervisord --no-auth and the vSphere simulator: the commands
hyper2kvm's hyperctl transport runs (status, submit -vm/-output, query -id) and query -all, read the
way hyper2kvm reads them.

hyper2kvm (github.com/ssahani/hyper2kvm, hyper2kvm/vmware/transports/hyperctl_common.py) runs
`hyperctl <args>` without -daemon (HyperCtlRunner._run_command; the URL comes from the environment),
and parses with plain string tests, not a regex:
  - submit_export_job: the first stdout line whose lower-case text contains "job id:" gives the job
    ID as `line.split(":")[-1].strip()` (the Go hyperctl prints "  - Job ID: <id>");
  - wait_for_job_completion: `query -id ID` until its lower-cased stdout contains "completed"
    (done), else "failed" or "cancelled" (errors), else it polls again;
  - check_daemon_status: `status` exiting 0; a non-zero exit raises with stderr as the message.
"""
import http.server
import json
import os
import re
import threading
import time

import pytest

from conftest import MiB, qemu_img, run, write_pattern
from daemon_harness import HYPERCTL, Daemon
from ports import free_port
from vsphere_sim import PASSWORD, USERNAME, Simulator

VM = "/DC0/vm/DC0_H0_VM0"
VM_BACKING = "[LocalDS_0] DC0_H0_VM0/disk1.vmdk"


# ---- hyper2kvm's parsing (hyper2kvm/vmware/transports/hyperctl_common.py) ----------------------

def hyper2kvm_job_id(stdout):
    """HyperCtlRunner.submit_export_job: the text after the last ":" of the first "job id:" line."""
    for line in stdout.split("\n"):
        if "job id:" in line.lower():
            return line.split(":")[-1].strip()
    return None


def hyper2kvm_outcome(stdout):
    """HyperCtlRunner.wait_for_job_completion: which word it finds first, None to poll again."""
    text = stdout.lower()
    for word in ("completed", "failed", "cancelled"):
        if word in text:
            return word
    return None


# ---- helpers --------------------------------------------------------------------------------

def hyperctl_env(url=None, **extra):
    """The environment hyper2kvm gives hyperctl: HYPERVISORD_URL (create_hyperctl_runner's default)."""
    env = {k: v for k, v in os.environ.items() if k not in ("HYPERVISORD_URL", "HYPERSDK_API_KEY", "NO_COLOR")}
    if url:
        env["HYPERVISORD_URL"] = url
    env.update(extra)
    return env


def hyperctl(*args, url=None, check=True, env=None, timeout=60):
    if not HYPERCTL.exists():
        raise AssertionError(f"{HYPERCTL} is missing: build the project first")
    return run([HYPERCTL, *args], check=check, env=env or hyperctl_env(url), timeout=timeout)


def table_rows(stdout):
    """The data rows of the boxed tables: "| a | b |" lines, minus each header and its "-" rule."""
    rows, lines = [], stdout.split("\n")
    for i, line in enumerate(lines):
        if not (line.startswith("| ") and line.endswith(" |")):
            continue
        inner = line[2:-2]
        if set(inner.strip()) == {"-"}:
            continue
        if i + 1 < len(lines) and set(lines[i + 1][2:-2].strip()) == {"-"}:
            continue  # a header row
        rows.append([cell.strip() for cell in inner.split(" | ")])
    return rows


def job_rows(stdout):
    """The rows of the "# Jobs" table as dicts keyed by its header."""
    header = ["Job ID", "Name", "VM Path", "Status", "Progress", "Started"]
    assert "| Job ID " in stdout and "\n# Jobs\n" in stdout, stdout
    return [dict(zip(header, row)) for row in table_rows(stdout) if len(row) == len(header)]


def short_id(job_id):
    return job_id[:8] + "..." if len(job_id) > 8 else job_id


# ---- fixtures -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def disk_image(tmp_path_factory):
    d = tmp_path_factory.mktemp("image")
    raw = write_pattern(d / "disk.raw", 4 * MiB, seed=4242)
    vmdk = d / "disk.vmdk"
    qemu_img("convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", raw, vmdk)
    return vmdk.read_bytes()


@pytest.fixture(scope="module")
def sim(tmp_path_factory, disk_image):
    s = Simulator(tmp_path_factory.mktemp("sim"))
    s.upload(VM_BACKING, disk_image)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory, sim):
    """hypervisord --no-auth with the simulator as its vSphere (hyperctl submit sends no
    credentials: the daemon's config supplies them)."""
    config = {"providers": {"vsphere": {"url": sim.url, "username": USERNAME, "password": PASSWORD, "insecure": True}}}
    with pytest.MonkeyPatch.context() as mp:
        for name in [k for k in os.environ if k.startswith("GOVC_")]:
            mp.delenv(name)
        d = Daemon(tmp_path_factory.mktemp("daemon"), config=config, args=["--no-auth"])
    yield d
    d.stop()


@pytest.fixture
def fresh_daemon(tmp_path):
    d = Daemon(tmp_path / "daemon", args=["--no-auth"])
    yield d
    d.stop()


def submit(daemon, out, vm=VM):
    # hyper2kvm creates the output directory before submitting (HyperCtlRunner.export_vm).
    out.mkdir(parents=True, exist_ok=True)
    p = hyperctl("submit", "-vm", vm, "-output", str(out), url=daemon.url)
    job_id = hyper2kvm_job_id(p.stdout)
    assert job_id, p.stdout
    return p, job_id


# ---- status ---------------------------------------------------------------------------------

def test_status_of_a_fresh_daemon(fresh_daemon):
    _, health, _ = fresh_daemon.get("/health")
    p = hyperctl("status", url=fresh_daemon.url)
    out = p.stdout
    assert "\x1b" not in out, "no colours when stdout is not a terminal"
    assert out.startswith(" SUCCESS  Retrieved daemon status\n"), out
    assert f" INFO  🔗 Connected to: {fresh_daemon.url}\n" in out
    assert "\n# 📊 Daemon Status\n" in out and "\n# 📈 Job Statistics\n" in out
    rows = {row[0]: row[1:] for row in table_rows(out)}
    assert rows["⚙️  Version"] == [health["version"]], rows
    assert rows["📍 URL"] == [fresh_daemon.url]
    assert rows["⏱️  Uptime"][0]
    assert rows["📦 Total Jobs"] == ["0", "100%"]
    for label in ("🔄 Running", "✅ Completed", "❌ Failed"):
        assert rows[label] == ["0", "0.0%"], rows
    assert " INFO  💡 No jobs yet. Start by:" in out
    assert p.stderr == ""


def test_daemon_flag_overrides_the_environment(fresh_daemon):
    dead = f"http://127.0.0.1:{free_port()}"
    # -daemon before the command (the Go hyperctl's global flag) or after it, in any spelling.
    for args in (["-daemon", fresh_daemon.url, "status"], ["status", f"--daemon={fresh_daemon.url}"]):
        p = hyperctl(*args, url=dead)
        assert f"Connected to: {fresh_daemon.url}" in p.stdout
    p = hyperctl("-daemon", dead, "status", url=fresh_daemon.url, check=False)
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr.startswith(f"hyperctl: cannot reach hypervisord at {dead}: "), p.stderr


def test_api_key_for_a_daemon_that_requires_one(tmp_path):
    key = "hyperctl-test-key-0123456789"
    d = Daemon(tmp_path / "daemon", config={"auth": {"api_keys": [{"name": "ci", "key": key, "role": "read"}]}})
    try:
        p = hyperctl("status", url=d.url, check=False)
        assert p.returncode == 1 and p.stdout == "", p
        assert f"hypervisord at {d.url} answered 401" in p.stderr and "-api-key or HYPERSDK_API_KEY" in p.stderr, p.stderr
        p = hyperctl("-api-key", "not-the-right-key-at-all", "status", url=d.url, check=False)
        assert p.returncode == 1 and "answered 401" in p.stderr and "check the API key" in p.stderr, p.stderr
        assert key not in p.stderr
        # The key from the environment (X-API-Key) or the flag.
        p = hyperctl("status", env=hyperctl_env(d.url, HYPERSDK_API_KEY=key))
        assert "Retrieved daemon status" in p.stdout
        p = hyperctl("query", "-all", f"-api-key={key}", url=d.url)
        assert p.stdout.startswith(" SUCCESS  Found 0 job(s)\n")
        # A read-only key may not submit.
        p = hyperctl("submit", "-vm", VM, "-output", str(tmp_path / "o"), env=hyperctl_env(d.url, HYPERSDK_API_KEY=key),
                     check=False)
        assert p.returncode == 1 and "answered 403" in p.stderr, p
        assert hyper2kvm_job_id(p.stdout) is None
    finally:
        d.stop()


def test_unreachable_daemon_names_the_url():
    dead = f"http://127.0.0.1:{free_port()}"
    for args in (["status"], ["query", "-all"], ["submit", "-vm", VM, "-output", "/tmp/x"]):
        p = hyperctl(*args, url=dead, check=False)
        assert p.returncode == 1, (args, p)
        assert f"cannot reach hypervisord at {dead}" in p.stderr, p.stderr
        assert hyper2kvm_job_id(p.stdout) is None


# ---- submit and query -----------------------------------------------------------------------

def test_submit_then_query_until_completed(daemon, tmp_path, disk_image):
    out = tmp_path / "export"
    p, job_id = submit(daemon, out)
    assert "\x1b" not in p.stdout
    assert p.stdout == (" SUCCESS  Submitted 1 job(s)\n"
                        " SUCCESS  Accepted Jobs: 1\n"
                        f" INFO    - Job ID: {job_id}\n"), p.stdout
    status, job, _ = daemon.get(f"/jobs/{job_id}")
    assert status == 200, job
    assert job["definition"]["vm_path"] == VM
    assert (job["definition"].get("output_path") or job["definition"].get("output_dir")) == str(out)

    # Poll as hyper2kvm does (its interval is 5 s; faster here).
    seen = []
    deadline = time.monotonic() + 120
    while True:
        q = hyperctl("query", "-id", job_id, url=daemon.url)
        assert q.stdout.startswith(" SUCCESS  Found 1 job(s)\n"), q.stdout
        (row,) = job_rows(q.stdout)
        assert row["Job ID"] == short_id(job_id)
        assert row["Name"] == "DC0_H0_VM0" and row["VM Path"] == VM
        assert re.fullmatch(r".* \(\d+\.\d%\)", row["Progress"]) or row["Progress"] == "-", row
        seen.append(row["Status"])
        outcome = hyper2kvm_outcome(q.stdout)
        if outcome is not None:
            break
        assert row["Status"] in ("pending", "running"), row
        assert time.monotonic() < deadline, f"job {job_id} never finished: {seen}"
        time.sleep(0.1)
    assert outcome == "completed", (q.stdout, daemon.get(f"/jobs/{job_id}")[1])
    assert row["Status"] == "completed"
    assert re.fullmatch(r"\d\d:\d\d:\d\d", row["Started"]), row
    assert daemon.get(f"/jobs/{job_id}")[1]["status"] == "completed"
    assert any(out.iterdir()), "the export wrote nothing to the output directory"


def test_query_all_lists_every_job(daemon, tmp_path):
    _, first = submit(daemon, tmp_path / "a")
    _, second = submit(daemon, tmp_path / "b")
    for job_id in (first, second):
        daemon.wait_job(job_id)
    _, answer, _ = daemon.get("/jobs/query?all=true")
    p = hyperctl("query", "-all", url=daemon.url)
    assert p.stdout.startswith(f" SUCCESS  Found {answer['total']} job(s)\n"), p.stdout
    rows = job_rows(p.stdout)
    assert len(rows) == len(answer["jobs"]) >= 2
    shown = [r["Job ID"] for r in rows]
    assert short_id(first) in shown and short_id(second) in shown
    # The daemon's order (newest first) and its status words.
    assert shown == [short_id(j["definition"].get("id") or j["id"]) for j in answer["jobs"]]
    assert [r["Status"] for r in rows] == [j["status"] for j in answer["jobs"]]

    # -id with several IDs, and -status.
    p = hyperctl("query", "-id", f"{first},{second}", url=daemon.url)
    assert sorted(r["Job ID"] for r in job_rows(p.stdout)) == sorted([short_id(first), short_id(second)])
    # One known, one unknown: the known one shown, the unknown one an error.
    p = hyperctl("query", "-id", f"{first},no-such-job", url=daemon.url, check=False)
    assert p.returncode == 1 and "job not found: no-such-job" in p.stderr, p
    assert [r["Job ID"] for r in job_rows(p.stdout)] == [short_id(first)]
    p = hyperctl("query", "-status", "completed", url=daemon.url)
    assert {r["Status"] for r in job_rows(p.stdout)} == {"completed"}


def test_query_of_an_unknown_job_fails(daemon):
    p = hyperctl("query", "-id", "no-such-job", url=daemon.url, check=False)
    assert p.returncode == 1, p
    assert "job not found: no-such-job" in p.stderr, p.stderr
    # Nothing hyper2kvm could take for an outcome.
    assert hyper2kvm_outcome(p.stdout) is None, p.stdout


def test_export_of_a_missing_vm_shows_failed(daemon, tmp_path):
    """The daemon may refuse the job at submit (non-zero exit, reason on stderr) or run it and fail
    it; either way hyper2kvm sees a failure, never "completed"."""
    out = tmp_path / "missing"
    out.mkdir()
    p = hyperctl("submit", "-vm", "/DC0/vm/NoSuchVM", "-output", str(out), url=daemon.url, check=False)
    if p.returncode != 0:
        assert p.stderr.strip() and hyper2kvm_job_id(p.stdout) is None, p
        return
    job_id = hyper2kvm_job_id(p.stdout)
    daemon.wait_job(job_id)
    q = hyperctl("query", "-id", job_id, url=daemon.url)
    assert hyper2kvm_outcome(q.stdout) == "failed", q.stdout
    assert job_rows(q.stdout)[0]["Status"] == "failed"


# ---- flags and credentials (no daemon needed) -----------------------------------------------

def test_usage_errors_exit_2():
    for args, message in (
        (["query", "-id"], "flag needs an argument: -id"),
        (["query", "-bogus"], "flag provided but not defined: -bogus"),
        (["query", "-all=perhaps"], 'invalid boolean value "perhaps" for -all'),
        (["submit", "-output", "/tmp/x"], "either -file or -vm must be specified"),
        (["frobnicate"], "unknown command: frobnicate"),
        ([], "Usage: hyperctl"),
    ):
        p = hyperctl(*args, url="http://127.0.0.1:9", check=False)
        assert p.returncode == 2, (args, p)
        assert message in p.stderr, (args, p.stderr)
    p = hyperctl("-version")
    assert re.fullmatch(r"hyperctl version \S+\n", p.stdout), p.stdout
    p = hyperctl("query", "-h")
    assert "-id" in p.stdout and "-all" in p.stdout and "-status" in p.stdout


class _Recorder(http.server.BaseHTTPRequestHandler):
    """A stand-in daemon answering /status and /jobs/submit, keeping each request's headers and body."""
    seen = []

    def log_message(self, *args):
        pass

    def _answer(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.seen.append((self.path, dict(self.headers), None))
        self._answer({"version": "x", "uptime": "1s", "total_jobs": 0, "running_jobs": 0, "pending_jobs": 0,
                      "completed_jobs": 0, "failed_jobs": 0})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append((self.path, dict(self.headers), body))
        self._answer({"job_ids": ["abc-123"], "accepted": 1, "rejected": 0, "errors": [], "job_id": "abc-123"})


@pytest.fixture
def recorder():
    _Recorder.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Recorder.seen
    server.shutdown()
    server.server_close()


def test_api_key_and_job_body(recorder, tmp_path):
    url, seen = recorder
    hyperctl("status", url=url, env=hyperctl_env(url, HYPERSDK_API_KEY="from-env"))
    hyperctl("-api-key", "from-flag", "status", url=url, env=hyperctl_env(url, HYPERSDK_API_KEY="from-env"))
    hyperctl("status", url=url)
    keys = [headers.get("X-API-Key") for _, headers, _ in seen]
    assert keys == ["from-env", "from-flag", None]

    # The job the Go hyperctl built from -vm/-output: name = the VM path's last element; a
    # relative -output is made absolute (the daemon does not share hyperctl's directory).
    seen.clear()
    p = run([HYPERCTL, "submit", "-vm=/DC0/vm/web-01/", "--output", "exports/web"], env=hyperctl_env(url), cwd=tmp_path)
    assert hyper2kvm_job_id(p.stdout) == "abc-123"
    ((path, headers, body),) = seen
    assert path == "/jobs/submit" and headers["Content-Type"] == "application/json"
    assert body == {"name": "web-01", "vm_path": "/DC0/vm/web-01/", "output_path": str(tmp_path / "exports" / "web")}
