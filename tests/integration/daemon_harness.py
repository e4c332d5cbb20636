"""Starts hypervisord (build/<preset>/tools/hypervisord/hypervisord) on a free 127.0.0.1 port with a
YAML config written from a dict, and talks to it with plain urllib (no client library in the way)."""
import json
import os
import pathlib
import subprocess
import time
import urllib.error
import urllib.request

import yaml

from conftest import BUILD
from ports import free_port

HYPERVISORD = BUILD / "tools" / "hypervisord" / "hypervisord"
HYPERCTL = BUILD / "tools" / "hyperctl" / "hyperctl"


class Daemon:
    """One hypervisord process. `config` is the YAML config as a dict (database.path defaults to
    <workdir>/hypersdk.db); `args` are extra command-line arguments (e.g. ["--no-auth"])."""

    def __init__(self, workdir, config=None, args=(), env=None):
        self.workdir = pathlib.Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config = json.loads(json.dumps(config or {}))
        self.config.setdefault("database", {}).setdefault("path", str(self.workdir / "hypersdk.db"))
        self.config.setdefault("daemon", {}).setdefault("state_dir", str(self.workdir / "state"))
        self.config_path = self.workdir / "config.yaml"
        self.args = list(args)
        self.env = dict(os.environ, **(env or {}))
        self.port = None
        self.proc = None
        self.log_path = self.workdir / "hypervisord.log"
        self.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        if not HYPERVISORD.exists():
            raise AssertionError(f"{HYPERVISORD} is missing: build the project first")
        self.port = free_port()
        self.config["daemon"]["address"] = f"127.0.0.1:{self.port}"
        self.config_path.write_text(yaml.safe_dump(self.config))
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(HYPERVISORD), "--config", str(self.config_path), *self.args],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"hypervisord exited {self.proc.returncode}:\n{self.read_log()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.05)
        raise AssertionError(f"hypervisord did not answer /health:\n{self.read_log()}")

    def stop(self, kill=False):
        if self.proc and self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"hypervisord did not stop within 30 s of SIGTERM:\n{self.read_log()[-4000:]}")
            finally:
                self.log.close()
            # A clean stop exits 0; under ASan a leak or a sanitizer report makes it non-zero.
            if not kill and self.proc.returncode != 0:
                raise AssertionError(f"hypervisord exited {self.proc.returncode} on SIGTERM:\n{self.read_log()[-4000:]}")
        elif self.proc and not self.log.closed:
            self.log.close()

    def restart(self, kill=False):
        self.stop(kill=kill)
        self.start()

    def read_log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def request(self, method, path, body=None, headers=None, raw=False, timeout=30):
        """(status, parsed JSON or text, response headers). `body` is JSON-encoded unless bytes/str."""
        data = None
        hdrs = dict(headers or {})
        if body is not None:
            if isinstance(body, (bytes, str)):
                data = body.encode() if isinstance(body, str) else body
            else:
                data = json.dumps(body).encode()
                hdrs.setdefault("Content-Type", "application/json")
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                status, text, rh = r.status, r.read().decode(), dict(r.headers)
        except urllib.error.HTTPError as e:
            status, text, rh = e.code, e.read().decode(), dict(e.headers)
        if raw:
            return status, text, rh
        try:
            return status, json.loads(text) if text else None, rh
        except ValueError:
            return status, text, rh

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body if body is not None else {}, **kw)

    def wait_job(self, job_id, states=("completed", "failed", "cancelled"), timeout=120, headers=None):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, job, _ = self.get(f"/jobs/{job_id}", headers=headers)
            assert status == 200, job
            if job["status"] in states:
                return job
            time.sleep(0.05)
        raise AssertionError(f"job {job_id} did not reach {states}: {job}")
