"""A loopback HTTP/1.1 file server for the tests that read disk images over http(s) with Range
requests: serves the files under one folder on 127.0.0.1 (a free port), optionally with TLS,
counts what it does and can be told to misbehave (no Range support, 503s, connections cut short,
stalls, required headers, 403s).

    with RangeServer(tmp_path) as srv:
        hsdk("info", srv.url("disk.vhdx"))
        assert srv.connections == 1

Python standard library only."""
import os
import socket
import ssl
import threading
import time
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHUNK = 256 << 10


def _parse_range(value, size):
    """Returns (start, end) inclusive for a single satisfiable byte range, "unsatisfiable", or None
    when the header should be ignored (absent, malformed, another unit, several ranges)."""
    if value is None:
        return None
    unit, sep, spec = value.strip().partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    spec = spec.strip()
    if "," in spec:
        return None  # several ranges: answered with the whole body
    first, dash, last = spec.partition("-")
    first, last = first.strip(), last.strip()
    if not dash or (first and not first.isdigit()) or (last and not last.isdigit()):
        return None
    if not first:
        if not last:
            return None
        n = int(last)  # suffix: the last n bytes
        if n == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - n), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None  # invalid range spec: ignored
    if start >= size:
        return "unsatisfiable"
    return start, min(end, size - 1)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "RangeServer/1"
    timeout = 120  # an idle keep-alive connection is dropped after this long

    def log_message(self, format, *args):
        pass

    def setup(self):
        super().setup()
        self.server.rs._track(self.connection, True)

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.rs._track(self.connection, False)

    def handle(self):
        try:
            super().handle()
        except (ConnectionError, ssl.SSLError, socket.timeout, OSError):
            self.close_connection = True

    def do_GET(self):
        self._serve(head=False)

    def do_HEAD(self):
        self._serve(head=True)

    # --- helpers -----------------------------------------------------------------------------

    def _record(self, status, name=None):
        rs = self.server.rs
        with rs._lock:
            rs.requests.append({
                "method": self.command,
                "path": self.path,
                "name": name,
                "range": self.headers.get("Range"),
                "status": status,
                "headers": dict(self.headers.items()),
            })

    def _small(self, status, text, extra=(), head=False):
        body = (text + "\n").encode()
        self.send_response(status)
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self._write(body)

    def _write(self, data):
        self.wfile.write(data)
        rs = self.server.rs
        with rs._lock:
            rs.bytes_sent += len(data)

    def _resolve(self):
        """The file's relative name and absolute path, or (name, None) when it is outside the root."""
        raw = urllib.parse.urlsplit(self.path).path
        name = urllib.parse.unquote(raw).lstrip("/")
        root = self.server.rs.root
        full = os.path.realpath(os.path.join(root, name))
        if full != root and os.path.commonpath([root, full]) != root:
            return name, None
        return name, full

    def _serve(self, head):
        rs = self.server.rs
        with rs._lock:
            rs.active += 1
            rs.peak_active = max(rs.peak_active, rs.active)
        try:
            if rs.latency_seconds:
                time.sleep(rs.latency_seconds)  # a distant server: every request waits this long first
            self._serve_request(head)
        finally:
            with rs._lock:
                rs.active -= 1

    def _serve_request(self, head):
        rs = self.server.rs
        name, full = self._resolve()

        if rs._take("fail_next"):
            self._record(503, name)
            self._small(503, "service unavailable (injected)", [("Retry-After", "0")], head)
            return

        req = rs.require_header
        if req is not None and self.headers.get(req[0]) != req[1]:
            self._record(401, name)
            self._small(401, "unauthorized", [("WWW-Authenticate", "Bearer")], head)
            return

        if name in rs.forbidden_paths or ("/" + name) in rs.forbidden_paths:
            self._record(403, name)
            self._small(403, "forbidden", (), head)
            return

        if full is None or not os.path.isfile(full):
            self._record(404, name)
            self._small(404, "not found", (), head)
            return

        try:
            f = open(full, "rb")
        except OSError:
            self._record(404, name)
            self._small(404, "not found", (), head)
            return
        with f:
            size = os.fstat(f.fileno()).st_size
            rng = None if rs.ignore_range else _parse_range(self.headers.get("Range"), size)
            if rng == "unsatisfiable":
                self._record(416, name)
                self._small(416, "range not satisfiable", [("Content-Range", f"bytes */{size}")], head)
                return

            if rng is None:
                status, start, length = 200, 0, size
            else:
                status, start, length = 206, rng[0], rng[1] - rng[0] + 1
            self._record(status, name)

            reset = stall = False
            if not head:
                reset = rs._take("reset_next")
                stall = rs._take("stall_next")

            self.send_response(status)
            if rs.accept_ranges is not None:
                self.send_header("Accept-Ranges", rs.accept_ranges)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(length))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{start + length - 1}/{size}")
            self.end_headers()
            if head:
                return

            if stall:
                self.wfile.flush()
                time.sleep(rs.stall_seconds)

            remaining = length
            if reset:
                half = length // 2
                remaining = half if rs.reset_after is None else max(0, min(half, rs.reset_after))
            f.seek(start)
            while remaining > 0:
                data = f.read(min(CHUNK, remaining))
                if not data:
                    break  # file shrank under us: the client sees a short body
                self._write(data)
                remaining -= len(data)

            if reset:
                self.close_connection = True
                self.wfile.flush()
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)  # FIN without the rest of the body
                except OSError:
                    pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, rs):
        self.rs = rs
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request, client_address):
        with self.rs._lock:
            self.rs.connections += 1
        super().process_request(request, client_address)

    def handle_error(self, request, client_address):
        import sys
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, ssl.SSLError, socket.timeout, OSError)):
            return
        traceback.print_exc()


class RangeServer:
    """Serves root_dir on http://127.0.0.1:<port>/ (https with tls=(certfile, keyfile)).

    Counters (reset with reset_counters()): bytes_sent, connections, requests (dicts with method,
    path, name, range, status, headers). Knobs, plain attributes that may change while running:
    ignore_range, fail_next, reset_next (+ reset_after), stall_next (+ stall_seconds),
    require_header, forbidden_paths, accept_ranges, latency_seconds; peak_active counts the most
    requests answered at once."""

    def __init__(self, root_dir, tls=None):
        self.root = os.path.realpath(os.fspath(root_dir))
        self.tls = tls
        self._lock = threading.Lock()
        self._open = set()
        self._server = None
        self._thread = None
        self.port = None

        self.bytes_sent = 0
        self.connections = 0
        self.requests = []

        self.ignore_range = False      # answer every GET with 200 and the whole file
        self.fail_next = 0             # next N requests: 503
        self.reset_next = 0            # next N body GETs: headers, part of the body, then cut
        self.reset_after = None        # bytes sent before the cut (None: half the body; capped at half)
        self.stall_next = 0            # next N body GETs: sleep stall_seconds before the body
        self.stall_seconds = 0.0
        self.require_header = None     # (name, value): others get 401 WWW-Authenticate: Bearer
        self.forbidden_paths = set()   # names (relative to root, with or without leading '/') -> 403
        self.accept_ranges = "bytes"   # Accept-Ranges header value; None leaves it out
        self.latency_seconds = 0.0     # every request waits this long before it is answered
        self.active = 0                # requests being answered now
        self.peak_active = 0           # the most answered at once (since reset_counters)

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self):
        self._server = _Server(self)
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*self.tls)
            # The handshake happens in the connection's own thread (on its first read), so a slow
            # client never holds up accept().
            self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True,
                                                  do_handshake_on_connect=False)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"RangeServer:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._server is None:
            return
        self._server.shutdown()
        self._thread.join(timeout=10)
        with self._lock:
            conns = list(self._open)
        for c in conns:  # drop idle keep-alive connections so their threads end
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._server.server_close()
        self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # --- addresses -----------------------------------------------------------------------------

    @property
    def scheme(self):
        return "https" if self.tls else "http"

    @property
    def base(self):
        return f"{self.scheme}://127.0.0.1:{self.port}/"

    def url(self, name):
        return self.base + urllib.parse.quote(os.fspath(name).lstrip("/"))

    # --- counters ------------------------------------------------------------------------------

    def reset_counters(self):
        with self._lock:
            self.bytes_sent = 0
            self.connections = 0
            self.peak_active = 0
            self.requests.clear()

    def statuses(self):
        """The statuses of the recorded requests, in order."""
        with self._lock:
            return [r["status"] for r in self.requests]

    def _take(self, knob):
        """Consumes one unit of a fail_next-style knob; True if it was positive."""
        with self._lock:
            n = getattr(self, knob)
            if n and n > 0:
                setattr(self, knob, n - 1)
                return True
            return False

    def _track(self, conn, opened):
        with self._lock:
            if opened:
                self._open.add(conn)
            else:
                self._open.discard(conn)
