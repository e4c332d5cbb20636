"""Azurite (the Azure Storage emulator, tests/sim/azure) for the tests: starts its blob service on
127.0.0.1 with a free port, signs requests with the emulator's well-known account key (SharedKey),
builds page blobs (written and cleared pages, blob snapshots), makes service SAS URLs, and reads
back which requests Azurite served (from its debug log). CountingProxy sits between a client and
Azurite and records every request (method, path, query, Range / x-ms-range, status).

Python standard library only; every signature is computed here, the documented way:
  - SharedKey: https://learn.microsoft.com/rest/api/storageservices/authorize-with-shared-key
  - service SAS (version 2020-12-06 and later):
    https://learn.microsoft.com/rest/api/storageservices/create-service-sas
"""
import base64
import ctypes
import datetime
import email.utils
import hashlib
import hmac
import http.client
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.parse
import uuid
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ports import free_port as _free_port

ROOT = pathlib.Path(__file__).resolve().parents[2]
SIM_DIR = ROOT / "tests" / "sim" / "azure"
AZURITE_BLOB = SIM_DIR / "node_modules" / ".bin" / "azurite-blob"

# The emulator's one built-in account: name and key as Azurite and the Azure Storage docs give them
# ("Use the Azurite emulator for local Azure Storage development": well-known storage account).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
# The storage service version we send (x-ms-version) and sign SAS tokens with (sv).
SERVICE_VERSION = "2022-11-02"
PAGE = 512


# ---- signatures ------------------------------------------------------------------------------
def _hmac_b64(key_b64, text):
    return base64.b64encode(hmac.new(base64.b64decode(key_b64), text.encode("utf-8"), hashlib.sha256).digest()).decode()


def shared_key_string_to_sign(method, path, query, headers, account=ACCOUNT):
    """The Blob service's SharedKey string-to-sign (version 2015-02-21 and later). `path` is the
    URI path as sent (path-style, so it starts with /ACCOUNT for the emulator); `query` a
    {name: value or [values]} dict of decoded values; `headers` a dict (any case)."""
    h = {k.lower(): str(v) for k, v in headers.items()}
    length = h.get("content-length", "")
    if length == "0":
        length = ""  # since 2015-02-21 an empty body signs as the empty string
    standard = [method.upper(), h.get("content-encoding", ""), h.get("content-language", ""), length,
                h.get("content-md5", ""), h.get("content-type", ""), h.get("date", ""),
                h.get("if-modified-since", ""), h.get("if-match", ""), h.get("if-none-match", ""),
                h.get("if-unmodified-since", ""), h.get("range", "")]
    canonical_headers = "".join(f"{k}:{' '.join(v.split())}\n" for k, v in sorted(h.items()) if k.startswith("x-ms-"))
    resource = f"/{account}{path}"
    grouped = {}
    for name, value in (query or {}).items():
        values = value if isinstance(value, list) else [value]
        grouped.setdefault(name.lower(), []).extend(str(v) for v in values)
    for name in sorted(grouped):
        resource += f"\n{name}:{','.join(sorted(grouped[name]))}"
    return "\n".join(standard) + "\n" + canonical_headers + resource


def shared_key_authorization(method, path, query, headers, account=ACCOUNT, key=ACCOUNT_KEY):
    return f"SharedKey {account}:{_hmac_b64(key, shared_key_string_to_sign(method, path, query, headers, account))}"


def sas_string_to_sign(account, container, blob, sp, se, st="", sr="b", sv=SERVICE_VERSION, snapshot="",
                       si="", sip="", spr="", ses="", rscc="", rscd="", rsce="", rscl="", rsct=""):
    """The service SAS string-to-sign for a blob, versions 2020-12-06 up to (not including)
    2025-07-05: permissions, start, expiry, canonicalized resource, identifier, IP, protocol,
    version, resource, snapshot time, encryption scope, then the five response-header overrides."""
    resource = f"/blob/{account}/{container}/{blob}"
    return "\n".join([sp, st, se, resource, si, sip, spr, sv, sr, snapshot, ses, rscc, rscd, rsce, rscl, rsct])


def sas_time(t):
    """A SAS time (ISO 8601 UTC, whole seconds) from a datetime or a Unix time."""
    if not isinstance(t, datetime.datetime):
        t = datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
    return t.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_sas_query(container, blob, expiry=None, permissions="r", start=None, resource="b", snapshot=None,
                   protocol=None, identifier=None, account=ACCOUNT, key=ACCOUNT_KEY, version=SERVICE_VERSION):
    """The query string (without '?') of a service SAS for one blob: sv, sr, [sp], [st], [se], [si],
    [spr], sig. resource "b" (the blob) or "bs" (the blob snapshot `snapshot`, which is then signed
    too). With `identifier` (a stored access policy of the container, si=) the permissions and
    times may be left to the policy: pass permissions=None and no expiry."""
    if identifier is None and (not permissions or expiry is None):
        raise ValueError("a SAS without a stored access policy needs permissions and an expiry")
    se = "" if expiry is None else sas_time(expiry)
    st = "" if start is None else sas_time(start)
    sp = permissions or ""
    signed_snapshot = snapshot if resource == "bs" else ""
    sig = _hmac_b64(key, sas_string_to_sign(account, container, blob, sp, se, st, resource, version,
                                            signed_snapshot, si=identifier or "", spr=protocol or ""))
    params = [("sv", version), ("sr", resource)]
    params += [(k, v) for k, v in (("sp", sp), ("st", st), ("se", se), ("si", identifier or ""), ("spr", protocol or "")) if v]
    params.append(("sig", sig))
    return urllib.parse.urlencode(params, quote_via=urllib.parse.quote, safe="")


def _parse_sas_time(s):
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%MZ", "%Y-%m-%d"):
        try:
            return datetime.datetime.strptime(s, fmt).replace(tzinfo=datetime.timezone.utc).timestamp()
        except ValueError:
            pass
    raise ValueError(f"not a SAS time: {s!r}")


def verify_sas(container, blob, query, account=ACCOUNT, key=ACCOUNT_KEY, now=None, need="r", policies=None):
    """Checks a service SAS for a blob, given as a {name: value} query dict, the way the service
    does for the fields we use: None when it grants `need` on the blob now, else the reason (a
    string). policies: {identifier: {"permissions", "start", "expiry"}} (Unix times or None), the
    container's stored access policies, for a SAS with si=."""
    for field in ("sv", "sr", "sig"):
        if not query.get(field):
            return f"SAS field {field} missing"
    snapshot = query.get("snapshot", "") if query["sr"] == "bs" else ""
    expected = _hmac_b64(key, sas_string_to_sign(
        account, container, blob, query.get("sp", ""), query.get("se", ""), query.get("st", ""), query["sr"], query["sv"],
        snapshot, query.get("si", ""), query.get("sip", ""), query.get("spr", ""), query.get("ses", ""),
        query.get("rscc", ""), query.get("rscd", ""), query.get("rsce", ""), query.get("rscl", ""), query.get("rsct", "")))
    if not hmac.compare_digest(expected, query["sig"]):
        return "signature mismatch"
    sp, st, se = query.get("sp", ""), query.get("st"), query.get("se")
    st = _parse_sas_time(st) if st else None
    se = _parse_sas_time(se) if se else None
    if query.get("si"):
        policy = (policies or {}).get(query["si"])
        if policy is None:
            return f"no stored access policy {query['si']}"
        sp = sp or policy.get("permissions") or ""
        st = st if st is not None else policy.get("start")
        se = se if se is not None else policy.get("expiry")
    if se is None:
        return "SAS has no expiry"
    now = time.time() if now is None else now
    if se <= now:
        return "SAS expired"
    if st is not None and st > now:
        return "SAS not yet valid"
    if any(p not in sp for p in need):
        return f"SAS lacks permission {need}"
    return None


def _die_with_parent():
    """preexec_fn: the child gets SIGKILL when the test process dies (Linux PR_SET_PDEATHSIG)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def parse_page_list(body):
    """(page ranges, clear ranges, next marker) of a Get Page Ranges answer: ranges as inclusive
    (start, end) byte pairs, in document order; the marker None when absent or empty."""
    root = ET.fromstring(body)
    pages, clears = [], []
    for el in root:
        if el.tag in ("PageRange", "ClearRange"):
            pair = (int(el.findtext("Start")), int(el.findtext("End")))
            (pages if el.tag == "PageRange" else clears).append(pair)
    return pages, clears, (root.findtext("NextMarker") or None)


class BlobError(AssertionError):
    def __init__(self, status, headers, body, what):
        self.status, self.headers, self.body = status, headers, body
        self.code = headers.get("x-ms-error-code")
        super().__init__(f"{what}: HTTP {status} {self.code}: {body[:500]!r}")


class Azurite:
    """azurite-blob on 127.0.0.1:<free port>, in memory, loose mode, any API version, telemetry
    off, debug log in <workdir>/azurite-debug.log. It gets SIGKILL if this process dies, and
    runs in its own process group, which stop() ends (SIGTERM, SIGKILL after 5 s).
    Attributes: url (http://127.0.0.1:PORT/devstoreaccount1), endpoint (without the account),
    host, port, account, key, version (Azurite's), debug_log, connection_string."""

    def __init__(self, workdir, timeout=30):
        self.workdir = pathlib.Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not os.access(AZURITE_BLOB, os.X_OK):
            raise AssertionError(f"{AZURITE_BLOB} missing: run scripts/setup (npm ci in tests/sim/azure)")
        self.account, self.key = ACCOUNT, ACCOUNT_KEY
        self.debug_log = self.workdir / "azurite-debug.log"
        self.stdout_path = self.workdir / "azurite.stdout"
        self.host = "127.0.0.1"
        self.version = json.loads((SIM_DIR / "node_modules" / "azurite" / "package.json").read_text())["version"]
        for attempt in range(3):  # the free port may be taken between the probe and the bind
            self.port = _free_port()
            if self._start(timeout):
                break
            if attempt == 2:
                raise AssertionError(f"azurite did not start: {self.stdout_path.read_text(errors='replace')}")
        self.endpoint = f"http://{self.host}:{self.port}"
        self.url = f"{self.endpoint}/{ACCOUNT}"

    def _start(self, timeout):
        args = [str(AZURITE_BLOB), "--blobHost", self.host, "--blobPort", str(self.port), "--loose",
                "--inMemoryPersistence", "--skipApiVersionCheck", "--disableTelemetry",
                "--debug", str(self.debug_log)]
        self._out = open(self.stdout_path, "wb")
        env = dict(os.environ)
        env.pop("AZURITE_ACCOUNTS", None)  # the default account and key only
        env.pop("AZURITE_DB", None)
        # SIGKILL when this process dies: util-linux's setpriv sets it and execs azurite (no
        # preexec_fn, which is unsafe with the threads fixture servers run); prctl otherwise.
        setpriv = shutil.which("setpriv")
        extra = {"preexec_fn": _die_with_parent} if setpriv is None else {}
        if setpriv is not None:
            args = [setpriv, "--pdeathsig", "KILL", "--"] + args
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=self._out, stderr=subprocess.STDOUT, cwd=str(self.workdir),
                                     env=env, start_new_session=True, **extra)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._out.close()
                return False
            try:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=2)
                conn.request("GET", f"/{ACCOUNT}?comp=list")
                conn.getresponse().read()
                conn.close()
                return True  # any HTTP answer (403 unsigned) means it listens
            except OSError:
                time.sleep(0.1)
        self._kill()
        self._out.close()
        raise AssertionError(f"azurite did not answer within {timeout}s: {self.stdout_path.read_text(errors='replace')}")

    def _kill(self):
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        except ProcessLookupError:
            self.proc.wait()

    @property
    def connection_string(self):
        """The account's connection string (as the Azure SDKs and tools take it)."""
        return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
                f"BlobEndpoint={self.url};")

    def stop(self):
        if self.proc.poll() is None:
            self._kill()
        if self.proc.stdin:
            self.proc.stdin.close()
        self._out.close()

    def alive(self):
        return self.proc.poll() is None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # ---- signed requests ----
    def path(self, container=None, blob=None):
        p = f"/{ACCOUNT}"
        if container:
            p += "/" + urllib.parse.quote(container, safe="")
        if blob:
            p += "/" + urllib.parse.quote(blob, safe="/~")
        return p

    def blob_url(self, container, blob, snapshot=None):
        url = self.endpoint + self.path(container, blob)
        return url + ("?snapshot=" + urllib.parse.quote(snapshot, safe="") if snapshot else "")

    def request(self, method, path, query=None, headers=None, body=b"", sign=True):
        """Sends one request (SharedKey-signed unless sign=False); returns (status, {lower-case
        header: value}, body bytes)."""
        query = dict(query or {})
        h = {"x-ms-version": SERVICE_VERSION, "x-ms-date": email.utils.formatdate(usegmt=True),
             "Content-Length": str(len(body))}
        h.update(headers or {})
        if sign:
            h["Authorization"] = shared_key_authorization(method, path, query, h)
        target = path + ("?" + urllib.parse.urlencode(query, quote_via=urllib.parse.quote) if query else "")
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            conn.request(method, target, body=body, headers=h)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def _ok(self, want, what, method, path, query=None, headers=None, body=b""):
        status, h, data = self.request(method, path, query, headers, body)
        if status not in want:
            raise BlobError(status, h, data, what)
        return h, data

    # ---- builders ----
    def create_container(self, name):
        self._ok((201,), f"create container {name}", "PUT", self.path(name), {"restype": "container"})

    def put_page_blob(self, container, name, size):
        """An empty page blob of `size` bytes (a multiple of 512)."""
        assert size % PAGE == 0, size
        self._ok((201,), f"put page blob {container}/{name}", "PUT", self.path(container, name), None,
                 {"x-ms-blob-type": "PageBlob", "x-ms-blob-content-length": str(size)})

    def write_pages(self, container, name, offset, data):
        """Put Page (update) of `data` at `offset` (both 512-aligned; Azure takes at most 4 MiB a call,
        so longer data is sent in 4 MiB pieces)."""
        assert offset % PAGE == 0 and len(data) % PAGE == 0 and data, (offset, len(data))
        for pos in range(0, len(data), 4 << 20):
            piece = data[pos:pos + (4 << 20)]
            start = offset + pos
            self._ok((201,), f"put page {container}/{name} @{start}", "PUT", self.path(container, name), {"comp": "page"},
                     {"x-ms-page-write": "update", "x-ms-range": f"bytes={start}-{start + len(piece) - 1}"}, piece)

    def clear_pages(self, container, name, offset, length):
        assert offset % PAGE == 0 and length % PAGE == 0 and length, (offset, length)
        self._ok((201,), f"clear pages {container}/{name} @{offset}", "PUT", self.path(container, name), {"comp": "page"},
                 {"x-ms-page-write": "clear", "x-ms-range": f"bytes={offset}-{offset + length - 1}"})

    def snapshot_blob(self, container, name):
        """Snapshot Blob; returns the snapshot's timestamp (x-ms-snapshot)."""
        h, _ = self._ok((201,), f"snapshot {container}/{name}", "PUT", self.path(container, name), {"comp": "snapshot"})
        return h["x-ms-snapshot"]

    def make_page_blob(self, container, name, data, size=None):
        """A page blob holding `data` (zero-padded to `size`, a multiple of 512); only the non-zero
        512-byte pages are written (in runs), so the holes stay unwritten."""
        size = size if size is not None else -(-len(data) // PAGE) * PAGE
        self.put_page_blob(container, name, size)
        for start, end in nonzero_runs(data):
            self.write_pages(container, name, start, bytes(data[start:end]).ljust(end - start, b"\0"))

    def get_page_ranges(self, container, name, snapshot=None, prevsnapshot=None, byte_range=None, marker=None,
                        maxresults=None, headers=None):
        """Get Page Ranges (comp=pagelist) as sent, without checking the status: (status, headers, body)."""
        query = {"comp": "pagelist"}
        for k, v in (("snapshot", snapshot), ("prevsnapshot", prevsnapshot), ("marker", marker), ("maxresults", maxresults)):
            if v is not None:
                query[k] = str(v)
        h = dict(headers or {})
        if byte_range is not None:
            h["x-ms-range"] = f"bytes={byte_range[0]}-{byte_range[1]}"
        return self.request("GET", self.path(container, name), query, h)

    def page_ranges(self, container, name, **kw):
        """All page ranges (following NextMarker): [(start, end inclusive)]."""
        out, marker = [], None
        while True:
            status, h, body = self.get_page_ranges(container, name, marker=marker, **kw)
            if status != 200:
                raise BlobError(status, h, body, f"get page ranges {container}/{name}")
            pages, _, marker = parse_page_list(body)
            out += pages
            if not marker:
                return out

    def read(self, container, name, snapshot=None, byte_range=None):
        query = {"snapshot": snapshot} if snapshot else None
        headers = {"x-ms-range": f"bytes={byte_range[0]}-{byte_range[1]}"} if byte_range else None
        _, data = self._ok((200, 206), f"get {container}/{name}", "GET", self.path(container, name), query, headers)
        return data

    def sas_url(self, container, blob, expiry=None, permissions="r", start=None, snapshot=None, resource=None,
                protocol=None, identifier=None, endpoint=None):
        """A service SAS URL for one blob (sr=b; sr=bs for a `snapshot` unless resource="b" is
        asked for). expiry: a datetime or Unix time, one hour from now by default. identifier: a
        stored access policy of the container (si=); then permissions and times come from the
        policy unless given. endpoint: another base (e.g. a CountingProxy's or a fixture's
        http://host:port) in place of Azurite's."""
        if identifier is None:
            expiry = time.time() + 3600 if expiry is None else expiry
        elif permissions == "r" and expiry is None:
            permissions = None  # all from the policy
        resource = resource or ("bs" if snapshot else "b")
        q = make_sas_query(container, blob, expiry, permissions, start, resource, snapshot, protocol, identifier)
        base = (endpoint or self.endpoint).rstrip("/") + self.path(container, blob)
        return base + "?" + (f"snapshot={urllib.parse.quote(snapshot, safe='')}&" if snapshot else "") + q

    def set_container_acl(self, container, policies):
        """Set Container ACL: the container's stored access policies, {identifier: {"permissions":
        "r", "start": time or None, "expiry": time}} (times: Unix or datetime). {} removes them all,
        which revokes every SAS that names one (si=)."""
        items = []
        for ident, p in policies.items():
            parts = [f"<Id>{ident}</Id><AccessPolicy>"]
            if p.get("start") is not None:
                parts.append(f"<Start>{sas_time(p['start'])}</Start>")
            if p.get("expiry") is not None:
                parts.append(f"<Expiry>{sas_time(p['expiry'])}</Expiry>")
            parts.append(f"<Permission>{p.get('permissions', 'r')}</Permission></AccessPolicy>")
            items.append("<SignedIdentifier>" + "".join(parts) + "</SignedIdentifier>")
        body = ('<?xml version="1.0" encoding="utf-8"?><SignedIdentifiers>' + "".join(items) + "</SignedIdentifiers>").encode()
        self._ok((200,), f"set container acl {container}", "PUT", self.path(container), {"restype": "container", "comp": "acl"},
                 {"Content-Type": "application/xml"}, body)

    def container_acl(self, container):
        """The container's stored access policies, as set_container_acl takes them (Unix times)."""
        _, body = self._ok((200,), f"get container acl {container}", "GET", self.path(container), {"restype": "container", "comp": "acl"})
        out = {}
        for si in ET.fromstring(body).iter("SignedIdentifier"):
            ap = si.find("AccessPolicy")
            get = lambda tag: (ap.findtext(tag) if ap is not None else None) or None  # noqa: E731
            out[si.findtext("Id")] = {"permissions": get("Permission") or "",
                                      "start": _parse_sas_time(get("Start")) if get("Start") else None,
                                      "expiry": _parse_sas_time(get("Expiry")) if get("Expiry") else None}
        return out

    def delete_blob(self, container, name):
        self._ok((202,), f"delete {container}/{name}", "DELETE", self.path(container, name), None, {"x-ms-delete-snapshots": "include"})

    def copy_page_blob(self, src_container, src_name, dst_container, dst_name, src_snapshot=None):
        """A new page blob with the same size and the same written pages (read and written here, so
        the copy is as sparse as the source). Returns its size."""
        query = {"snapshot": src_snapshot} if src_snapshot else None
        h, _ = self._ok((200,), f"head {src_container}/{src_name}", "HEAD", self.path(src_container, src_name), query)
        size = int(h["content-length"])
        self.put_page_blob(dst_container, dst_name, size)
        for start, end in self.page_ranges(src_container, src_name, snapshot=src_snapshot):
            for pos in range(start, end + 1, 4 << 20):
                last = min(end, pos + (4 << 20) - 1)
                self.write_pages(dst_container, dst_name, pos, self.read(src_container, src_name, src_snapshot, (pos, last)))
        return size

    # ---- the request log ----
    _LINE = re.compile(r"^(?P<time>\S+) (?P<rid>[0-9a-f-]{36}) \w+: (?P<msg>.*)$")
    _CONTEXT = re.compile(r"^BlobStorageContextMiddleware: RequestMethod=(?P<method>\S+) RequestURL=(?P<url>\S+) "
                          r"RequestHeaders:(?P<headers>\{.*\}) ClientIP=")
    _END = re.compile(r"^EndMiddleware: End response\. TotalTimeInMS=\d+ StatusCode=(?P<status>\d+)")
    _OPERATION = re.compile(r"^DispatchMiddleware: Operation=(?P<op>\S+)")

    def _sync_log(self, timeout=10):
        """Sends a marker request and waits for its answer's line in the debug log: every request
        answered before it has all its lines written by then (one log stream, in order). Returns the
        marker's request id."""
        marker = f"hsdk-sync-{uuid.uuid4().hex}"
        self.request("GET", f"/{ACCOUNT}", {"comp": "list", "hsdksync": marker}, sign=False)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.debug_log.read_text(errors="replace") if self.debug_log.exists() else ""
            m = re.search(r" ([0-9a-f-]{36}) \w+: BlobStorageContextMiddleware: RequestMethod=GET RequestURL=\S*" + marker, text)
            if m and re.search(re.escape(m.group(1)) + r" \w+: EndMiddleware: End response", text):
                return text
            time.sleep(0.05)
        raise AssertionError("azurite's debug log did not show the marker request")

    def requests(self, since=None):
        """The requests Azurite answered, oldest first, from its debug log: dicts with time (Unix
        seconds, Azurite's clock, ms resolution), request_id, method, path, query ({name: value},
        decoded), range (the Range header or None), x_ms_range, headers (all of them, lower-case;
        includes Authorization), operation (e.g. "PageBlob_GetPageRanges"), status (None if not yet
        answered). since: only requests that arrived at or after this Unix time (take time.time()
        before the requests to count)."""
        text = self._sync_log()
        reqs, by_id = [], {}
        for line in text.splitlines():
            m = self._LINE.match(line)
            if not m:
                continue
            rid, msg = m.group("rid"), m.group("msg")
            c = self._CONTEXT.match(msg)
            if c:
                split = urllib.parse.urlsplit(c.group("url"))
                query = {k: v[0] if len(v) == 1 else v for k, v in urllib.parse.parse_qs(split.query, keep_blank_values=True).items()}
                if "hsdksync" in query:
                    continue
                headers = json.loads(c.group("headers"))
                t = datetime.datetime.strptime(m.group("time"), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp()
                r = {"time": t, "request_id": rid, "method": c.group("method"), "path": urllib.parse.unquote(split.path),
                     "query": query, "range": headers.get("range"), "x_ms_range": headers.get("x-ms-range"),
                     "headers": headers, "operation": None, "status": None}
                reqs.append(r)
                by_id[rid] = r
                continue
            r = by_id.get(rid)
            if r is None:
                continue
            e = self._END.match(msg)
            if e:
                r["status"] = int(e.group("status"))
                continue
            o = self._OPERATION.match(msg)
            if o:
                r["operation"] = o.group("op")
        if since is not None:
            since = since.timestamp() if isinstance(since, datetime.datetime) else since
            reqs = [r for r in reqs if r["time"] >= since - 0.001]
        return reqs


def nonzero_runs(data, page=PAGE):
    """[(start, end exclusive)] of the runs of 512-byte pages of `data` holding a non-zero byte."""
    runs, start = [], None
    for off in range(0, len(data), page):
        chunk = data[off:off + page]
        nonzero = chunk.count(0) != len(chunk)
        if nonzero and start is None:
            start = off
        elif not nonzero and start is not None:
            runs.append((start, off))
            start = None
    if start is not None:
        runs.append((start, -(-len(data) // page) * page))
    return runs


# ---- a counting reverse proxy -----------------------------------------------------------------
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 120

    def log_message(self, format, *args):
        pass

    def _upstream(self):
        if getattr(self, "_conn", None) is None:
            p = self.server.proxy
            self._conn = http.client.HTTPConnection(p.upstream_host, p.upstream_port, timeout=120)
        return self._conn

    def _handle(self):
        proxy = self.server.proxy
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = self._read_chunked()
        else:
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else b""
        split = urllib.parse.urlsplit(self.path)
        record = {"method": self.command, "path": urllib.parse.unquote(split.path),
                  "query": {k: v[0] if len(v) == 1 else v for k, v in urllib.parse.parse_qs(split.query, keep_blank_values=True).items()},
                  "range": self.headers.get("Range"), "x_ms_range": self.headers.get("x-ms-range"), "status": None}
        with proxy.lock:
            proxy.calls.append(record)
        headers = [(k, v) for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP and k.lower() != "host"]
        headers.append(("Host", f"{proxy.upstream_host}:{proxy.upstream_port}"))
        if body or self.command in ("PUT", "POST", "PATCH"):
            headers = [(k, v) for k, v in headers if k.lower() != "content-length"] + [("Content-Length", str(len(body)))]
        for attempt in (0, 1):  # a kept-alive upstream connection Azurite closed: one fresh try
            conn = self._upstream()
            try:
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for k, v in headers:
                    conn.putheader(k, v)
                conn.endheaders(body if body else None)
                resp = conn.getresponse()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                conn.close()
                self._conn = None
                if attempt:
                    raise
        record["status"] = resp.status
        self.send_response_only(resp.status, resp.reason)
        length = resp.getheader("Content-Length")
        for k, v in resp.getheaders():
            if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length":
                self.send_header(k, v)
        if self.command == "HEAD" or resp.status in (204, 304):
            if length is not None:
                self.send_header("Content-Length", length)
            self.end_headers()
            resp.read()
            return
        if length is not None:  # streamed through as it comes
            self.send_header("Content-Length", length)
            self.end_headers()
            while True:
                chunk = resp.read(65536)
                if not chunk:
                    break
                self.wfile.write(chunk)
        else:  # chunked upstream: read whole (small XML answers), sent with a length
            data = resp.read()
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        if resp.will_close:
            self._conn.close()
            self._conn = None

    def _read_chunked(self):
        parts = []
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline()

    def finish(self):
        super().finish()
        if getattr(self, "_conn", None) is not None:
            self._conn.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _handle


class CountingProxy:
    """A reverse proxy on 127.0.0.1:<free port> that forwards every request verbatim (method, path,
    query, headers but Host and hop-by-hop ones, body) to `upstream_url` (http://host:port[/...];
    only scheme, host and port are used) and records, in .calls, dicts with method, path, query
    ({name: value}), range, x_ms_range (the headers as sent, or None) and status. SharedKey and SAS
    signatures stay valid: neither signs the host. .endpoint is http://127.0.0.1:PORT; .url is the
    endpoint plus the upstream URL's path (e.g. .../devstoreaccount1)."""

    def __init__(self, upstream_url):
        up = urllib.parse.urlsplit(upstream_url)
        self.upstream_host, self.upstream_port = up.hostname, up.port or 80
        self.calls = []
        self.lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _ProxyHandler)
        self._httpd.daemon_threads = True
        self._httpd.proxy = self
        self.port = self._httpd.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.url = self.endpoint + up.path.rstrip("/")
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def reset(self):
        with self.lock:
            self.calls.clear()

    def ranged_gets(self, path_regex=""):
        """The (Range or x-ms-range) values of recorded GETs whose path matches, in order."""
        pattern = re.compile(path_regex)
        with self.lock:
            return [c["x_ms_range"] or c["range"] for c in self.calls
                    if c["method"] == "GET" and pattern.search(c["path"]) and (c["x_ms_range"] or c["range"])]

    def stop(self):
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=10)
            self._httpd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
