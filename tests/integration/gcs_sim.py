"""fake-gcs-server (tests/sim/gcs, built by scripts/setup into build/sim/fake-gcs-server) for the
tests: a Cloud Storage JSON API on 127.0.0.1 with a free port, plain HTTP, contents in memory, no
authentication. Small helpers talk to it over the JSON API (the requests a GCS client sends):

    with FakeGcs(tmp_path) as gcs:
        gcs.create_bucket("exports")
        gcs.upload("exports", "disk.vmdk", data)
        gcs.upload("exports", "disk.raw.gz", gzip.compress(raw), content_encoding="gzip")  # stored gzip
        assert gcs.get("exports", "disk.vmdk") == data
        gcs.list("exports", prefix="disk")  # names
        gcs.delete("exports", "disk.vmdk")

What the server answers (Range, decompressive transcoding of gzip objects, DELETE's 200, ...) is
in tests/sim/gcs/README.md and checked by test_gcp_sim.py. Python standard library only."""
import http.client
import json
import os
import pathlib
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import uuid
from ports import free_port as _free_port

ROOT = pathlib.Path(__file__).resolve().parents[2]
BINARY = pathlib.Path(os.environ.get("HSDK_FAKE_GCS", ROOT / "build" / "sim" / "fake-gcs-server"))
VERSION = "v1.56.1"  # tests/sim/gcs/go.mod


def quote_object(name):
    """An object name as one path segment of the JSON API (every "/" as %2F)."""
    return urllib.parse.quote(name, safe="")


class GcsError(AssertionError):
    def __init__(self, status, body, what):
        self.status, self.body = status, body
        super().__init__(f"{what}: HTTP {status}: {body[:500]!r}")


class FakeGcs:
    """build/sim/fake-gcs-server -scheme http -host 127.0.0.1 -port PORT -backend memory, its output
    in <workdir>/fake-gcs-server.log. It runs in its own session and gets SIGKILL if this process
    dies (setpriv --pdeathsig); stop() ends it (SIGTERM, SIGKILL after 5 s).
    Attributes: url (http://127.0.0.1:PORT), host, port, emulator_host ("127.0.0.1:PORT", the form
    of STORAGE_EMULATOR_HOST), project, log_path."""

    def __init__(self, workdir=None, timeout=30, project="hsdk-test"):
        if not os.access(BINARY, os.X_OK):
            raise AssertionError(f"{BINARY} is missing: run scripts/setup (it builds fake-gcs-server from tests/sim/gcs)")
        self._tmp = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="fake-gcs-")
            workdir = self._tmp.name
        self.workdir = pathlib.Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / "fake-gcs-server.log"
        self.host = "127.0.0.1"
        self.project = project
        self.proc = None
        for attempt in range(3):  # the free port may be taken between the probe and the bind
            self.port = _free_port()
            if self._start(timeout):
                break
            if attempt == 2:
                raise AssertionError(f"fake-gcs-server did not start: {self.log_path.read_text(errors='replace')[-2000:]}")
        self.url = f"http://{self.host}:{self.port}"
        self.emulator_host = f"{self.host}:{self.port}"

    def _start(self, timeout):
        args = [str(BINARY), "-scheme", "http", "-host", self.host, "-port", str(self.port), "-backend", "memory",
                "-log-level", "warn"]
        setpriv = shutil.which("setpriv")
        if setpriv is not None:
            args = [setpriv, "--pdeathsig", "KILL", "--"] + args
        self._log = open(self.log_path, "ab")
        # -data would load a folder of objects; an empty one keeps the server from looking anywhere.
        empty = self.workdir / "empty-data"
        empty.mkdir(exist_ok=True)
        args += ["-data", str(empty)]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                     cwd=str(self.workdir), start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._log.close()
                return False
            try:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=2)
                conn.request("GET", "/storage/v1/b?project=" + urllib.parse.quote(self.project))
                resp = conn.getresponse()
                resp.read()
                conn.close()
                if resp.status == 200:
                    return True
            except OSError:
                time.sleep(0.05)
        self._kill()
        self._log.close()
        return False

    def _kill(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def stop(self):
        self._kill()
        if not self._log.closed:
            self._log.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # ---- HTTP ----
    def request(self, method, path, body=None, headers=None, timeout=120):
        """(status, {lower-case header: value}, body bytes) of one request to the server."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            h = dict(headers or {})
            if body is not None:
                h.setdefault("Content-Length", str(len(body)))
            conn.request(method, path, body=body, headers=h)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    @staticmethod
    def object_path(bucket, name, media=False):
        """/storage/v1/b/BUCKET/o/NAME (?alt=media for the contents)."""
        path = f"/storage/v1/b/{urllib.parse.quote(bucket, safe='')}/o/{quote_object(name)}"
        return path + ("?alt=media" if media else "")

    # ---- buckets and objects ----
    def create_bucket(self, name):
        """Creates a bucket (an existing one is fine). Returns the name."""
        status, _, body = self.request("POST", "/storage/v1/b?project=" + urllib.parse.quote(self.project),
                                       json.dumps({"name": name}).encode(), {"Content-Type": "application/json"})
        if status not in (200, 409):
            raise GcsError(status, body, f"create bucket {name}")
        return name

    def bucket_exists(self, name):
        status, _, _ = self.request("GET", f"/storage/v1/b/{urllib.parse.quote(name, safe='')}")
        return status == 200

    def upload(self, bucket, name, data, content_type=None, content_encoding=None):
        """Stores `data` as bucket/name: a media upload, or a multipart one (metadata + media) when a
        contentEncoding is to be stored with it (content_encoding="gzip": `data` is the gzip bytes,
        served decompressed to clients that do not accept gzip). Returns the object resource."""
        data = bytes(data)
        content_type = content_type or "application/octet-stream"
        b = urllib.parse.quote(bucket, safe="")
        if content_encoding is None:
            q = urllib.parse.urlencode({"uploadType": "media", "name": name})
            status, _, body = self.request("POST", f"/upload/storage/v1/b/{b}/o?{q}", data, {"Content-Type": content_type})
        else:
            boundary = "hsdk-" + uuid.uuid4().hex
            meta = json.dumps({"name": name, "contentType": content_type, "contentEncoding": content_encoding}).encode()
            parts = [f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n".encode(), meta,
                     f"\r\n--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode(), data,
                     f"\r\n--{boundary}--\r\n".encode()]
            status, _, body = self.request("POST", f"/upload/storage/v1/b/{b}/o?uploadType=multipart", b"".join(parts),
                                           {"Content-Type": f"multipart/related; boundary={boundary}"})
        if status != 200:
            raise GcsError(status, body, f"upload gs://{bucket}/{name}")
        return json.loads(body)

    def get(self, bucket, name, stored=False):
        """The object's contents, or None when there is none. stored=True: the bytes as stored (a
        gzip-encoded object's gzip bytes; otherwise the server transcodes them)."""
        status, _, body = self.request("GET", self.object_path(bucket, name, media=True),
                                       headers={"Accept-Encoding": "gzip"} if stored else None)
        if status == 404:
            return None
        if status != 200:
            raise GcsError(status, body, f"get gs://{bucket}/{name}")
        return body

    def metadata(self, bucket, name):
        """The object resource (JSON: size as a string, md5Hash, crc32c, ...), or None."""
        status, _, body = self.request("GET", self.object_path(bucket, name))
        if status == 404:
            return None
        if status != 200:
            raise GcsError(status, body, f"metadata of gs://{bucket}/{name}")
        return json.loads(body)

    def list(self, bucket, prefix=""):
        """Names of the objects of a bucket under `prefix`, sorted (every page); [] for no bucket."""
        names, token = [], None
        while True:
            q = {"prefix": prefix, "maxResults": "1000"}
            if token:
                q["pageToken"] = token
            status, _, body = self.request("GET", f"/storage/v1/b/{urllib.parse.quote(bucket, safe='')}/o?"
                                           + urllib.parse.urlencode(q))
            if status == 404:
                return []
            if status != 200:
                raise GcsError(status, body, f"list gs://{bucket}/{prefix}")
            page = json.loads(body)
            names += [o["name"] for o in page.get("items", [])]
            token = page.get("nextPageToken")
            if not token:
                return sorted(names)

    def delete(self, bucket, name):
        """Deletes an object; True when it was there. (fake-gcs-server answers 200, GCS 204.)"""
        status, _, body = self.request("DELETE", self.object_path(bucket, name))
        if status == 404:
            return False
        if status not in (200, 204):
            raise GcsError(status, body, f"delete gs://{bucket}/{name}")
        return True
