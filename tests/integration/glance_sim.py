"""Debian's real Glance (package glance-api, installed by scripts/setup) for the tests: a standalone
glance-api on 127.0.0.1 with a free port, without Keystone (the paste pipeline's empty flavor gives
every request an unauthenticated admin context, so an X-Auth-Token is ignored), its database in
SQLite and its images in the filesystem store of a temporary folder:

    with Glance() as g:                            # or Glance(workdir), kept after stop()
        img = g.upload("disk", pathlib.Path("disk.raw"))     # waits until active
        g.url                                      # http://127.0.0.1:PORT (paths are /v2/...)
        g.image(img["id"]), g.image_file(img["id"]), g.delete(img["id"])

The process runs in its own process group (glance-api forks its worker), which stop() ends;
it also gets SIGKILL if the test process dies. Python standard library only."""
import http.client
import json
import os
import pathlib
import shutil
import signal
import subprocess
import tempfile
import time
from ports import free_port as _free_port

CONFIG = """\
[DEFAULT]
bind_host = 127.0.0.1
bind_port = {port}
workers = 1
log_file = {dir}/glance.log
enabled_backends = fs:file

[database]
connection = sqlite:///{dir}/glance.sqlite

[paste_deploy]
flavor =
config_file = /etc/glance/glance-api-paste.ini

[glance_store]
default_backend = fs

[fs]
filesystem_store_datadir = {dir}/images/

[oslo_policy]
enforce_new_defaults = false
enforce_scope = false

[os_glance_staging_store]
filesystem_store_datadir = {dir}/staging/

[os_glance_tasks_store]
filesystem_store_datadir = {dir}/tasks/
"""

SETUP_HINT = "Debian's glance-api is not installed: run scripts/setup (it installs the package glance-api)"


def _tail(path, lines=40):
    try:
        return "\n".join(pathlib.Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"({path} missing)"


class GlanceError(AssertionError):
    def __init__(self, status, body, what):
        self.status, self.body = status, body
        super().__init__(f"{what}: HTTP {status}: {body[:500]!r}")


class Glance:
    """glance-api from Debian on 127.0.0.1:<free port>. Attributes: url, host, port, dir (the
    working folder: glance.conf, glance.log, glance-api.out, glance.sqlite, images/), version."""

    def __init__(self, workdir=None, timeout=60):
        self.api, self.manage = shutil.which("glance-api"), shutil.which("glance-manage")
        if self.api is None or self.manage is None:
            raise AssertionError(SETUP_HINT)
        self._own_dir = workdir is None
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="hsdk-glance-") if workdir is None else workdir).resolve()
        self.dir.mkdir(parents=True, exist_ok=True)
        for sub in ("images", "staging", "tasks"):
            (self.dir / sub).mkdir(exist_ok=True)
        self.conf, self.log, self.out = self.dir / "glance.conf", self.dir / "glance.log", self.dir / "glance-api.out"
        self.host, self.proc, self._out = "127.0.0.1", None, None
        self.version = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "glance-api"], capture_output=True,
                                      text=True).stdout.strip() or "?"
        try:
            for attempt in range(3):  # the free port may be taken between the probe and the bind
                self.port = _free_port()
                self.conf.write_text(CONFIG.format(port=self.port, dir=self.dir))
                if attempt == 0:
                    self._db_sync()
                if self._start(timeout):
                    break
                # glance-api tries to bind for 30 s, then says so and exits
                port_taken = "Could not bind to" in _tail(self.out) or "Address already in use" in _tail(self.out)
                if attempt == 2 or not port_taken:
                    raise AssertionError(f"glance-api exited at start (exit {self.proc.returncode}); {self._logs()}")
        except BaseException:
            self.stop()
            raise
        self.url = f"http://{self.host}:{self.port}"

    def _logs(self):
        return f"{self.log} ends:\n{_tail(self.log)}\n{self.out} ends:\n{_tail(self.out)}"

    def _db_sync(self):
        p = subprocess.run([self.manage, "--config-file", str(self.conf), "db_sync"], capture_output=True, text=True,
                           timeout=120, cwd=str(self.dir))
        if p.returncode != 0:
            raise AssertionError(f"glance-manage db_sync exited {p.returncode}:\n{p.stdout}\n{p.stderr}\n{self._logs()}")

    def _start(self, timeout):
        """Starts glance-api; True once GET /v2/images answers 200, False if it exited (a port
        taken); raises if it neither answers nor exits within `timeout` seconds."""
        if self._out is not None:
            self._out.close()
        self._out = open(self.out, "ab")
        args = [self.api, "--config-file", str(self.conf)]
        setpriv = shutil.which("setpriv")  # SIGKILL when the test process dies (util-linux)
        if setpriv is not None:
            args = [setpriv, "--pdeathsig", "KILL", "--"] + args
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self._out, stderr=subprocess.STDOUT,
                                     cwd=str(self.dir), start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                status, _ = self._request("GET", "/v2/images", timeout=2)
                if status == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.2)
        self._kill()
        raise AssertionError(f"glance-api did not answer GET /v2/images within {timeout} s; {self._logs()}")

    def _kill(self):
        if self.proc is None or self.proc.returncode is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        except ProcessLookupError:
            self.proc.wait()
        try:  # the worker, should it have outlived its parent
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def stop(self):
        self._kill()
        if self._out is not None:
            self._out.close()
            self._out = None
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # ---- requests ----
    def _request(self, method, path, body=None, headers=None, timeout=60):
        """(status, body bytes) of one request; `body` bytes, a dict (sent as JSON) or an open file."""
        h = dict(headers or {})
        if isinstance(body, dict):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=h)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def _ok(self, want, what, method, path, body=None, headers=None):
        status, data = self._request(method, path, body, headers)
        if status not in want:
            raise GlanceError(status, data, what)
        return json.loads(data) if data else None

    def image(self, image_id):
        """GET /v2/images/{id}: the image's JSON."""
        return self._ok((200,), f"get image {image_id}", "GET", f"/v2/images/{image_id}")

    def image_file(self, image_id, range_header=None):
        """GET /v2/images/{id}/file: (status, bytes)."""
        return self._request("GET", f"/v2/images/{image_id}/file", headers={"Range": range_header} if range_header else None)

    def stored_path(self, image_id):
        """Where the filesystem store keeps the image's data."""
        return self.dir / "images" / image_id

    def upload(self, name, data, disk_format="raw", container_format="bare", timeout=60):
        """Creates an image and uploads `data` (bytes, or the path of a file) as its data; returns
        its JSON once active."""
        img = self._ok((201,), f"create image {name}", "POST", "/v2/images",
                       {"name": name, "disk_format": disk_format, "container_format": container_format})
        headers = {"Content-Type": "application/octet-stream"}
        if isinstance(data, (bytes, bytearray, memoryview)):
            self._ok((204,), f"upload image {name}", "PUT", f"/v2/images/{img['id']}/file", bytes(data), headers)
        else:
            path = pathlib.Path(data)
            headers["Content-Length"] = str(path.stat().st_size)
            with open(path, "rb") as f:
                self._ok((204,), f"upload image {name}", "PUT", f"/v2/images/{img['id']}/file", f, headers)
        deadline = time.monotonic() + timeout
        while True:
            img = self.image(img["id"])
            if img["status"] == "active":
                return img
            if img["status"] in ("killed", "deleted", "deactivated") or time.monotonic() > deadline:
                raise AssertionError(f"image {name} ({img['id']}) is {img['status']}, not active; {self._logs()}")
            time.sleep(0.1)

    def delete(self, image_id):
        self._ok((204,), f"delete image {image_id}", "DELETE", f"/v2/images/{image_id}")
