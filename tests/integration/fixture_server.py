"""A recording loopback HTTP/1.1 fixture server: answers requests from a list of routes shaped
like a platform's API reference (AWS EC2 XML, EBS JSON, S3, Azure, ...) and records every request.

    routes = [
        Route("POST", r"^/$", {"status": 200, "headers": {"Content-Type": "text/xml"}, "body": XML},
              when=lambda r: r.form.get("Action") == "DescribeSnapshots"),
        Route("GET", r"^/snapshots/(?P<id>[^/]+)/blocks$", [resp_pending, resp_done]),  # in sequence, last repeats
        Route("GET", r"^/snapshots/.*/blocks/\\d+$", lambda req: Response(200, {}, b"..." )),
    ]
    with FixtureServer(routes) as srv:
        ... srv.url ...
        assert srv.count("GET", r"/blocks$") == 2
        assert not srv.unmatched

Credentials (Authorization, x-amz-security-token, cookies, OpenStack's X-Auth-Token, ...) are kept out of
Request.headers and so out of the record; a route callable that checks them reads Request.secrets.

A route is a Route (or a tuple (method, path regex[, predicate], responder)). The method may be
"*". The regex is matched (re.search) against the path without the query. The predicate gets the
Request (query, headers, body, form, json) and says whether the route applies. A responder is
  - a Response, or a dict {"status", "headers", "body"} (body: bytes, str, or a dict/list sent as
    JSON with Content-Type application/json unless headers give one), or a tuple
    (status, headers, body);
  - a list of those, served in sequence (the last one repeats);
  - a callable(Request) returning one of those.
A body may also be a Stream: pieces sent as they come (a generator may sleep between them), under
the Content-Length the Stream announces; when fewer bytes were sent than announced the connection is
closed (a truncated or dropped download), and Stream.sent tells how many went out.
The first matching route answers. Unmatched requests get 404 with a JSON body naming the request
and are kept in .unmatched (and .calls). Every answer has a Content-Length (the body's; for HEAD, the
one the responder gives, if any); connections are kept
alive (HTTP/1.1). Python standard library only."""
import json
import re
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_HIDDEN_HEADERS = {"authorization", "x-amz-security-token", "proxy-authorization", "cookie", "ocp-apim-subscription-key",
                   "x-auth-token", "x-subject-token"}


class Request:
    """A received request. headers: a dict with lower-case names (Authorization and other secrets
    removed); query: {name: value} (a list when a name repeats); body: bytes. secrets: the removed
    headers ({lower-case name: value}), for route callables that check credentials; never part of
    to_dict() or repr()."""

    def __init__(self, method, path, query, headers, body, raw_path, secrets=None):
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.raw_path = raw_path
        self.secrets = dict(secrets or {})
        self.route = None  # index of the route that answered, None when unmatched

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    @property
    def form(self):
        """The body as an application/x-www-form-urlencoded form (EC2/IAM/STS query calls)."""
        return _single(urllib.parse.parse_qs(self.text, keep_blank_values=True))

    @property
    def json(self):
        return json.loads(self.body) if self.body else None

    def to_dict(self):
        return {"method": self.method, "path": self.path, "query": self.query, "headers": self.headers,
                "body": self.body, "route": self.route}

    def __repr__(self):
        return f"Request({self.method} {self.raw_path})"


class Stream:
    """A response body sent piece by piece. chunks: an iterable of bytes (a generator may sleep
    between pieces, or end early); length: the Content-Length announced (None: the body ends when
    the connection closes); close: close the connection after the body even when it was complete.
    After the answer, sent is the number of body bytes written and cut says whether the connection
    was closed early (fewer bytes than announced, or the client went away)."""

    def __init__(self, chunks, length=None, close=False):
        self.chunks = chunks
        self.length = length
        self.close = close
        self.sent = 0
        self.cut = False


class Response:
    def __init__(self, status=200, headers=None, body=b""):
        self.status = status
        self.headers = dict(headers or {})
        self.body = body

    @classmethod
    def of(cls, value):
        if isinstance(value, Response):
            return value
        if isinstance(value, dict) and "status" in value:
            return cls(value["status"], value.get("headers"), value.get("body", b""))
        if isinstance(value, tuple):
            return cls(*value)
        raise TypeError(f"not a response: {value!r}")

    def encoded(self):
        headers = dict(self.headers)
        body = self.body
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            if not any(k.lower() == "content-type" for k in headers):
                headers["Content-Type"] = "application/json"
        elif isinstance(body, str):
            body = body.encode()
        elif body is None:
            body = b""
        elif isinstance(body, Stream):
            return self.status, headers, body
        return self.status, headers, bytes(body)


class Route:
    def __init__(self, method, path, responder, when=None):
        self.method = method.upper()
        self.pattern = re.compile(path)
        self.responder = responder
        self.when = when
        self._served = 0
        self._lock = threading.Lock()

    @classmethod
    def of(cls, value):
        if isinstance(value, Route):
            return value
        if len(value) == 3:
            return cls(value[0], value[1], value[2])
        if len(value) == 4:
            return cls(value[0], value[1], value[3], when=value[2])
        raise TypeError(f"not a route: {value!r}")

    def matches(self, request):
        if self.method not in ("*", request.method):
            return False
        if not self.pattern.search(request.path):
            return False
        return self.when is None or bool(self.when(request))

    def respond(self, request):
        responder = self.responder
        if isinstance(responder, list):
            with self._lock:
                i = min(self._served, len(responder) - 1)
                self._served += 1
            responder = responder[i]
        if callable(responder) and not isinstance(responder, (Response, dict, tuple)):
            responder = responder(request)
        return Response.of(responder)


def _single(parsed):
    return {k: v[0] if len(v) == 1 else v for k, v in parsed.items()}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FixtureServer/1"
    timeout = 120

    def log_message(self, format, *args):
        pass

    def _handle(self):
        srv = self.server.fixture
        split = urllib.parse.urlsplit(self.path)
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = self._read_chunked()
        else:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items() if k.lower() not in _HIDDEN_HEADERS}
        secrets = {k.lower(): v for k, v in self.headers.items() if k.lower() in _HIDDEN_HEADERS}
        query = _single(urllib.parse.parse_qs(split.query, keep_blank_values=True))
        request = Request(self.command, urllib.parse.unquote(split.path), query, headers, body, self.path, secrets)
        response = None
        # Recorded as it arrives, so that a request still being answered (a stall) counts too.
        with srv.lock:
            srv.calls.append(request)
        for i, route in enumerate(srv.routes):
            if route.matches(request):
                request.route = i
                try:
                    response = route.respond(request)
                except Exception as e:  # a broken fixture answers 500, naming the error
                    response = Response(500, {}, {"fixture_error": f"{type(e).__name__}: {e}"})
                break
        if request.route is None:
            with srv.lock:
                srv.unmatched.append(request)
        if response is None:
            response = Response(404, {}, {"error": "no fixture route matches", "method": request.method,
                                          "path": request.path, "query": request.query})
        status, out_headers, data = response.encoded()
        if isinstance(data, Stream):
            self._send_stream(status, out_headers, data)
            return
        self.send_response(status)
        length = str(len(data))
        for k, v in out_headers.items():
            if k.lower() != "content-length":
                self.send_header(k, v)
            elif self.command == "HEAD":
                length = str(v)  # a HEAD answer tells the length a GET would have
        self.send_header("Content-Length", length)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _send_stream(self, status, out_headers, stream):
        self.send_response(status)
        for k, v in out_headers.items():
            if k.lower() != "content-length":
                self.send_header(k, v)
        if stream.length is not None:
            self.send_header("Content-Length", str(stream.length))
        else:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command == "HEAD":
            return
        pieces = iter(stream.chunks)
        try:
            for piece in pieces:
                if piece:
                    self.wfile.write(piece)
                    stream.sent += len(piece)
        except OSError:  # the client went away (a cancel): nothing more to send
            stream.cut = True
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()
        if stream.length is not None and stream.sent != stream.length:
            stream.cut = True
        if stream.cut or stream.close or stream.length is None:
            self.close_connection = True

    def _read_chunked(self):
        parts = []
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline()

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _handle


class FixtureServer:
    def __init__(self, routes=()):
        self.routes = [Route.of(r) for r in routes]
        self.calls = []
        self.unmatched = []
        self.lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.fixture = self
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def add(self, *routes):
        """Appends routes (they match after the existing ones)."""
        self.routes.extend(Route.of(r) for r in routes)

    def count(self, method, path_regex):
        """How many recorded requests had this method ("*": any) and a path matching the regex."""
        pattern = re.compile(path_regex)
        with self.lock:
            return sum(1 for r in self.calls if method.upper() in ("*", r.method) and pattern.search(r.path))

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
