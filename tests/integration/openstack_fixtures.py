"""OpenStack fixtures for tests/integration/fixture_server.py: Keystone v3 tokens (password and
application credentials) with a service catalog, Nova Compute v2.1 (servers, flavors, interfaces,
volume attachments, createImage), Cinder Block Storage v3 (volumes, os-volume_upload_image) and
Glance Image v2 (images, their data with Range requests, delete), shaped like the OpenStack API
references. One FixtureServer serves every service; the catalog points back at it:

    identity   {url}/identity/v3
    compute    {url}{prefix}/compute/v2.1
    image      {url}{prefix}/image                    (Glance paths are /v2/... under it)
    volumev3   {url}{prefix}/volume/v3/{project_id}

where prefix names the endpoint's region and interface (endpoint_prefix): "" for RegionOne public,
"/internal", "/admin", "/r2" for RegionTwo public, "/r2-internal", "/r2-admin". Every server,
volume and image belongs to one region and is only seen through that region's endpoints, and
state.endpoint_calls counts calls per (region, interface, service), so a test proves which
endpoints a client used.

    state = OpenStackState()
    plant_standard(state, web01_root="planted.raw", db01_boot=..., db01_data=...)
    with serve(state) as srv:                    # state.url = srv.url
        env = os_env(state)                      # OS_AUTH_URL, OS_USERNAME, OS_PASSWORD, ...
        ... client ...
        assert not state.images_left() and state.tokens_issued == 1

attach(state, srv) points an already running FixtureServer at a fresh state instead (one server per
module or session: stopping one takes half a second). os_vars / os_env give the OS_* variables,
write_clouds_yaml a clouds.yaml (with a decoy entry whose password is wrong).

Every route but Keystone's POST /identity/v3/auth/tokens and the version documents needs a valid
X-Auth-Token (fixture_server keeps that header out of the record; Keystone's handler replaces the
passwords and secrets in its recorded request body with "***"), else 401 as keystonemiddleware
answers.

Knobs (attributes of OpenStackState, in effect from the next request):
  token_lifetime (seconds, default 3600; expires_at says when), revoke_at ({route key: n}: every
    token issued so far is revoked when the n-th call of that route arrives, so that call and later
    ones with an old token answer 401 and the client must authenticate again),
  page_size (Nova's osapi_max_limit: servers per page when the client asks for more or gives no
    limit; default 2, so servers_links paging is exercised),
  image_polls (how many GETs of a new image see it not yet done: queued first, then saving;
    default 2), image_final ("active", "killed", or "deleted": the image vanishes, as when Nova
    deletes a failed snapshot),
  enable_force_upload (Cinder's option: force=true uploads an in-use volume; default True),
  chunk_size, chunk_delay (bytes per piece of an image download and seconds slept between pieces:
    a slow link), drop_after + drop_times (the next drop_times downloads send drop_after body bytes
    then close the connection; default once), truncate_at (every download stops at this image
    offset and closes), corrupt_at (the byte at this image offset is flipped in every download:
    a checksum mismatch), file_head_allowed (HEAD on /file; Glance answers 405, the default),
  fail ({route key: [status, ...]}: the next calls of that route answer these statuses in the
    service's error shape), omit_services (catalog types left out),
  image_endpoint_override (a URL, default None: the catalog's RegionOne image endpoints, public,
    internal and admin, are that URL, e.g. a real Glance's (tests/integration/glance_sim.py);
    RegionTwo's stay the fixture's).
Records: state.calls (Counter per route key), state.endpoint_calls, state.token_log (one entry per
token issued: method, user, project), state.downloads (one dict per image download: image, range
header, status, start, length, cut, stream), state.created_images, state.deleted_images (by
DELETE), state.vanished_images (final "deleted"), state.volume_uploads, state.nova_volume_snapshots
(createImage of a volume-backed server: the BDM snapshot image a client must not use).
Route keys: auth_tokens, versions, list_servers, get_server, server_action, os_interface,
volume_attachments, get_flavor, list_flavors, get_volume, list_volumes, volume_action, get_image,
list_images, image_file, delete_image.
"""
import base64
import datetime
import hashlib
import json
import os
import pathlib
import re
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from dataclasses import dataclass, field

from fixture_server import FixtureServer, Response, Route, Stream

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30

REGIONS = ("RegionOne", "RegionTwo")
INTERFACES = ("public", "internal", "admin")
NOVA_MIN, NOVA_MAX = (2, 1), (2, 96)  # 2024.1 (Caracal)
CINDER_MIN, CINDER_MAX = (3, 0), (3, 70)
UNAUTHORIZED_MESSAGE = "The request you have made requires authentication."
ROUTE_KEYS = ("auth_tokens", "versions", "list_servers", "get_server", "server_action", "os_interface", "volume_attachments",
              "get_flavor", "list_flavors", "get_volume", "list_volumes", "volume_action", "get_image", "list_images",
              "image_file", "delete_image")


def endpoint_prefix(region, interface):
    """The path prefix of a region's and interface's endpoints ("" for RegionOne public)."""
    prefix = "" if region == "RegionOne" else "/r2"
    if interface != "public":
        prefix += ("-" if prefix else "/") + interface
    return prefix


_PREFIXES = {endpoint_prefix(r, i): (r, i) for r in REGIONS for i in INTERFACES}
_EP = r"^(?P<ep>/(?:r2-internal|r2-admin|r2|internal|admin))?"


# ---- time stamps as each service writes them -----------------------------------------------------
def _utc(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc)


def keystone_time(t):
    return _utc(t).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _iso_z(t):  # Nova and Glance
    return _utc(t).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cinder_time(t):
    return _utc(t).strftime("%Y-%m-%dT%H:%M:%S.%f")


def _hex_id():
    return uuid.uuid4().hex


# ---- contents ------------------------------------------------------------------------------------
_DIGESTS = {}
_DIGEST_WAITS = {}
_DIGEST_LOCK = threading.Lock()
_ZEROS = bytes(4 * MiB)


class Blob:
    """The bytes of a disk or image: `source` (bytes, or the path of a file read when needed)
    followed by zeros up to `size` (default: the source's length). md5 and sha512 are computed
    once per content and size for the whole session (a 1 GiB volume takes seconds)."""

    def __init__(self, source=b"", size=None):
        if isinstance(source, (str, os.PathLike)):
            self.path, self.data = pathlib.Path(source), None
            st = self.path.stat()
            self.data_len = st.st_size
            key = ("path", str(self.path.resolve()), st.st_mtime_ns, st.st_size)
        else:
            self.path, self.data = None, bytes(source)
            self.data_len = len(self.data)
            key = ("bytes", hashlib.sha1(self.data).hexdigest())
        self.size = self.data_len if size is None else int(size)
        if self.size < self.data_len:
            raise ValueError(f"a blob of {self.size} bytes cannot hold {self.data_len} bytes of content")
        self._key = key + (self.size,)

    def read(self, offset, length):
        end = min(offset + length, self.size)
        if offset >= end:
            return b""
        out = b""
        if offset < self.data_len:
            n = min(end, self.data_len) - offset
            if self.data is not None:
                out = self.data[offset:offset + n]
            else:
                with open(self.path, "rb") as f:
                    f.seek(offset)
                    out = f.read(n)
        missing = end - offset - len(out)
        return out + (_ZEROS[:missing] if missing <= len(_ZEROS) else bytes(missing))

    def content(self):
        """All the bytes (for small blobs in tests)."""
        return self.read(0, self.size)

    def digests(self):
        """(md5 hex, sha512 hex) of the whole blob."""
        with _DIGEST_LOCK:
            if self._key in _DIGESTS:
                return _DIGESTS[self._key]
            wait = _DIGEST_WAITS.get(self._key)
            owner = wait is None
            if owner:
                wait = _DIGEST_WAITS[self._key] = threading.Event()
        if not owner:
            wait.wait()
            return _DIGESTS[self._key]
        try:
            md5, sha = hashlib.md5(), hashlib.sha512()
            pos, step = 0, 4 * MiB
            while pos < self.size:
                piece = self.read(pos, step)
                md5.update(piece)
                sha.update(piece)
                pos += len(piece)
            result = (md5.hexdigest(), sha.hexdigest())
            with _DIGEST_LOCK:
                _DIGESTS[self._key] = result
            return result
        finally:
            with _DIGEST_LOCK:
                _DIGEST_WAITS.pop(self._key, None)
            wait.set()

    def prewarm(self):
        """Computes the digests in the background (a big volume's, before a client asks)."""
        threading.Thread(target=self.digests, daemon=True).start()


def as_blob(content, size=None):
    if content is None or isinstance(content, Blob):
        return content
    return Blob(content, size)


# ---- the planted cloud -----------------------------------------------------------------------------
@dataclass
class Flavor:
    id: str
    name: str
    vcpus: int
    ram: int  # MiB
    disk: int  # GiB of the root disk
    ephemeral: int = 0
    swap: int = 0  # MiB
    extra_specs: dict = field(default_factory=dict)


@dataclass
class Port:
    mac: str  # "fa:16:3e:12:34:56"
    ip: str = "10.0.0.10"
    network: str = "private"
    port_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    state: str = "ACTIVE"

    @property
    def net_id(self):
        return str(uuid.uuid5(uuid.NAMESPACE_URL, "hsdk-net:" + self.network))

    @property
    def subnet_id(self):
        return str(uuid.uuid5(uuid.NAMESPACE_URL, "hsdk-subnet:" + self.network))


@dataclass
class Volume:
    name: str
    size: int  # GiB
    content: Blob = None  # None: all zeros
    bootable: bool = False
    status: str = "available"
    image_metadata: dict = None  # volume_image_metadata of a volume made from an image
    volume_type: str = "__DEFAULT__"
    availability_zone: str = "nova"
    region: str = "RegionOne"
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created: float = field(default_factory=time.time)
    attachments: list = field(default_factory=list)  # [{"server_id", "device", "attachment_id", "attached_at"}]
    previous_status: str = None

    def blob(self):
        """The volume's bytes: its content padded with zeros to its size."""
        src = self.content
        if src is None:
            return Blob(b"", self.size * GiB)
        if src.size == self.size * GiB:
            return src
        return Blob(src.path if src.path is not None else src.data, self.size * GiB)


@dataclass
class Image:
    name: str
    blob: Blob = None
    disk_format: str = "raw"
    container_format: str = "bare"
    status: str = "active"
    visibility: str = "private"
    owner: str = None
    properties: dict = field(default_factory=dict)
    min_disk: int = 0
    min_ram: int = 0
    protected: bool = False
    region: str = "RegionOne"
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created: float = field(default_factory=time.time)
    updated: float = None
    ours: bool = False  # made by a client through Nova's createImage or Cinder's upload
    origin: str = "planted"  # "nova", "nova-bdm" (a volume-backed server's snapshot), "cinder"
    server_id: str = None
    volume_id: str = None
    pending: list = field(default_factory=list)  # statuses the next polls see
    final: str = "active"
    polls: int = 0
    finishing: bool = False
    checksum: str = None
    os_hash_value: str = None

    @property
    def size(self):
        if self.status != "active" or self.blob is None:
            return None
        return self.blob.size


@dataclass
class Server:
    name: str
    flavor: Flavor
    root: Blob = None  # an image-backed server's root disk (what its snapshot holds); None: volume-backed
    image: Image = None  # the image an image-backed server was booted from
    volumes: list = field(default_factory=list)  # [(device, Volume, delete_on_termination)]
    ports: list = field(default_factory=list)
    status: str = "ACTIVE"
    availability_zone: str = "nova"
    metadata: dict = field(default_factory=dict)
    region: str = "RegionOne"
    snapshot_disk_format: str = "raw"
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created: float = field(default_factory=time.time)

    @property
    def volume_backed(self):
        return self.root is None


class OpenStackState:
    """One cloud: a domain, a project, a user with a password and an application credential, the
    flavors, servers, volumes and images, and everything the client did. See the module doc for
    the knobs."""

    def __init__(self, username="hsdk-user", password="hsdk-fixture-password", project_name="hsdk-project",
                 app_credential_secret="hsdk-fixture-app-credential-secret", page_size=2):
        self.lock = threading.RLock()
        self.url = None  # the FixtureServer's base URL (serve sets it); else taken from the Host header
        self.srv = None
        self.domains = {"default": "Default"}  # id -> name
        self.projects = {}  # id -> {"id", "name", "domain_id"}
        self.users = {}  # id -> {"id", "name", "domain_id", "password", "default_project_id", "projects"}
        self.app_credentials = {}  # id -> {"id", "name", "secret", "user_id", "project_id"}
        self.flavors, self.servers, self.volumes, self.images = {}, {}, {}, {}  # id -> object
        project = self.add_project(project_name)
        self.other_project = self.add_project("hsdk-other-project")  # the user has no role on it
        user = self.add_user(username, password, projects=[project["id"]], default_project=project["id"])
        cred = self.add_app_credential("hsdk-app-credential", app_credential_secret, user["id"], project["id"])
        self.project_id, self.project_name = project["id"], project["name"]
        self.user_id, self.username, self.password = user["id"], user["name"], password
        self.app_credential_id, self.app_credential_secret = cred["id"], cred["secret"]
        # knobs
        self.token_lifetime = 3600
        self.revoke_at = {}
        self.page_size = page_size
        self.image_polls = 2
        self.image_final = "active"
        self.enable_force_upload = True
        self.chunk_size = 256 * KiB
        self.chunk_delay = 0
        self.drop_after = None
        self.drop_times = 1
        self.truncate_at = None
        self.corrupt_at = None
        self.file_head_allowed = False
        self.fail = {}
        self.omit_services = set()
        self.image_endpoint_override = None
        # records
        self.tokens = {}  # token -> {"expires", "revoked", "method", "user_id", "project_id", "issued"}
        self.token_log = []
        self.calls = Counter()
        self.endpoint_calls = Counter()  # (region, interface, service)
        self.downloads = []
        self.created_images, self.deleted_images, self.vanished_images = [], [], []
        self.volume_uploads = []  # (volume id, image id)
        self.nova_volume_snapshots = []  # server ids
        self._seq = 0

    # ---- identity ----
    def add_domain(self, name):
        did = _hex_id()
        with self.lock:
            self.domains[did] = name
        return did

    def _domain_id(self, name_or_id):
        for did, name in self.domains.items():
            if name_or_id in (did, name):
                return did
        raise KeyError(f"no domain {name_or_id}")

    def add_project(self, name, domain="Default"):
        p = {"id": _hex_id(), "name": name, "domain_id": self._domain_id(domain)}
        with self.lock:
            self.projects[p["id"]] = p
        return p

    def add_user(self, name, password, domain="Default", projects=(), default_project=None):
        u = {"id": _hex_id(), "name": name, "domain_id": self._domain_id(domain), "password": password,
             "default_project_id": default_project, "projects": set(projects)}
        with self.lock:
            self.users[u["id"]] = u
        return u

    def add_app_credential(self, name, secret, user_id, project_id):
        c = {"id": _hex_id(), "name": name, "secret": secret, "user_id": user_id, "project_id": project_id}
        with self.lock:
            self.app_credentials[c["id"]] = c
        return c

    @property
    def auth_url(self):
        return f"{self.url}/identity/v3"

    @property
    def tokens_issued(self):
        return len(self.token_log)

    def revoke_tokens(self):
        """Every token issued so far is revoked: the next call with one answers 401."""
        with self.lock:
            for t in self.tokens.values():
                t["revoked"] = True

    def expire_tokens(self):
        with self.lock:
            for t in self.tokens.values():
                t["expires"] = time.time() - 1

    # ---- building ----
    def _created(self):
        with self.lock:
            self._seq += 1
            return time.time() - 86400 + self._seq * 60  # planted in order, a minute apart, a day ago

    def add_flavor(self, flavor):
        with self.lock:
            self.flavors[flavor.id] = flavor
        return flavor

    def add_image(self, name, content=None, disk_format="raw", region="RegionOne", visibility="public", **kw):
        """A planted, active image (not ours) with `content` (bytes, a path or a Blob)."""
        img = Image(name, as_blob(content), disk_format=disk_format, region=region, visibility=visibility,
                    owner=kw.pop("owner", self.project_id), created=self._created(), **kw)
        img.updated = img.created
        if img.blob is not None:
            img.checksum, img.os_hash_value = img.blob.digests()
        with self.lock:
            self.images[img.id] = img
        return img

    def add_volume(self, volume):
        volume.content = as_blob(volume.content)
        volume.created = self._created()
        with self.lock:
            self.volumes[volume.id] = volume
        return volume

    def add_server(self, server):
        """Registers a server with its flavor and volumes (attached: in-use)."""
        server.created = self._created()
        self.add_flavor(server.flavor)
        for device, vol, _ in server.volumes:
            if vol.id not in self.volumes:
                self.add_volume(vol)
            vol.status = "in-use"
            vol.region = server.region
            vol.attachments.append({"server_id": server.id, "device": device, "attachment_id": str(uuid.uuid4()),
                                    "attached_at": _cinder_time(server.created)})
        with self.lock:
            self.servers[server.id] = server
        return server

    def find_server(self, name_or_id):
        with self.lock:
            for s in self.servers.values():
                if name_or_id in (s.id, s.name):
                    return s
        return None

    def find_image(self, name):
        with self.lock:
            return next((i for i in self.images.values() if i.name == name), None)

    # ---- what the client left ----
    def images_left(self):
        """Ids of the images a client made (createImage, upload-to-image) that still exist."""
        with self.lock:
            return sorted(i.id for i in self.images.values() if i.ours)

    def ranges_seen(self):
        """The Range headers of the image downloads, in order (None for a whole-image GET)."""
        with self.lock:
            return [d["range"] for d in self.downloads]

    def calls_outside(self, region="RegionOne", interface="public"):
        """Service calls (not Keystone) made through other endpoints than this region's and interface's."""
        with self.lock:
            return {k: n for k, n in self.endpoint_calls.items() if (k[0], k[1]) != (region, interface)}


def plant_standard(state, web01_root, db01_boot=None, db01_data=None, r2_root=None, prewarm=True):
    """The cloud the tests use. RegionOne: image-backed web01 (m1.small: 1 vCPU, 2048 MiB, 1 GiB
    root; its snapshot holds web01_root: bytes, a path or a Blob; raw), volume-backed db01
    (m1.medium: 2 vCPUs, 4096 MiB; boot volume db01-boot /dev/vda and data volume db01-data
    /dev/vdb, 1 GiB each, holding db01_boot / db01_data from offset 0), and app01..app03 (m1.tiny,
    small roots) so that five servers page; the image web01 was booted from. RegionTwo: r2vm01.
    Returns {name: Server}."""
    tiny = Flavor("1", "m1.tiny", 1, 512, 1)
    small = Flavor("2", "m1.small", 1, 2048, 1, extra_specs={"hw_rng:allowed": "True"})
    medium = Flavor("3", "m1.medium", 2, 4096, 10)
    for f in (tiny, small, medium):
        state.add_flavor(f)
    web_root = as_blob(web01_root)
    base = state.add_image("ubuntu-22.04", web_root, properties={"os_distro": "ubuntu", "os_version": "22.04",
                                                                 "hw_disk_bus": "virtio"})
    servers = {}
    servers["web01"] = state.add_server(Server("web01", small, root=web_root, image=base,
                                               ports=[Port("fa:16:3e:12:34:56", "10.0.0.11")],
                                               metadata={"role": "web"}))
    boot = state.add_volume(Volume("db01-boot", 1, as_blob(db01_boot if db01_boot is not None else b""), bootable=True,
                                   image_metadata={"image_id": base.id, "image_name": base.name, "disk_format": "raw",
                                                   "container_format": "bare", "min_disk": "0", "min_ram": "0",
                                                   "os_distro": "ubuntu", "hw_disk_bus": "virtio"}))
    data = state.add_volume(Volume("db01-data", 1, as_blob(db01_data if db01_data is not None else b"")))
    servers["db01"] = state.add_server(Server("db01", medium, volumes=[("/dev/vda", boot, True), ("/dev/vdb", data, False)],
                                              ports=[Port("fa:16:3e:aa:bb:cc", "10.0.0.12"),
                                                     Port("fa:16:3e:aa:bb:cd", "192.168.10.12", network="storage")],
                                              status="SHUTOFF", availability_zone="az-2", metadata={"role": "db"}))
    for i in range(1, 4):
        name = f"app0{i}"
        servers[name] = state.add_server(Server(name, tiny, root=Blob(name.encode() * 512, MiB), image=base,
                                                ports=[Port(f"fa:16:3e:00:00:0{i}", f"10.0.0.2{i}")]))
    r2_base = state.add_image("ubuntu-22.04", Blob(b"r2", MiB), region="RegionTwo")
    servers["r2vm01"] = state.add_server(Server("r2vm01", small, root=as_blob(r2_root) or Blob(b"r2vm01", MiB), image=r2_base,
                                                region="RegionTwo", ports=[Port("fa:16:3e:22:22:22", "10.2.0.5")]))
    if prewarm:
        for v in (boot, data):
            v.blob().prewarm()
    return servers


# ---- errors --------------------------------------------------------------------------------------
_FAULT_NAMES = {400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound", 405: "badMethod",
                409: "conflictingRequest", 413: "overLimit", 415: "badMediaType", 429: "overLimit", 501: "notImplemented",
                503: "serviceUnavailable"}
_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           409: "Conflict", 413: "Request Entity Too Large", 416: "Requested Range Not Satisfiable",
           429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}


def _fault(status, message, headers=None):
    """Nova's and Cinder's error body: {"itemNotFound": {"code": 404, "message": ...}}."""
    return Response(status, dict(headers or {}), {_FAULT_NAMES.get(status, "computeFault"): {"code": status, "message": message}})


def _glance_error(req, status, message, headers=None):
    """Glance's errors are webob's: HTML, JSON or plain text by the Accept header."""
    title = f"{status} {_TITLES.get(status, 'Error')}"
    accept = req.headers.get("accept", "")
    h = dict(headers or {})
    if "html" in accept or "*/*" in accept:
        h["Content-Type"] = "text/html; charset=UTF-8"
        body = (f"<html>\n <head>\n  <title>{title}</title>\n </head>\n <body>\n  <h1>{title}</h1>\n"
                f"  {message}<br /><br />\n\n\n\n </body>\n</html>")
    elif "application/json" in accept:
        h["Content-Type"] = "application/json"
        body = json.dumps({"message": message + "<br /><br />\n\n\n", "code": title, "title": _TITLES.get(status, "Error")})
    else:
        h["Content-Type"] = "text/plain; charset=UTF-8"
        body = f"{title}\n\n{message}\n\n   "
    return Response(status, h, body.encode())


def _keystone_error(status, message, title=None):
    return Response(status, {"Content-Type": "application/json"},
                    {"error": {"code": status, "message": message, "title": title or _TITLES.get(status, "Error")}})


# ---- the request context shared by the service routes --------------------------------------------
class _Ctx:
    def __init__(self, state, req, m, service):
        self.state, self.req, self.m, self.service = state, req, m, service
        ep = m.group("ep") or ""
        self.region, self.interface = _PREFIXES[ep]
        self.base = state.url or "http://" + req.headers.get("host", "127.0.0.1")
        self.endpoint_base = self.base + ep  # where this region's and interface's services live
        self.token = None
        self.mv = None

    @property
    def compute_url(self):
        return self.endpoint_base + "/compute"

    @property
    def image_url(self):
        return self.endpoint_base + "/image"

    def volume_url(self, project_id):
        return f"{self.endpoint_base}/volume/v3/{project_id}"

    def error(self, status, message, headers=None):
        if self.service == "image":
            return _glance_error(self.req, status, message, headers)
        return _fault(status, message, headers)


class _VersionError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status, self.message = status, message


def _microversion(req, service, legacy_header, lowest, highest):
    """The microversion a request asks for (OpenStack-API-Version: compute 2.79, or the legacy
    header), as a tuple; the lowest when it asks for none."""
    value = None
    for part in (req.headers.get("openstack-api-version") or "").split(","):
        bits = part.split()
        if len(bits) == 2 and bits[0].lower() == service:
            value = bits[1]
    if value is None and legacy_header:
        value = req.headers.get(legacy_header)
    if value is None:
        return lowest
    if value.strip().lower() == "latest":
        return highest
    m = re.fullmatch(r"\s*(\d+)\.(\d+)\s*", value)
    if not m:
        raise _VersionError(400, f"API Version String {value} is of invalid format. Must be of format MajorNum.MinorNum.")
    v = (int(m.group(1)), int(m.group(2)))
    if not lowest <= v <= highest:
        raise _VersionError(406, f"Version {value.strip()} is not supported by the API. Minimum is {lowest[0]}.{lowest[1]} "
                                 f"and maximum is {highest[0]}.{highest[1]}.")
    return v


def _unauthorized(ctx):
    return Response(401, {"WWW-Authenticate": f'Keystone uri="{ctx.base}/identity"', "Content-Type": "application/json"},
                    {"error": {"code": 401, "title": "Unauthorized", "message": UNAUTHORIZED_MESSAGE}})


def _service_route(state, method, service, tail, key, handler, auth=True):
    """A route of one service under every region's and interface's prefix: counts the call,
    applies revoke_at, checks X-Auth-Token, injects state.fail answers, parses the microversion,
    then calls handler(ctx)."""
    roots = {"compute": r"/compute/v2\.1", "image": r"/image", "volume": r"/volume/v3/(?P<project>[^/]+)"}
    pattern = re.compile(_EP + roots[service] + tail + "$")

    def respond(req):
        m = pattern.search(req.path)
        ctx = _Ctx(state, req, m, service)
        with state.lock:
            state.calls[key] += 1
            state.endpoint_calls[(ctx.region, ctx.interface, service)] += 1
            if state.revoke_at.get(key) == state.calls[key]:
                for t in state.tokens.values():
                    t["revoked"] = True
        resp = None
        if auth:
            token = req.secrets.get("x-auth-token")
            with state.lock:
                rec = state.tokens.get(token) if token else None
            if rec is None or rec["revoked"] or rec["expires"] <= time.time() or rec["project_id"] is None:
                resp = _unauthorized(ctx)
            else:
                ctx.token = rec
                if service == "volume" and m.group("project") != rec["project_id"]:
                    resp = _fault(400, f"Malformed request URL: URL's project_id '{m.group('project')}' doesn't match "
                                       f"Context's project_id '{rec['project_id']}'")
        if resp is None:
            with state.lock:
                queue = state.fail.get(key)
                status = queue.pop(0) if queue else None
            if status is not None:
                resp = ctx.error(status, f"hsdk fixture: {key} answers {status} (state.fail)",
                                 {"Retry-After": "1"} if status in (429, 503) else None)
        headers = {}
        if resp is None and service in ("compute", "volume"):
            try:
                if service == "compute":
                    ctx.mv = _microversion(req, "compute", "x-openstack-nova-api-version", NOVA_MIN, NOVA_MAX)
                    v = f"{ctx.mv[0]}.{ctx.mv[1]}"
                    headers = {"OpenStack-API-Version": f"compute {v}", "X-OpenStack-Nova-API-Version": v,
                               "Vary": "OpenStack-API-Version, X-OpenStack-Nova-API-Version"}
                else:
                    ctx.mv = _microversion(req, "volume", None, CINDER_MIN, CINDER_MAX)
                    headers = {"OpenStack-API-Version": f"volume {ctx.mv[0]}.{ctx.mv[1]}", "Vary": "OpenStack-API-Version"}
            except _VersionError as e:
                resp = _fault(e.status, e.message)
        if resp is None:
            resp = handler(ctx)
        for k, v in headers.items():
            resp.headers.setdefault(k, v)
        rid = "req-" + str(uuid.uuid4())
        resp.headers.setdefault("x-openstack-request-id", rid)
        if service == "compute":
            resp.headers.setdefault("x-compute-request-id", rid)
        return resp

    return Route(method, pattern.pattern, respond)


# ---- Keystone ----------------------------------------------------------------------------------
def _redact(body):
    """The auth request with its secrets replaced (what the record keeps)."""
    out = json.loads(json.dumps(body))
    identity = ((out.get("auth") or {}).get("identity") or {}) if isinstance(out, dict) else {}
    if isinstance(identity, dict):
        user = (identity.get("password") or {}).get("user") if isinstance(identity.get("password"), dict) else None
        if isinstance(user, dict) and "password" in user:
            user["password"] = "***"
        cred = identity.get("application_credential")
        if isinstance(cred, dict) and "secret" in cred:
            cred["secret"] = "***"
        tok = identity.get("token")
        if isinstance(tok, dict) and "id" in tok:
            tok["id"] = "***"
    return out


def _find_user(state, spec):
    """The user a {"id"} or {"name", "domain": {"id"} or {"name"}} names, or None; raises
    ValueError for a name without a domain (400 in Keystone)."""
    if not isinstance(spec, dict):
        raise ValueError("Expecting to find user in password.")
    with state.lock:
        if spec.get("id"):
            return state.users.get(spec["id"])
        name = spec.get("name")
        domain = spec.get("domain")
        if not name:
            raise ValueError("Expecting to find id or name in user.")
        if not isinstance(domain, dict) or not (domain.get("id") or domain.get("name")):
            raise ValueError("Expecting to find domain in user.")
        for u in state.users.values():
            if u["name"] == name and (domain.get("id") == u["domain_id"] or domain.get("name") == state.domains.get(u["domain_id"])):
                return u
    return None


def _find_project(state, spec):
    if not isinstance(spec, dict):
        return None
    with state.lock:
        if spec.get("id"):
            return state.projects.get(spec["id"])
        domain = spec.get("domain") or {}
        for p in state.projects.values():
            in_domain = domain.get("id") == p["domain_id"] or domain.get("name") == state.domains.get(p["domain_id"])
            if p["name"] == spec.get("name") and in_domain:
                return p
    return None


def _endpoint_url(state, stype, region, url):
    """An endpoint's URL in the catalog: `url`, the fixture's, unless image_endpoint_override
    replaces RegionOne's image endpoints."""
    if stype == "image" and region == "RegionOne" and state.image_endpoint_override:
        return state.image_endpoint_override
    return url


def _catalog(state, base, project_id):
    services = [("compute", "nova", lambda p: f"{base}{p}/compute/v2.1"),
                ("image", "glance", lambda p: f"{base}{p}/image"),
                ("volumev3", "cinderv3", lambda p: f"{base}{p}/volume/v3/{project_id}"),
                ("identity", "keystone", lambda p: f"{base}/identity/v3")]
    out = []
    for stype, name, url in services:
        if stype in state.omit_services:
            continue
        endpoints = [{"id": uuid.uuid5(uuid.NAMESPACE_URL, f"hsdk:{stype}:{r}:{i}").hex, "interface": i, "region": r,
                      "region_id": r, "url": _endpoint_url(state, stype, r, url(endpoint_prefix(r, i)))}
                     for r in REGIONS for i in INTERFACES]
        out.append({"type": stype, "name": name, "id": uuid.uuid5(uuid.NAMESPACE_URL, f"hsdk:{stype}").hex, "endpoints": endpoints})
    return out


def _issue(state, base, methods, user, project, app_cred=None):
    now = time.time()
    token = "gAAAAAB" + base64.urlsafe_b64encode(os.urandom(135)).decode().rstrip("=")  # the length of a Fernet token
    expires = now + state.token_lifetime
    with state.lock:
        state.tokens[token] = {"expires": expires, "revoked": False, "method": methods[0], "user_id": user["id"],
                               "project_id": project["id"] if project else None, "issued": now}
        state.token_log.append({"method": methods[0], "user": user["name"], "project": project["name"] if project else None,
                                "at": now})
        domain = {"id": user["domain_id"], "name": state.domains[user["domain_id"]]}
    body = {"methods": methods, "user": {"domain": domain, "id": user["id"], "name": user["name"], "password_expires_at": None},
            "audit_ids": [base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")],
            "expires_at": keystone_time(expires), "issued_at": keystone_time(now)}
    if project is not None:
        body["project"] = {"id": project["id"], "name": project["name"],
                           "domain": {"id": project["domain_id"], "name": state.domains[project["domain_id"]]}}
        body["is_domain"] = False
        body["roles"] = [{"id": uuid.uuid5(uuid.NAMESPACE_URL, "hsdk:role:member").hex, "name": "member"},
                         {"id": uuid.uuid5(uuid.NAMESPACE_URL, "hsdk:role:reader").hex, "name": "reader"}]
        body["catalog"] = _catalog(state, base, project["id"])
    if app_cred is not None:
        body["application_credential"] = {"id": app_cred["id"], "name": app_cred["name"], "restricted": True}
    return Response(201, {"X-Subject-Token": token, "Vary": "X-Auth-Token", "Content-Type": "application/json",
                          "x-openstack-request-id": "req-" + str(uuid.uuid4())}, {"token": body})


def _auth_tokens(state, req):
    with state.lock:
        state.calls["auth_tokens"] += 1
    base = state.url or "http://" + req.headers.get("host", "127.0.0.1")
    try:
        body = json.loads(req.body or b"null")
    except ValueError:
        return _keystone_error(400, "Malformed JSON in request body.")
    if isinstance(body, dict):
        req.body = json.dumps(_redact(body)).encode()  # the record keeps no password or secret
    bad = "Expecting to find {} in {}. The server could not comply with the request since it is either malformed or " \
          "otherwise incorrect. The client is assumed to be in error."
    auth = body.get("auth") if isinstance(body, dict) else None
    if not isinstance(auth, dict):
        return _keystone_error(400, bad.format("auth", "request body"))
    identity = auth.get("identity")
    if not isinstance(identity, dict):
        return _keystone_error(400, bad.format("identity", "auth"))
    methods = identity.get("methods")
    if not isinstance(methods, list) or not methods:
        return _keystone_error(400, bad.format("methods", "identity"))
    scope = auth.get("scope")
    denied = _keystone_error(401, UNAUTHORIZED_MESSAGE)
    method = methods[0]
    if method == "password":
        try:
            user = _find_user(state, (identity.get("password") or {}).get("user"))
        except ValueError as e:
            return _keystone_error(400, str(e))
        given = ((identity.get("password") or {}).get("user") or {}).get("password")
        if user is None or given != user["password"]:
            return denied
        if scope is None:
            project = state.projects.get(user["default_project_id"]) if user["default_project_id"] else None
        elif isinstance(scope, dict) and "project" in scope:
            project = _find_project(state, scope["project"])
            if project is None or project["id"] not in user["projects"]:
                return denied
        else:
            return denied  # domain and system scopes are not simulated
        return _issue(state, base, ["password"], user, project)
    if method == "application_credential":
        spec = identity.get("application_credential")
        if not isinstance(spec, dict):
            return _keystone_error(400, bad.format("application_credential", "identity"))
        with state.lock:
            cred = state.app_credentials.get(spec.get("id") or "")
            if cred is None and spec.get("name"):
                try:
                    owner = _find_user(state, spec.get("user"))
                except ValueError as e:
                    return _keystone_error(400, str(e))
                cred = next((c for c in state.app_credentials.values()
                             if owner and c["name"] == spec["name"] and c["user_id"] == owner["id"]), None)
        if cred is None or spec.get("secret") != cred["secret"]:
            return denied
        project = state.projects[cred["project_id"]]
        if scope is not None and _find_project(state, (scope or {}).get("project")) is not project:
            return denied  # an application credential is bound to its project
        return _issue(state, base, ["application_credential"], state.users[cred["user_id"]], project, cred)
    if method == "token":
        tok = (identity.get("token") or {}).get("id")
        with state.lock:
            rec = state.tokens.get(tok) if tok else None
        if rec is None or rec["revoked"] or rec["expires"] <= time.time():
            return denied
        user = state.users[rec["user_id"]]
        project = _find_project(state, (scope or {}).get("project")) if scope else state.projects.get(rec["project_id"] or "")
        if scope and (project is None or project["id"] not in user["projects"]):
            return denied
        return _issue(state, base, ["token"], user, project)
    return denied


def _identity_version(base):
    return {"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
            "links": [{"rel": "self", "href": f"{base}/identity/v3/"}],
            "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]}


def keystone_routes(state):
    def version(req):
        state.calls["versions"] += 1
        return Response(200, {}, {"version": _identity_version(state.url or "http://" + req.headers.get("host", ""))})

    def versions(req):
        state.calls["versions"] += 1
        return Response(300, {}, {"versions": {"values": [_identity_version(state.url or "http://" + req.headers.get("host", ""))]}})

    return [Route("POST", r"^/identity/v3/auth/tokens/?$", lambda req: _auth_tokens(state, req)),
            Route("GET", r"^/identity/v3/?$", version),
            Route("GET", r"^/identity/?$", versions)]


# ---- Nova ----------------------------------------------------------------------------------------
_VM_STATES = {"ACTIVE": ("active", 1), "SHUTOFF": ("stopped", 4), "PAUSED": ("paused", 3), "SUSPENDED": ("suspended", 7),
              "ERROR": ("error", 0)}


def _task_state(state, server):
    with state.lock:
        for img in state.images.values():
            if img.origin == "nova" and img.server_id == server.id and img.status in ("queued", "saving"):
                return "image_uploading" if img.status == "saving" else "image_pending_upload"
    return None


def _flavor_json(ctx, f, embedded):
    if embedded:  # 2.47+: the flavor as the server was built with it
        return {"vcpus": f.vcpus, "ram": f.ram, "disk": f.disk, "ephemeral": f.ephemeral, "swap": f.swap,
                "original_name": f.name, "extra_specs": dict(f.extra_specs)}
    return {"id": f.id, "links": [{"rel": "bookmark", "href": f"{ctx.compute_url}/flavors/{f.id}"}]}


def _server_links(ctx, s):
    return [{"rel": "self", "href": f"{ctx.compute_url}/v2.1/servers/{s.id}"},
            {"rel": "bookmark", "href": f"{ctx.compute_url}/servers/{s.id}"}]


def _server_json(ctx, s):
    state, mv = ctx.state, ctx.mv
    addresses = {}
    for p in s.ports:
        addresses.setdefault(p.network, []).append({"version": 4, "addr": p.ip, "OS-EXT-IPS:type": "fixed",
                                                    "OS-EXT-IPS-MAC:mac_addr": p.mac})
    vm_state, power = _VM_STATES.get(s.status, ("active", 1))
    image = "" if s.image is None else {"id": s.image.id, "links": [{"rel": "bookmark", "href": f"{ctx.compute_url}/images/{s.image.id}"}]}
    attached = []
    for _, vol, delete in s.volumes:
        a = {"id": vol.id}
        if mv >= (2, 3):
            a["delete_on_termination"] = delete
        attached.append(a)
    out = {
        "id": s.id, "name": s.name, "status": s.status, "tenant_id": state.project_id, "user_id": state.user_id,
        "metadata": dict(s.metadata), "hostId": hashlib.sha224((state.project_id + "compute-1").encode()).hexdigest(),
        "image": image, "flavor": _flavor_json(ctx, s.flavor, mv >= (2, 47)), "created": _iso_z(s.created),
        "updated": _iso_z(s.created + 30), "addresses": addresses, "accessIPv4": "", "accessIPv6": "",
        "links": _server_links(ctx, s), "OS-DCF:diskConfig": "MANUAL", "progress": 0,
        "OS-EXT-AZ:availability_zone": s.availability_zone, "config_drive": "", "key_name": None,
        "OS-SRV-USG:launched_at": _cinder_time(s.created + 20), "OS-SRV-USG:terminated_at": None,
        "security_groups": [{"name": "default"}], "OS-EXT-STS:task_state": _task_state(state, s),
        "OS-EXT-STS:vm_state": vm_state, "OS-EXT-STS:power_state": power,
        "os-extended-volumes:volumes_attached": attached,
    }
    if mv >= (2, 9):
        out["locked"] = False
    if mv >= (2, 19):
        out["description"] = None
    if mv >= (2, 26):
        out["tags"] = []
    if mv >= (2, 63):
        out["trusted_image_certificates"] = None
    if mv >= (2, 73):
        out["locked_reason"] = None
    if mv >= (2, 96):
        out["pinned_availability_zone"] = None
    return out


def _visible_servers(ctx):
    with ctx.state.lock:
        servers = [s for s in ctx.state.servers.values() if s.region == ctx.region]
    return sorted(servers, key=lambda s: (s.created, s.id), reverse=True)  # Nova: created_at desc, id desc


def _find_visible_server(ctx):
    sid = ctx.m.group("id")
    with ctx.state.lock:
        s = ctx.state.servers.get(sid)
    if s is None or s.region != ctx.region:
        return None, _fault(404, f"Instance {sid} could not be found.")
    return s, None


def _list_servers(ctx, detail):
    q = ctx.req.query
    servers = _visible_servers(ctx)
    name = q.get("name")
    if isinstance(name, str):
        try:
            rx = re.compile(name)
            servers = [s for s in servers if rx.search(s.name)]
        except re.error:
            servers = []
    status = q.get("status")
    if isinstance(status, str):
        servers = [s for s in servers if s.status == status.upper()]
    max_limit = max(1, int(ctx.state.page_size or 1000))
    limit = max_limit
    if "limit" in q:
        try:
            limit = int(q["limit"])
        except (TypeError, ValueError):
            return _fault(400, "limit param must be an integer")
        if limit < 0:
            return _fault(400, "limit param must be positive")
        limit = min(limit, max_limit)
    start = 0
    if q.get("marker"):
        ids = [s.id for s in servers]
        if q["marker"] not in ids:
            return _fault(400, f"marker [{q['marker']}] not found")
        start = ids.index(q["marker"]) + 1
    page = servers[start:start + limit]
    if detail:
        items = [_server_json(ctx, s) for s in page]
    else:
        items = [{"id": s.id, "name": s.name, "links": _server_links(ctx, s)} for s in page]
    body = {"servers": items}
    if page and len(page) == limit:  # Nova: a full page always has a next link (the next page may be empty)
        params = {k: v for k, v in q.items() if k != "marker"}
        params["marker"] = page[-1].id
        path = "servers/detail" if detail else "servers"
        body["servers_links"] = [{"rel": "next", "href": f"{ctx.compute_url}/v2.1/{path}?" + urllib.parse.urlencode(params, doseq=True)}]
    return Response(200, {}, body)


def _get_server(ctx):
    s, refused = _find_visible_server(ctx)
    return refused or Response(200, {}, {"server": _server_json(ctx, s)})


def _os_interface(ctx):
    s, refused = _find_visible_server(ctx)
    if refused:
        return refused
    items = []
    for p in s.ports:
        a = {"port_state": p.state, "fixed_ips": [{"subnet_id": p.subnet_id, "ip_address": p.ip}], "port_id": p.port_id,
             "net_id": p.net_id, "mac_addr": p.mac}
        if ctx.mv >= (2, 70):
            a["tag"] = None
        items.append(a)
    return Response(200, {}, {"interfaceAttachments": items})


def _volume_attachments(ctx):
    s, refused = _find_visible_server(ctx)
    if refused:
        return refused
    items = []
    for device, vol, delete in sorted(s.volumes, key=lambda x: x[0]):
        a = {"device": device, "serverId": s.id, "volumeId": vol.id}
        if ctx.mv < (2, 89):
            a["id"] = vol.id
        if ctx.mv >= (2, 70):
            a["tag"] = None
        if ctx.mv >= (2, 79):
            a["delete_on_termination"] = delete
        if ctx.mv >= (2, 89):
            att = next((x for x in vol.attachments if x["server_id"] == s.id), {})
            a["attachment_id"] = att.get("attachment_id")
            a["bdm_uuid"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"bdm:{s.id}:{vol.id}"))
        items.append(a)
    return Response(200, {}, {"volumeAttachments": items})


def _flavor_detail(ctx, f):
    out = {"id": f.id, "name": f.name, "ram": f.ram, "vcpus": f.vcpus, "disk": f.disk, "OS-FLV-EXT-DATA:ephemeral": f.ephemeral,
           "swap": f.swap if (f.swap or ctx.mv >= (2, 75)) else "", "OS-FLV-DISABLED:disabled": False,
           "os-flavor-access:is_public": True, "rxtx_factor": 1.0,
           "links": [{"rel": "self", "href": f"{ctx.compute_url}/v2.1/flavors/{f.id}"},
                     {"rel": "bookmark", "href": f"{ctx.compute_url}/flavors/{f.id}"}]}
    if ctx.mv >= (2, 55):
        out["description"] = None
    if ctx.mv >= (2, 61):
        out["extra_specs"] = dict(f.extra_specs)
    return out


def _get_flavor(ctx):
    fid = ctx.m.group("id")
    f = ctx.state.flavors.get(fid)
    if f is None:
        return _fault(404, f"Flavor {fid} could not be found.")
    return Response(200, {}, {"flavor": _flavor_detail(ctx, f)})


def _list_flavors(ctx):
    flavors = sorted(ctx.state.flavors.values(), key=lambda f: f.id)
    if ctx.m.group("detail"):
        return Response(200, {}, {"flavors": [_flavor_detail(ctx, f) for f in flavors]})
    return Response(200, {}, {"flavors": [{"id": f.id, "name": f.name, "links": _flavor_detail(ctx, f)["links"]} for f in flavors]})


def _new_image(state, name, blob, region, origin, disk_format="raw", properties=None, min_disk=0, **kw):
    """An image a client caused (ours), queued, that later polls move on (image_polls, image_final)."""
    n = max(0, int(state.image_polls))
    now = time.time()
    img = Image(name, blob, disk_format=disk_format, status="queued", owner=state.project_id, region=region,
                properties=dict(properties or {}), min_disk=min_disk, ours=True, origin=origin, created=now, updated=now,
                pending=(["queued"] + ["saving"] * (n - 1))[:n], final=state.image_final, **kw)
    with state.lock:
        state.images[img.id] = img
        state.created_images.append(img.id)
    if n == 0:
        img.finishing = True
        _finish_image(state, img)
    return img


def _finish_image(state, img):
    """The image reaches its final status: active (with its checksums), killed, or gone (deleted)."""
    if img.final == "active" and img.blob is not None and img.blob.size:
        md5, sha = img.blob.digests()  # outside the lock: a big volume's take a while the first time
    else:
        md5 = sha = None
    with state.lock:
        if img.final == "deleted":
            state.images.pop(img.id, None)
            state.vanished_images.append(img.id)
        img.status = img.final
        img.updated = time.time()
        if img.final == "active":
            img.checksum, img.os_hash_value = md5, sha
        if img.volume_id:
            vol = state.volumes.get(img.volume_id)
            if vol is not None and vol.status == "uploading":
                vol.status, vol.previous_status = vol.previous_status or "available", None


def _poll_image(state, img):
    """One look at an image in progress moves it on."""
    with state.lock:
        if img.status not in ("queued", "saving") or img.id not in state.images:
            return
        img.polls += 1
        if img.pending:
            img.status = img.pending.pop(0)
            img.updated = time.time()
            return
        if img.finishing:  # another poll is finishing it (computing its checksums)
            return
        img.finishing = True
    _finish_image(state, img)


def _create_image(ctx, s, body):
    state = ctx.state
    if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not body["name"].strip():
        return _fault(400, f"Invalid input for field/attribute createImage. Value: {json.dumps(body)}. 'name' is a required property")
    metadata = body.get("metadata") or {}
    if not isinstance(metadata, dict):
        return _fault(400, "Invalid input for field/attribute metadata. Value: %s. %r is not of type 'object'" % (metadata, metadata))
    task = _task_state(state, s)
    if task is not None:
        return _fault(409, f"Cannot 'createImage' instance {s.id} while it is in task_state {task}")
    if s.status not in ("ACTIVE", "SHUTOFF", "PAUSED", "SUSPENDED"):
        return _fault(409, f"Cannot 'createImage' instance {s.id} while it is in vm_state {_VM_STATES.get(s.status, ('error',))[0]}")
    props = {"image_type": "snapshot", "instance_uuid": s.id, "user_id": state.user_id, "owner_project_name": state.project_name,
             "owner_user_name": state.username, "boot_roles": "member,reader", "image_location": "snapshot"}
    if s.volume_backed:
        # Nova snapshots the volumes in Cinder and registers an image that holds no data, only the
        # block device mapping: not a disk image. Recorded so tests can prove a client avoids it.
        bdm = [{"source_type": "snapshot", "destination_type": "volume", "snapshot_id": str(uuid.uuid4()),
                "volume_size": vol.size, "device_name": device, "boot_index": 0 if device == "/dev/vda" else None,
                "delete_on_termination": delete} for device, vol, delete in s.volumes]
        props.update({"block_device_mapping": json.dumps(bdm), "bdm_v2": "True", "root_device_name": "/dev/vda"})
        props.update({k: str(v) for k, v in metadata.items()})
        now = time.time()
        img = Image(body["name"], None, disk_format=None, container_format=None, status="active", owner=state.project_id,
                    region=s.region, properties=props, ours=True, origin="nova-bdm", server_id=s.id, created=now, updated=now)
        with state.lock:
            state.images[img.id] = img
            state.created_images.append(img.id)
            state.nova_volume_snapshots.append(s.id)
    else:
        props["base_image_ref"] = s.image.id if s.image else ""
        if s.image is not None:
            props.update({k: v for k, v in s.image.properties.items() if k not in props})
        props.update({k: str(v) for k, v in metadata.items()})
        img = _new_image(state, body["name"], s.root, s.region, "nova", disk_format=s.snapshot_disk_format, properties=props,
                         min_disk=s.flavor.disk, server_id=s.id)
    if ctx.mv >= (2, 45):
        return Response(202, {}, {"image_id": img.id})
    return Response(202, {"Location": f"{ctx.image_url}/images/{img.id}"}, b"")  # Nova's glance.generate_image_url


def _server_action(ctx):
    s, refused = _find_visible_server(ctx)
    if refused:
        return refused
    try:
        body = ctx.req.json
    except ValueError:
        return _fault(400, "Malformed request body")
    if not isinstance(body, dict) or len(body) != 1:
        return _fault(400, "Malformed request body")
    action, args = next(iter(body.items()))
    if action == "createImage":
        return _create_image(ctx, s, args)
    return _fault(400, f"There is no such action: {action}")


def _compute_versions(ctx, single):
    v21 = {"id": "v2.1", "status": "CURRENT", "version": f"{NOVA_MAX[0]}.{NOVA_MAX[1]}", "min_version": "2.1",
           "updated": "2013-07-23T11:33:21Z", "links": [{"rel": "self", "href": f"{ctx.compute_url}/v2.1/"}],
           "media-types": [{"base": "application/json", "type": "application/vnd.openstack.compute+json;version=2.1"}]}
    if single:
        return Response(200, {}, {"version": v21})
    v20 = {"id": "v2.0", "status": "SUPPORTED", "version": "", "min_version": "", "updated": "2011-01-21T11:33:21Z",
           "links": [{"rel": "self", "href": f"{ctx.compute_url}/v2/"}]}
    return Response(200, {}, {"versions": [v20, v21]})


def nova_routes(state):
    r = lambda method, tail, key, handler, auth=True: _service_route(state, method, "compute", tail, key, handler, auth)  # noqa: E731
    return [
        r("GET", r"/servers/detail/?", "list_servers", lambda ctx: _list_servers(ctx, True)),
        r("GET", r"/servers/?", "list_servers", lambda ctx: _list_servers(ctx, False)),
        r("GET", r"/servers/(?P<id>[^/]+)/os-interface/?", "os_interface", _os_interface),
        r("GET", r"/servers/(?P<id>[^/]+)/os-volume_attachments/?", "volume_attachments", _volume_attachments),
        r("POST", r"/servers/(?P<id>[^/]+)/action/?", "server_action", _server_action),
        r("GET", r"/servers/(?P<id>[^/]+)/?", "get_server", _get_server),
        r("GET", r"/flavors(?P<detail>/detail)?/?", "list_flavors", _list_flavors),
        r("GET", r"/flavors/(?P<id>[^/]+)/?", "get_flavor", _get_flavor),
        r("GET", r"/?", "versions", lambda ctx: _compute_versions(ctx, True), auth=False),
        Route("GET", _EP + r"/compute/?$", lambda req: _compute_versions(_Ctx(state, req, re.search(_EP, req.path), "compute"), False)),
    ]


# ---- Cinder --------------------------------------------------------------------------------------
def _volume_json(ctx, v):
    state = ctx.state
    out = {
        "id": v.id, "name": v.name, "size": v.size, "status": v.status, "bootable": "true" if v.bootable else "false",
        "attachments": [{"server_id": a["server_id"], "attachment_id": a["attachment_id"], "attached_at": a["attached_at"],
                         "host_name": None, "volume_id": v.id, "device": a["device"], "id": v.id} for a in v.attachments],
        "availability_zone": v.availability_zone, "encrypted": False, "multiattach": False, "metadata": {},
        "migration_status": None, "replication_status": None, "snapshot_id": None, "source_volid": None, "description": None,
        "user_id": state.user_id, "volume_type": v.volume_type, "created_at": _cinder_time(v.created),
        "updated_at": _cinder_time(v.created + 10), "os-vol-tenant-attr:tenant_id": state.project_id,
        "consistencygroup_id": None,
        "links": [{"rel": "self", "href": f"{ctx.volume_url(state.project_id)}/volumes/{v.id}"},
                  {"rel": "bookmark", "href": f"{ctx.endpoint_base}/volume/{state.project_id}/volumes/{v.id}"}],
    }
    if v.image_metadata is not None:
        out["volume_image_metadata"] = {k: str(x) for k, x in v.image_metadata.items()}
    if ctx.mv >= (3, 13):
        out["group_id"] = None
    if ctx.mv >= (3, 48):
        out["shared_targets"] = False
        out["service_uuid"] = str(uuid.uuid5(uuid.NAMESPACE_URL, "hsdk:cinder-volume"))
    if ctx.mv >= (3, 63):
        out["volume_type_id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, "hsdk:volume-type:" + v.volume_type))
    return out


def _find_visible_volume(ctx):
    vid = ctx.m.group("id")
    with ctx.state.lock:
        v = ctx.state.volumes.get(vid)
    if v is None or v.region != ctx.region:
        return None, _fault(404, f"Volume {vid} could not be found.")
    return v, None


def _get_volume(ctx):
    v, refused = _find_visible_volume(ctx)
    if refused:
        return refused
    if v.status == "uploading":  # looking at the volume is a poll of its upload too
        with ctx.state.lock:
            img = next((i for i in ctx.state.images.values() if i.volume_id == v.id and i.status in ("queued", "saving")), None)
        if img is not None:
            _poll_image(ctx.state, img)
    return Response(200, {}, {"volume": _volume_json(ctx, v)})


def _list_volumes(ctx):
    with ctx.state.lock:
        vols = sorted((v for v in ctx.state.volumes.values() if v.region == ctx.region), key=lambda v: v.created, reverse=True)
    name = ctx.req.query.get("name")
    if isinstance(name, str):
        vols = [v for v in vols if v.name == name]
    if ctx.m.group("detail"):
        return Response(200, {}, {"volumes": [_volume_json(ctx, v) for v in vols]})
    return Response(200, {}, {"volumes": [{"id": v.id, "name": v.name, "links": _volume_json(ctx, v)["links"]} for v in vols]})


_BOOLS = {"true": True, "1": True, "yes": True, "y": True, "on": True, "t": True,
          "false": False, "0": False, "no": False, "n": False, "off": False, "f": False}
_CORE_IMAGE_KEYS = {"image_id", "image_name", "checksum", "size", "disk_format", "container_format", "min_disk", "min_ram"}


def _upload_to_image(ctx, v, args):
    state = ctx.state
    if not isinstance(args, dict) or not isinstance(args.get("image_name"), str) or not args["image_name"]:
        return _fault(400, "Invalid input for field/attribute os-volume_upload_image. 'image_name' is a required property")
    force = args.get("force", False)
    if isinstance(force, str):
        if force.strip().lower() not in _BOOLS:
            return _fault(400, f"Invalid value '{force}' for force. Accepted values are: '0', '1', 'f', 'false', 'n', 'no', "
                               "'off', 'on', 't', 'true', 'y', 'yes'")
        force = _BOOLS[force.strip().lower()]
    force = bool(force) and state.enable_force_upload
    disk_format = args.get("disk_format", "raw")
    container_format = args.get("container_format", "bare")
    if disk_format not in ("raw", "qcow2", "vmdk", "vdi", "vhd", "vhdx", "ploop"):
        return _fault(400, f"Invalid disk-format '{disk_format}' specified. Allowed disk-formats are raw, qcow2, vmdk, vdi, vhd, "
                           "vhdx, ploop.")
    if container_format != "bare" and not (container_format == "compressed" and ctx.mv >= (3, 64)):
        return _fault(400, f"Invalid container format '{container_format}' specified.")
    if disk_format != "raw":
        return _fault(400, f"hsdk fixture: only disk_format raw is simulated for uploads, not {disk_format}")
    allowed = ("available", "in-use") if force else ("available",)
    with state.lock:
        if v.status not in allowed:
            statuses = " or ".join(allowed)
            return _fault(400, f"Invalid volume: Volume {v.id} status must be {statuses}, but current status is: {v.status}.")
        v.previous_status, v.status = v.status, "uploading"
    props = {k: str(x) for k, x in (v.image_metadata or {}).items() if k not in _CORE_IMAGE_KEYS}
    img = _new_image(state, args["image_name"], v.blob(), v.region, "cinder", disk_format=disk_format, properties=props,
                     min_disk=v.size if v.bootable else 0, volume_id=v.id)
    img.visibility = args.get("visibility", "private") if ctx.mv >= (3, 1) else "private"
    img.protected = bool(args.get("protected", False)) if ctx.mv >= (3, 1) else False
    with state.lock:
        state.volume_uploads.append((v.id, img.id))
    return Response(202, {}, {"os-volume_upload_image": {
        "id": v.id, "updated_at": _cinder_time(time.time()), "status": "uploading", "display_description": None,
        "size": v.size, "volume_type": None, "image_id": img.id, "container_format": container_format,
        "disk_format": disk_format, "image_name": args["image_name"], "protected": img.protected, "visibility": img.visibility}})


def _volume_action(ctx):
    v, refused = _find_visible_volume(ctx)
    if refused:
        return refused
    try:
        body = ctx.req.json
    except ValueError:
        return _fault(400, "Malformed request body")
    if not isinstance(body, dict) or len(body) != 1:
        return _fault(400, "Malformed request body")
    action, args = next(iter(body.items()))
    if action == "os-volume_upload_image":
        return _upload_to_image(ctx, v, args)
    return _fault(400, f"There is no such action: {action}")


def _volume_versions(req, state):
    base = (state.url or "http://" + req.headers.get("host", "")) + (re.search(_EP, req.path).group("ep") or "")
    v3 = {"id": "v3.0", "status": "CURRENT", "version": f"{CINDER_MAX[0]}.{CINDER_MAX[1]}", "min_version": "3.0",
          "updated": "2023-08-31T00:00:00Z", "links": [{"rel": "self", "href": f"{base}/volume/v3/"}],
          "media-types": [{"base": "application/json", "type": "application/vnd.openstack.volume+json;version=3"}]}
    return Response(300, {}, {"versions": [v3]})


def cinder_routes(state):
    r = lambda method, tail, key, handler: _service_route(state, method, "volume", tail, key, handler)  # noqa: E731
    return [
        r("GET", r"/volumes(?P<detail>/detail)?/?", "list_volumes", _list_volumes),
        r("GET", r"/volumes/(?P<id>[^/]+)/?", "get_volume", _get_volume),
        r("POST", r"/volumes/(?P<id>[^/]+)/action/?", "volume_action", _volume_action),
        Route("GET", _EP + r"/volume/?$", lambda req: _volume_versions(req, state)),
    ]


# ---- Glance --------------------------------------------------------------------------------------
def _image_json(img):
    out = {"id": img.id, "name": img.name, "status": img.status, "disk_format": img.disk_format,
           "container_format": img.container_format, "visibility": img.visibility, "size": img.size,
           "virtual_size": img.size if img.disk_format == "raw" else None, "checksum": None, "os_hash_algo": None,
           "os_hash_value": None, "owner": img.owner, "min_disk": img.min_disk, "min_ram": img.min_ram,
           "protected": img.protected, "os_hidden": False, "tags": [], "created_at": _iso_z(img.created),
           "updated_at": _iso_z(img.updated or img.created), "self": f"/v2/images/{img.id}", "file": f"/v2/images/{img.id}/file",
           "schema": "/v2/schemas/image"}
    if img.status == "active" and img.blob is not None and img.blob.size:
        out["checksum"], out["os_hash_algo"], out["os_hash_value"] = img.checksum, "sha512", img.os_hash_value
    if img.status == "active" and img.blob is not None and not img.blob.size:
        out["size"] = 0
    if img.origin == "nova-bdm":
        out["size"] = 0
    for k, v in img.properties.items():
        out.setdefault(k, v)
    return out


def _find_visible_image(ctx):
    iid = ctx.m.group("id")
    with ctx.state.lock:
        img = ctx.state.images.get(iid)
    if img is None or img.region != ctx.region:
        return None, _glance_error(ctx.req, 404, f"No image found with ID {iid}")
    return img, None


def _get_image(ctx):
    img, refused = _find_visible_image(ctx)
    if refused:
        return refused
    _poll_image(ctx.state, img)
    with ctx.state.lock:
        gone = img.id not in ctx.state.images
    if gone:  # the poll that saw it fail: Nova deleted it
        return _glance_error(ctx.req, 404, f"No image found with ID {img.id}")
    return Response(200, {}, _image_json(img))


def _list_images(ctx):
    q = ctx.req.query
    with ctx.state.lock:
        images = sorted((i for i in ctx.state.images.values() if i.region == ctx.region), key=lambda i: (i.created, i.id), reverse=True)
    for key in ("name", "status", "owner", "visibility", "disk_format"):
        if isinstance(q.get(key), str):
            images = [i for i in images if str(getattr(i, key)) == q[key]]
    try:
        limit = min(int(q.get("limit", 25)), 1000)
    except (TypeError, ValueError):
        return _glance_error(ctx.req, 400, "limit param must be an integer")
    if limit < 0:
        return _glance_error(ctx.req, 400, "limit param must be positive")
    start = 0
    if q.get("marker"):
        ids = [i.id for i in images]
        if q["marker"] not in ids:
            return _glance_error(ctx.req, 400, f"Invalid marker. Image {q['marker']} could not be found.")
        start = ids.index(q["marker"]) + 1
    page = images[start:start + limit]
    params = {k: v for k, v in q.items() if k != "marker"}
    body = {"images": [_image_json(i) for i in page], "schema": "/v2/schemas/images",
            "first": "/v2/images" + ("?" + urllib.parse.urlencode(params, doseq=True) if params else "")}
    if page and len(page) == limit:  # a relative link: from the image endpoint's root, not the host's
        body["next"] = "/v2/images?" + urllib.parse.urlencode({**params, "marker": page[-1].id}, doseq=True)
    return Response(200, {}, body)


def _parse_range(ctx, header, size):
    """(start, end inclusive) of a single byte range as Glance takes it, or an error answer."""
    if "," in header:
        return None, _glance_error(ctx.req, 400, "Requests with multiple ranges are not supported in Glance. You may make "
                                                 "multiple single-range requests instead.")
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if not m or (not m.group(1) and not m.group(2)):
        return None, _glance_error(ctx.req, 416, "Invalid Range header.")
    if m.group(1):
        start = int(m.group(1))
        end = int(m.group(2)) if m.group(2) else size - 1
        if m.group(2) and end < start:
            return None, _glance_error(ctx.req, 416, "Invalid Range header.")
        if start >= size:
            return None, _glance_error(ctx.req, 416, "Invalid start position in Range header. Start position MUST be in the "
                                                     f"inclusive range [0, {size - 1}].")
        return (start, min(end, size - 1)), None
    suffix = int(m.group(2))
    if suffix == 0:
        return None, _glance_error(ctx.req, 416, "Invalid Range header.")
    return (max(0, size - suffix), size - 1), None


def _image_file(ctx):
    state = ctx.state
    img, refused = _find_visible_image(ctx)
    if refused:
        return refused
    if ctx.req.method == "HEAD" and not state.file_head_allowed:
        return _glance_error(ctx.req, 405, "The method HEAD is not allowed for this resource.", {"Allow": "GET, PUT"})
    if img.status != "active" or img.blob is None or not img.blob.size:
        with state.lock:
            state.downloads.append({"image": img.id, "range": ctx.req.headers.get("range"), "status": 204, "start": 0,
                                    "length": 0, "cut": None, "stream": None})
        return Response(204, {}, b"")
    size = img.blob.size
    header = ctx.req.headers.get("range")
    start, end = 0, size - 1
    if header:
        span, refused = _parse_range(ctx, header, size)
        if refused:
            return refused
        start, end = span
    stop = end + 1
    cut = None
    with state.lock:
        if state.drop_after is not None and state.drop_times > 0:
            cut = start + int(state.drop_after)
            state.drop_times -= 1
        if state.truncate_at is not None:
            cut = min(cut if cut is not None else stop, max(start, int(state.truncate_at)))
        if cut is not None and cut >= stop:
            cut = None
        chunk, delay, corrupt = max(1, int(state.chunk_size)), state.chunk_delay, state.corrupt_at
    limit = cut if cut is not None else stop
    blob = img.blob

    def pieces():
        pos = start
        while pos < limit:
            n = min(chunk, limit - pos)
            piece = blob.read(pos, n)
            if corrupt is not None and pos <= corrupt < pos + n:
                b = bytearray(piece)
                b[corrupt - pos] ^= 0xFF
                piece = bytes(b)
            yield piece
            pos += n
            if delay and pos < limit:
                time.sleep(delay)

    stream = Stream(pieces(), stop - start)
    status = 206 if header else 200
    with state.lock:
        state.downloads.append({"image": img.id, "range": header, "status": status, "start": start, "length": stop - start,
                                "cut": cut, "stream": stream})
    headers = {"Content-Type": "application/octet-stream"}
    if img.checksum:
        headers["Content-MD5"] = img.checksum  # Glance sends the image's md5, in hex, on whole and partial answers
    if header:
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return Response(status, headers, stream)


def _delete_image(ctx):
    img, refused = _find_visible_image(ctx)
    if refused:
        return refused
    if img.protected:
        return _glance_error(ctx.req, 403, f"Image {img.id} is protected and cannot be deleted.")
    with ctx.state.lock:
        ctx.state.images.pop(img.id, None)
        ctx.state.deleted_images.append(img.id)
        img.status = "deleted"
        if img.volume_id:
            vol = ctx.state.volumes.get(img.volume_id)
            if vol is not None and vol.status == "uploading":  # the upload ends (failed) with its image
                vol.status, vol.previous_status = vol.previous_status or "available", None
    return Response(204, {}, b"")


def _image_versions(req, state, status):
    base = (state.url or "http://" + req.headers.get("host", "")) + (re.search(_EP, req.path).group("ep") or "") + "/image"
    versions = [{"id": f"v2.{n}", "status": "CURRENT" if n == 16 else "SUPPORTED", "links": [{"rel": "self", "href": f"{base}/v2/"}]}
                for n in range(16, 8, -1)]
    return Response(status, {}, {"versions": versions})


def glance_routes(state):
    r = lambda method, tail, key, handler: _service_route(state, method, "image", tail, key, handler)  # noqa: E731
    return [
        r("GET", r"/v2/images/?", "list_images", _list_images),
        r("GET", r"/v2/images/(?P<id>[^/]+)/file", "image_file", _image_file),
        r("HEAD", r"/v2/images/(?P<id>[^/]+)/file", "image_file", _image_file),
        r("GET", r"/v2/images/(?P<id>[^/]+)/?", "get_image", _get_image),
        r("DELETE", r"/v2/images/(?P<id>[^/]+)/?", "delete_image", _delete_image),
        Route("GET", _EP + r"/image/?$", lambda req: _image_versions(req, state, 300)),
        Route("GET", _EP + r"/image/versions/?$", lambda req: _image_versions(req, state, 200)),
    ]


def routes(state):
    """Every route: Keystone, Nova, Cinder and Glance."""
    return keystone_routes(state) + nova_routes(state) + cinder_routes(state) + glance_routes(state)


def serve(state):
    """A FixtureServer answering for the state (state.url and state.srv set)."""
    srv = FixtureServer(routes(state))
    state.url, state.srv = srv.url, srv
    return srv


def attach(state, srv):
    """Points a running FixtureServer (one per module or session: stopping one takes half a
    second) at a fresh state: its routes replaced by the state's, its record cleared."""
    with srv.lock:
        srv.routes = [Route.of(r) for r in routes(state)]
        srv.calls.clear()
        srv.unmatched.clear()
    state.url, state.srv = srv.url, srv
    return srv


# ---- client configuration ------------------------------------------------------------------------
def os_vars(state, password=None, region="RegionOne", interface="public", app_credential=False, project_id=False):
    """The OS_* variables of the state's cloud as openstack CLIs take them: password auth for the
    state's user and project (project_id=True: OS_PROJECT_ID instead of the name), or the
    application credential."""
    out = {"OS_AUTH_URL": state.auth_url, "OS_IDENTITY_API_VERSION": "3", "OS_REGION_NAME": region, "OS_INTERFACE": interface}
    if app_credential:
        out.update(OS_AUTH_TYPE="v3applicationcredential", OS_APPLICATION_CREDENTIAL_ID=state.app_credential_id,
                   OS_APPLICATION_CREDENTIAL_SECRET=state.app_credential_secret if password is None else password)
    else:
        out.update(OS_USERNAME=state.username, OS_PASSWORD=state.password if password is None else password,
                   OS_USER_DOMAIN_NAME="Default", OS_PROJECT_DOMAIN_NAME="Default")
        if project_id:
            out["OS_PROJECT_ID"] = state.project_id
        else:
            out["OS_PROJECT_NAME"] = state.project_name
    return out


def os_env(state, base=None, **kw):
    """A whole environment for a client process: `base` (default os.environ) without any OS_*
    variable, plus os_vars(state, **kw)."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if not k.startswith("OS_")}
    env.update(os_vars(state, **kw))
    return env


def _yaml_scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return json.dumps(str(v))  # a JSON string is a YAML double-quoted scalar


def clouds_yaml_text(clouds):
    """clouds.yaml text of {cloud name: {key: scalar or {key: scalar}}}."""
    lines = ["clouds:"]
    for name, entry in clouds.items():
        lines.append(f"  {name}:")
        for k, v in entry.items():
            if isinstance(v, dict):
                lines.append(f"    {k}:")
                lines.extend(f"      {k2}: {_yaml_scalar(v2)}" for k2, v2 in v.items())
            else:
                lines.append(f"    {k}: {_yaml_scalar(v)}")
    return "\n".join(lines) + "\n"


def cloud_entry(state, password=None, region="RegionOne", interface="public", app_credential=False):
    if app_credential:
        auth = {"auth_url": state.auth_url, "application_credential_id": state.app_credential_id,
                "application_credential_secret": state.app_credential_secret if password is None else password}
        return {"auth_type": "v3applicationcredential", "auth": auth, "region_name": region, "interface": interface,
                "identity_api_version": 3}
    auth = {"auth_url": state.auth_url, "username": state.username, "password": state.password if password is None else password,
            "project_name": state.project_name, "user_domain_name": "Default", "project_domain_name": "Default"}
    return {"auth": auth, "region_name": region, "interface": interface, "identity_api_version": 3}


def write_clouds_yaml(path, state, cloud="hsdk-test", password=None, region="RegionOne", interface="public",
                      app_credential=False, decoy="hsdk-decoy"):
    """Writes a clouds.yaml with the entry `cloud` for the state (password auth, or the
    application credential) and, unless decoy is None, a decoy entry of that name first, with a
    wrong password, so that a client that took the wrong entry fails. Returns the path."""
    clouds = {}
    if decoy:
        clouds[decoy] = cloud_entry(state, password="not-the-" + (state.password or "password"), region=region, interface=interface)
    clouds[cloud] = cloud_entry(state, password, region, interface, app_credential)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(clouds_yaml_text(clouds))
    return path
