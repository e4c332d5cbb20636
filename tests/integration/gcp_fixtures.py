"""Google Cloud fixtures for tests/integration/fixture_server.py: OAuth 2.0 tokens (the service-account
JWT bearer grant, verified for real; the refresh-token grant of authorized_user credentials; the GCE
metadata server), Compute Engine v1 (instances, disks, machine types, images, global operations) and
Cloud Build v1 (the gce_vm_image_export build that `gcloud compute images export` runs), shaped like
Google's REST references. Export objects go into a real Cloud Storage peer, fake-gcs-server
(tests/integration/gcs_sim.py); a proxy route set serves it slowly for cancel tests.

    gcs = FakeGcs(tmp_path)
    state = GcpState(gcs=gcs, workdir=tmp_path)
    boot = make_disk(state, "web01", data=b"...", size_gb=1, guest_os_features=["UEFI_COMPATIBLE"])
    state.add_instance(Instance("web01", [Attached(boot, boot=True)], machine_type="e2-standard-2"))
    with FixtureServer(gcp_routes(state)) as srv:
        state.base_url = srv.url        # token_uri = srv.url + "/token"; links point here
        key = state.make_service_account_key(tmp_path / "key.json")
        ... client: token_uri, compute_endpoint, cloudbuild_endpoint = srv.url;
            storage_endpoint = gcs.url (or srv.url to read through the slow proxy) ...
        assert not state.images_left() and not state.running_builds() and not state.objects_left()

One FixtureServer serves everything at one base URL; the paths are those of the real services
relative to their endpoints:
  POST /token                                              oauth2.googleapis.com/token
  GET  /computeMetadata/v1/...  (and GET /)                the metadata server
  /compute/v1/projects/{project}/...                       compute.googleapis.com
  /v1/projects/{project}/builds..., /v1/operations/build/  cloudbuild.googleapis.com
  /storage/v1/..., /download/storage/v1/..., /upload/...   storage.googleapis.com (proxied to fake-gcs-server)

Knobs (attributes of GcpState, in effect from the next request unless said otherwise):
  page_size (None: the client's maxResults, at most 500; 1 forces one item per page),
  token_lifetime (expires_in of issued tokens, default 3599; a small one makes tokens expire so
    renewal is exercised), expire_tokens() (every token issued so far is refused from now on),
  operation_polls (GETs of a Compute operation before it is DONE, default 2: RUNNING, then DONE),
  operation_error (None, a code such as "QUOTA_EXCEEDED", or an error dict {"code", "message"}):
    the next image inserts end DONE with that error and no image; operation_error_types (default
    {"insert"}),
  build_queued_polls / build_working_polls (GETs of a build answering QUEUED, then WORKING; default 1
    and 1), build_outcome ("SUCCESS", "FAILURE", "TIMEOUT", "INTERNAL_ERROR" or "hang": WORKING until
    cancelled) and build_status_detail, taken when a build is created,
  export knobs, also taken when a build is created: tar_manifest (a manifest.json member first, as
    the export tool writes when licenses are given), tar_base256 (disk.raw's size field in GNU
    base-256 form, as for disks of 8 GiB and more), gzip_members (the gzip stream split into that
    many members), gzip_level (default 1), short_disk_raw (disk.raw that many bytes shorter than
    the image), truncate_object (the object cut to that many bytes, or to that fraction when a
    float below 1), corrupt_object ("data": one byte flipped in the middle of the object, usually
    inside a stored deflate block so that only the gzip CRC notices; "crc": the gzip trailer's CRC
    flipped; for -format objects any value flips a byte in the middle),
  throttle {route key: N} (the next N calls answer 429 rateLimitExceeded), unavailable {route
    key: N} (503 backendError), forbidden {route keys} (403 PERMISSION_DENIED),
  storage_delay (seconds slept after each storage_chunk bytes (default 256 KiB) of a media
    download through the proxy), storage_drops (the next N media downloads through the proxy are
    cut after storage_drop_after bytes), storage_requires_auth (the proxy answers 401 without a
    valid Bearer token), metadata_enabled (False: the metadata routes answer 404).
Route keys: token, metadata, zones, aggregated_instances, list_instances, get_instance, machine_type,
get_disk, insert_image, get_image, list_images, delete_image, get_operation, wait_operation,
create_build, get_build, cancel_build, build_operation, storage.

Records: calls (Counter per route key), token_requests ([{"grant", "outcome", ...}]), tokens
({token: {"exp", "kind", "subject"}}), tokens_issued(), created_images / deleted_images (names),
image_inserts ([{"name", "labels", "source_disk", "force_create", "description"}]), builds ({id:
record with "flags", the export step's -flag=value arguments}), created_builds (ids), cancel_calls
(build ids), exports ([{"build", "uri", "bytes"}]), storage_requests ([method, path, Range, status,
bytes]) of the proxy.
Helpers for assertions: images_left(), running_builds(), objects_left(prefix).
"""
import base64
import datetime
import hashlib
import http.client
import json
import os
import pathlib
import re
import secrets
import shutil
import struct
import subprocess
import tarfile
import tempfile
import threading
import time
import urllib.parse
import uuid
import zlib
from collections import Counter
from dataclasses import dataclass, field

from fixture_server import Response, Route, Stream

GiB = 1 << 30
MiB = 1 << 20
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
EXPORT_STEP = "gcr.io/compute-image-tools/gce_vm_image_export"
EXPORT_FORMATS = ("vmdk", "vhdx", "vpc", "vdi", "qcow2", "qcow", "qed", "raw")
BUILD_FINAL = ("SUCCESS", "FAILURE", "INTERNAL_ERROR", "TIMEOUT", "CANCELLED", "EXPIRED")
ROUTE_KEYS = ("token", "metadata", "zones", "aggregated_instances", "list_instances", "get_instance", "machine_type",
              "get_disk", "insert_image", "get_image", "list_images", "delete_image", "get_operation", "wait_operation",
              "create_build", "get_build", "cancel_build", "build_operation", "storage")

# Predefined machine types the fixture serves: name -> (guestCpus, memoryMb, description).
MACHINE_TYPES = {
    "e2-micro": (2, 1024, "Efficient Instance, 2 vCPU (1/8 shared physical core) and 1 GB RAM"),
    "e2-small": (2, 2048, "Efficient Instance, 2 vCPU (1/4 shared physical core) and 2 GB RAM"),
    "e2-medium": (2, 4096, "Efficient Instance, 2 vCPU (1/2 shared physical core) and 4 GB RAM"),
    "e2-standard-2": (2, 8192, "Efficient Instance, 2 vCPUs, 8 GB RAM"),
    "e2-standard-4": (4, 16384, "Efficient Instance, 4 vCPUs, 16 GB RAM"),
    "n1-standard-1": (1, 3840, "1 vCPU, 3.75 GB RAM"),
    "n1-standard-2": (2, 7680, "2 vCPUs, 7.5 GB RAM"),
    "n2-standard-2": (2, 8192, "2 vCPUs 8 GB RAM"),
    "n2-standard-4": (4, 16384, "4 vCPUs 16 GB RAM"),
    "n2-highmem-2": (2, 16384, "2 vCPUs 16 GB RAM"),
    "c3-standard-4": (4, 16384, "4 vCPUs, 16 GB RAM"),
    "t2d-standard-1": (1, 4096, "1 vCPU, 4 GB RAM"),
}
SHARED_CPU = {"e2-micro", "e2-small", "e2-medium"}
NAME_RE = re.compile(r"^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$")  # RFC 1035, as Compute Engine names are
LABEL_KEY_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
LABEL_VALUE_RE = re.compile(r"^[a-z0-9_-]{0,63}$")


# ---- small helpers -------------------------------------------------------------------------------
def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text):
    text = text.encode() if isinstance(text, str) else text
    return base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))


def _rfc3339(t=None):
    """Compute Engine's timestamps: RFC 3339 with milliseconds and an offset."""
    t = time.time() if t is None else t
    d = datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}-00:00"


def _zulu(t=None):
    """Cloud Build's timestamps: RFC 3339 UTC with nanoseconds."""
    t = time.time() if t is None else t
    d = datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond:06d}123Z"


def numeric_id(*parts):
    """A stable 19-digit resource id (Compute Engine ids are uint64, sent as decimal strings)."""
    h = int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:8], "big")
    return str(10 ** 18 + h % (9 * 10 ** 18))


def _fingerprint():
    return base64.b64encode(secrets.token_bytes(8)).decode()


def region_of(zone):
    return zone.rsplit("-", 1)[0]


# ---- planted resources ---------------------------------------------------------------------------
@dataclass
class Disk:
    """A persistent disk of size_gb GiB. path: a raw file of exactly size_gb GiB holding its
    contents (make_disk writes one, sparse), None for an empty disk."""
    name: str
    zone: str
    size_gb: int = 1
    path: pathlib.Path = None
    disk_type: str = "pd-balanced"
    source_image: str = "projects/debian-cloud/global/images/debian-12-bookworm-v20240110"
    guest_os_features: list = field(default_factory=list)  # ["UEFI_COMPATIBLE", "GVNIC", ...]
    licenses: list = field(default_factory=lambda: ["projects/debian-cloud/global/licenses/debian-12-bookworm"])
    physical_block_size: int = 4096
    architecture: str = "X86_64"
    labels: dict = field(default_factory=dict)
    users: list = field(default_factory=list)  # instance names (add_instance fills it)
    created: float = field(default_factory=time.time)

    @property
    def size_bytes(self):
        return self.size_gb * GiB


@dataclass
class Attached:
    """A disk as an instance has it (AttachedDisk). index None: its position in Instance.disks."""
    disk: Disk
    boot: bool = False
    interface: str = "SCSI"  # or "NVME"
    mode: str = "READ_WRITE"
    device_name: str = None
    index: int = None
    auto_delete: bool = True


@dataclass
class Nic:
    name: str = "nic0"
    network: str = "default"
    subnetwork: str = "default"
    ip: str = "10.128.0.2"
    external_ip: str = None
    stack_type: str = "IPV4_ONLY"
    nic_type: str = None  # "GVNIC", "VIRTIO_NET" or None (not set)


@dataclass
class Instance:
    name: str
    disks: list  # [Attached]; the JSON lists them in this order
    zone: str = None  # GcpState.add_instance: the first disk's zone
    machine_type: str = "e2-standard-2"  # a predefined type or a custom one ("custom-4-8192", "n2-custom-2-4096")
    status: str = "RUNNING"  # RUNNING, TERMINATED, STOPPING, SUSPENDED, ...
    nics: list = field(default_factory=lambda: [Nic()])
    secure_boot: bool = False
    vtpm: bool = True
    integrity_monitoring: bool = True
    labels: dict = field(default_factory=dict)
    cpu_platform: str = "Intel Broadwell"
    created: float = field(default_factory=time.time)


def write_sparse_raw(path, size, data=b"", offset=0):
    """A raw file of `size` bytes holding `data` at `offset`, a hole elsewhere. Returns the path."""
    path = pathlib.Path(path)
    with open(path, "wb") as f:
        f.truncate(size)
        if data:
            f.seek(offset)
            f.write(data)
    return path


def sparse_copy(src, dst, size):
    """dst: src's data regions copied (holes stay holes), then cut or extended to `size` bytes."""
    dst = pathlib.Path(dst)
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        fo.truncate(size)
        for start, end in data_regions(fi.fileno(), min(size, os.fstat(fi.fileno()).st_size)):
            fi.seek(start)
            fo.seek(start)
            left = end - start
            while left:
                chunk = fi.read(min(left, 4 * MiB))
                if not chunk:
                    break
                fo.write(chunk)
                left -= len(chunk)
    return dst


def data_regions(fd, size):
    """[(start, end)] of the parts of a file below `size` that may hold data (SEEK_DATA/SEEK_HOLE;
    the whole file where the file system cannot tell)."""
    out, pos = [], 0
    try:
        while pos < size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:  # ENXIO: no data after pos
                break
            if start >= size:
                break
            end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
            out.append((start, end))
            pos = end
        return out
    except (AttributeError, OSError):
        return [(0, size)] if size else []


def make_disk(state, name, zone=None, data=None, size_gb=1, path=None, **kw):
    """A disk of size_gb GiB registered with the state: its contents `data` (bytes, from offset 0)
    or the raw file `path` (copied sparsely into the state's folder and extended to the disk's
    size), or none (zeros). Other keywords go to Disk."""
    zone = zone or state.zones[0]
    size = size_gb * GiB
    target = state.workdir / f"disk-{zone}-{name}.raw"
    if path is not None:
        sparse_copy(path, target, size)
    else:
        write_sparse_raw(target, size, data or b"")
    return state.add_disk(Disk(name, zone, size_gb, target, **kw))


def plant_pattern_disk(path, pattern, size=GiB):
    """`path`: a sparse raw file of `size` bytes whose start is the file `pattern` (the rest zeros)."""
    return sparse_copy(pattern, path, size)


# ---- the gzip + tar writer of export objects -------------------------------------------------------
_CRC_POLY = 0xEDB88320


def _gf2_times(mat, vec):
    total, i = 0, 0
    while vec:
        if vec & 1:
            total ^= mat[i]
        vec >>= 1
        i += 1
    return total


def _gf2_square(mat):
    return [_gf2_times(mat, column) for column in mat]


def _zero_byte_powers():
    """The linear map one zero byte applies to the (reflected) CRC-32 register, and its 2^k powers."""
    bit = [_CRC_POLY] + [1 << (i - 1) for i in range(1, 32)]  # one zero bit: x -> x >> 1 ^ (poly if x & 1)
    byte = _gf2_square(_gf2_square(_gf2_square(bit)))
    powers = [byte]
    for _ in range(63):
        powers.append(_gf2_square(powers[-1]))
    return powers


_ZERO_POWERS = _zero_byte_powers()


def crc32_zeros(crc, n):
    """zlib.crc32(bytes(n), crc), in O(log n)."""
    reg, k = crc ^ 0xFFFFFFFF, 0
    while n:
        if n & 1:
            reg = _gf2_times(_ZERO_POWERS[k], reg)
        n >>= 1
        k += 1
    return reg ^ 0xFFFFFFFF


class GzipWriter:
    """A gzip stream (RFC 1952) built in memory, with cheap runs of zeros: a MiB of zeros is one
    deflate segment compressed once (after a full flush, so it refers to nothing before it) and
    repeated, its CRC advanced arithmetically. member_bytes: start a new gzip member after that
    many input bytes (a multi-member file, as `cat a.gz b.gz` makes)."""
    SEGMENT = MiB

    def __init__(self, level=1, member_bytes=None):
        self.level = level
        self.member_bytes = member_bytes
        self.out = []
        self.total_in = 0
        self._segment = None
        self._open()

    def _open(self):
        self.comp = zlib.compressobj(self.level, zlib.DEFLATED, -15)
        self.crc = 0
        self.isize = 0
        # ID1 ID2 CM=deflate FLG=0 MTIME XFL=0 OS=255 (unknown), as Go's compress/gzip writes it.
        self.out.append(b"\x1f\x8b\x08\x00" + struct.pack("<I", int(time.time())) + b"\x00\xff")

    def _close_member(self):
        self.out.append(self.comp.flush(zlib.Z_FINISH))
        self.out.append(struct.pack("<II", self.crc & 0xFFFFFFFF, self.isize & 0xFFFFFFFF))

    def _room(self, n):
        return n if not self.member_bytes else min(n, self.member_bytes - self.isize)

    def _account(self, n):
        self.isize += n
        self.total_in += n
        if self.member_bytes and self.isize >= self.member_bytes:
            self._close_member()
            self._open()

    def write(self, data):
        view = memoryview(data)
        pos = 0
        while pos < len(view):
            n = self._room(len(view) - pos)
            piece = view[pos:pos + n]
            self.out.append(self.comp.compress(piece))
            self.crc = zlib.crc32(piece, self.crc)
            pos += n
            self._account(n)

    def zeros(self, n):
        while n > 0:
            take = self._room(n)
            whole = take // self.SEGMENT
            if whole:
                if self._segment is None:
                    c = zlib.compressobj(9, zlib.DEFLATED, -15)  # made once: as small as deflate gets (~1 KiB)
                    self._segment = c.compress(bytes(self.SEGMENT)) + c.flush(zlib.Z_FULL_FLUSH)
                self.out.append(self.comp.flush(zlib.Z_FULL_FLUSH))
                self.out.extend([self._segment] * whole)
                self.crc = crc32_zeros(self.crc, whole * self.SEGMENT)
            rest = take - whole * self.SEGMENT
            if rest:
                z = bytes(rest)
                self.out.append(self.comp.compress(z))
                self.crc = zlib.crc32(z, self.crc)
            n -= take
            self._account(take)

    def finish(self):
        self._close_member()
        return b"".join(self.out)


def _tar_header(name, size, base256=False):
    """A GNU-format tar header (as Go's archive/tar writes for the export tool: FormatGNU, mode 0600)."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o600
    info.mtime = int(time.time())
    info.type = tarfile.REGTYPE
    header = bytearray(info.tobuf(format=tarfile.GNU_FORMAT, encoding="utf-8", errors="strict"))
    if base256:  # the GNU extension for sizes of 8 GiB and more: 0x80, then the size big-endian
        header[124:136] = b"\x80" + size.to_bytes(11, "big")
        header[148:156] = b" " * 8
        header[148:156] = b"%06o\x00 " % sum(header[:512])
    return bytes(header)


def export_tar_gz(path, size, manifest=None, base256=False, level=1, members=1):
    """The object the export tool writes without -format: a gzip-compressed tar holding disk.raw,
    the first `size` bytes of the raw file `path` (zeros past its end), not sparse; a manifest.json
    member first when `manifest` (a dict) is given."""
    member_bytes = None
    total = 512 + -(-size // 512) * 512 + 1024 + (0 if manifest is None else 512 + 512 * -(-len(json.dumps(manifest)) // 512))
    if members and members > 1:
        member_bytes = -(-total // members)
    gz = GzipWriter(level, member_bytes)
    if manifest is not None:
        body = json.dumps(manifest).encode()
        gz.write(_tar_header("manifest.json", len(body)))
        gz.write(body + bytes(-len(body) % 512))
    gz.write(_tar_header("disk.raw", size, base256))
    pos = 0
    fd = os.open(path, os.O_RDONLY) if path is not None else None
    try:
        file_size = os.fstat(fd).st_size if fd is not None else 0
        regions = data_regions(fd, min(size, file_size)) if fd is not None else []
        for start, end in regions:
            if start > pos:
                gz.zeros(start - pos)
            pos = start
            while pos < end:
                n = min(end - pos, MiB)
                chunk = os.pread(fd, n, pos)
                if not chunk:
                    break
                if chunk.count(0) == len(chunk):
                    gz.zeros(len(chunk))
                else:
                    gz.write(chunk)
                pos += len(chunk)
        if pos < size:
            gz.zeros(size - pos)
    finally:
        if fd is not None:
            os.close(fd)
    gz.zeros(-size % 512 + 1024)  # the member's padding, then the end-of-archive blocks
    return gz.finish()


def export_converted(path, size, fmt, workdir):
    """The object the export tool writes with -format: `qemu-img convert -O fmt` of the disk (vpc:
    subformat=dynamic, the driver's default)."""
    work = pathlib.Path(tempfile.mkdtemp(prefix="gcp-export-", dir=workdir))
    try:
        src = work / "disk.raw"
        if path is None:
            write_sparse_raw(src, size)
        else:
            sparse_copy(path, src, size)
        out = work / f"disk.{fmt}"
        args = ["qemu-img", "convert", "-f", "raw", "-O", fmt]
        if fmt == "vpc":
            args += ["-o", "subformat=dynamic"]
        p = subprocess.run(args + [str(src), str(out)], capture_output=True, text=True, timeout=600)
        if p.returncode != 0:
            raise RuntimeError(f"qemu-img convert -O {fmt}: {p.stderr.strip()}")
        return out.read_bytes()
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ---- keys and tokens ------------------------------------------------------------------------------
def _new_rsa_key():
    from cryptography.hazmat.primitives.asymmetric import rsa
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pkcs8_pem(key):
    from cryptography.hazmat.primitives import serialization
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def sign_jwt(key_info, claims=None, header=None, private_key_pem=None, lifetime=3600, now=None, scope=CLOUD_PLATFORM):
    """A JWT bearer assertion signed RS256 with a service-account key (the dict of its JSON file),
    as a client makes it: header {alg, typ, kid}, claims {iss, scope, aud, iat, exp}; `claims` and
    `header` override or add fields (a None value removes one); private_key_pem: sign with another
    key."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    now = int(time.time()) if now is None else int(now)
    h = {"alg": "RS256", "typ": "JWT", "kid": key_info["private_key_id"]}
    c = {"iss": key_info["client_email"], "scope": scope, "aud": key_info["token_uri"], "iat": now, "exp": now + lifetime}
    for src, dst in ((header, h), (claims, c)):
        for k, v in (src or {}).items():
            if v is None:
                dst.pop(k, None)
            else:
                dst[k] = v
    signing_input = (_b64url(json.dumps(h, separators=(",", ":")).encode()) + "." +
                     _b64url(json.dumps(c, separators=(",", ":")).encode())).encode()
    key = serialization.load_pem_private_key((private_key_pem or key_info["private_key"]).encode(), password=None)
    signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return signing_input.decode() + "." + _b64url(signature)


# ---- the state ------------------------------------------------------------------------------------
class GcpState:
    """One project with its zones, instances, disks and images, the credentials tokens are issued
    to, the Cloud Build builds, and everything the client did. See the module doc for the knobs."""

    def __init__(self, gcs=None, workdir=None, project="hsdk-test", project_number="123456789012",
                 zones=("us-central1-a", "us-central1-b", "europe-west1-b"), page_size=None,
                 bucket="hsdk-exports", object_prefix="hypersdk-exports/"):
        self.gcs = gcs
        self._tmp = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="gcp-state-")
            workdir = self._tmp.name
        self.workdir = pathlib.Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.project, self.project_number = project, project_number
        self.zones = list(zones)
        self.bucket, self.object_prefix = bucket, object_prefix
        self.base_url = None  # the FixtureServer's URL: token_uri and links
        self.lock = threading.RLock()
        self.instances = {}  # (zone, name) -> Instance
        self.disks = {}  # (zone, name) -> Disk
        self.machine_types = dict(MACHINE_TYPES)
        self.images = {}  # name -> image record
        self.operations = {}  # name -> operation record
        self.builds = {}  # id -> build record
        self.service_accounts = {}  # private_key_id -> {"email", "public_key", "client_id"}
        self.oauth_clients = {}  # client_id -> {"secret", "refresh_tokens": set}
        self.service_account_email = f"hsdk-exporter@{project}.iam.gserviceaccount.com"
        # knobs
        self.page_size = page_size
        self.token_lifetime = 3599
        self.operation_polls = 2
        self.operation_error = None
        self.operation_error_types = {"insert"}
        self.build_queued_polls = 1
        self.build_working_polls = 1
        self.build_outcome = "SUCCESS"
        self.build_status_detail = None
        self.tar_manifest = False
        self.tar_base256 = False
        self.gzip_members = 1
        self.gzip_level = 1
        self.short_disk_raw = 0
        self.truncate_object = None
        self.corrupt_object = None
        self.throttle = {}
        self.unavailable = {}
        self.forbidden = set()
        self.storage_delay = 0.0
        self.storage_chunk = 256 * 1024
        self.storage_drops = 0
        self.storage_drop_after = MiB
        self.storage_requires_auth = False
        self.metadata_enabled = True
        # records
        self.calls = Counter()
        self.token_requests = []
        self.tokens = {}
        self.created_images, self.deleted_images = [], []
        self.image_inserts = []  # {"name", "labels", "source_disk", "force_create", "description"} per accepted insert
        self.created_builds, self.cancel_calls = [], []
        self.exports = []
        self.storage_requests = []  # (method, path, range, status, bytes sent or None)
        self._planted_images = set()
        if gcs is not None and bucket:
            gcs.create_bucket(bucket)

    # ---- endpoints ----
    @property
    def token_uri(self):
        if not self.base_url:
            raise AssertionError("GcpState.base_url is not set (the FixtureServer's URL)")
        return self.base_url + "/token"

    @property
    def metadata_host(self):
        """host:port of the metadata server (the form of GCE_METADATA_HOST)."""
        return urllib.parse.urlsplit(self.base_url).netloc

    # ---- building ----
    def add_disk(self, disk):
        if disk.zone not in self.zones:
            raise ValueError(f"zone {disk.zone} is not one of {self.zones}")
        with self.lock:
            self.disks[(disk.zone, disk.name)] = disk
        return disk

    def add_instance(self, inst):
        """Registers an instance; its disks (registered too) get it as their user."""
        inst.zone = inst.zone or inst.disks[0].disk.zone
        with self.lock:
            self.instances[(inst.zone, inst.name)] = inst
            for a in inst.disks:
                if (a.disk.zone, a.disk.name) not in self.disks:
                    self.add_disk(a.disk)
                if inst.name not in a.disk.users:
                    a.disk.users.append(inst.name)
        return inst

    def add_image(self, name, disk=None, labels=None, status="READY"):
        """An image that exists before the client runs (not one of its own: images_left ignores it)."""
        with self.lock:
            rec = self._image_record(name, disk, labels or {}, "", status)
            self.images[name] = rec
            self._planted_images.add(name)
        return rec

    # ---- credentials ----
    def _register_key(self, key_id, email, public_key, client_id):
        with self.lock:
            self.service_accounts[key_id] = {"email": email, "public_key": public_key, "client_id": client_id}

    def make_service_account_key(self, path=None, email=None, registered=True, forged=False):
        """A service-account key file like the one IAM gives (type service_account, PKCS#8 PEM RSA
        2048 private key, private_key_id, client_email, token_uri = this fixture's /token, ...),
        written to `path` when given; returns its dict. registered=False: a key the token endpoint
        does not know; forged=True: the first registered key's id and email with another private key
        (its signatures are refused)."""
        key = _new_rsa_key()
        email = email or self.service_account_email
        key_id = secrets.token_hex(20)
        client_id = str(10 ** 20 + secrets.randbelow(9 * 10 ** 20))
        if forged:
            with self.lock:
                if not self.service_accounts:
                    raise AssertionError("no registered key to forge: make one first")
                key_id, known = next(iter(self.service_accounts.items()))
                email, client_id = known["email"], known["client_id"]
        elif registered:
            self._register_key(key_id, email, key.public_key(), client_id)
        info = {
            "type": "service_account",
            "project_id": self.project,
            "private_key_id": key_id,
            "private_key": _pkcs8_pem(key),
            "client_email": email,
            "client_id": client_id,
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/" + urllib.parse.quote(email),
            "universe_domain": "googleapis.com",
        }
        if path is not None:
            pathlib.Path(path).write_text(json.dumps(info, indent=2) + "\n")
            os.chmod(path, 0o600)
        return info

    def make_authorized_user(self, path=None, registered=True):
        """An authorized_user credentials file (what `gcloud auth application-default login`
        writes: client_id, client_secret, refresh_token, type; no token_uri: the client's default or
        its token_uri setting is used). registered=False: a refresh token the endpoint refuses."""
        client_id = f"{secrets.randbelow(10 ** 12):012d}-{secrets.token_hex(16)}.apps.googleusercontent.com"
        secret = "GOCSPX-" + _b64url(secrets.token_bytes(21))
        refresh = "1//0" + _b64url(secrets.token_bytes(72))
        if registered:
            with self.lock:
                self.oauth_clients[client_id] = {"secret": secret, "refresh_tokens": {refresh}}
        info = {"client_id": client_id, "client_secret": secret, "refresh_token": refresh, "type": "authorized_user",
                "quota_project_id": self.project, "universe_domain": "googleapis.com"}
        if path is not None:
            pathlib.Path(path).write_text(json.dumps(info, indent=2) + "\n")
            os.chmod(path, 0o600)
        return info

    def issue_token(self, kind="given", subject=None, lifetime=None):
        """A valid access token (what a given access_token_env / access_token_file would hold)."""
        token = "ya29.c." + _b64url(secrets.token_bytes(96))
        lifetime = self.token_lifetime if lifetime is None else lifetime
        with self.lock:
            self.tokens[token] = {"exp": time.time() + lifetime, "kind": kind, "subject": subject}
        return token

    def tokens_issued(self, kind=None):
        """How many tokens the token endpoint and the metadata server issued (of one kind:
        "jwt_bearer", "refresh_token", "metadata")."""
        with self.lock:
            return sum(1 for t in self.tokens.values() if t["kind"] != "given" and (kind is None or t["kind"] == kind))

    def expire_tokens(self):
        """Every token issued so far is refused (401) from now on."""
        with self.lock:
            for t in self.tokens.values():
                t["exp"] = time.time() - 1

    def secrets_of(self, *infos):
        """Strings that must never show in a client's output: the issued tokens, and the private
        key / client secret / refresh token of the given credential dicts."""
        out = list(self.tokens)
        for info in infos:
            if "private_key" in info:
                body = "".join(l for l in info["private_key"].splitlines() if "-----" not in l)
                out += [body[100:160], body[-120:-60]]
            for k in ("client_secret", "refresh_token"):
                if k in info:
                    out.append(info[k])
        return [s for s in out if s]

    # ---- what the client left ----
    def images_left(self):
        """Names of the images the client created (inserted through the fixture) that still exist."""
        with self.lock:
            return sorted(n for n in self.images if n not in self._planted_images)

    def running_builds(self):
        """Ids of the builds that are not finished (QUEUED / WORKING; a build nobody polled or
        cancelled stays so)."""
        with self.lock:
            return sorted(b["id"] for b in self.builds.values() if b["status"] not in BUILD_FINAL)

    def objects_left(self, prefix=None, bucket=None):
        """Names of the objects of the export bucket under `prefix` (default object_prefix)."""
        if self.gcs is None:
            return []
        return self.gcs.list(bucket or self.bucket, self.object_prefix if prefix is None else prefix)

    def reset_knobs(self):
        """Every knob back to its default (page_size stays; records stay)."""
        defaults = dict(token_lifetime=3599, operation_polls=2, operation_error=None, operation_error_types={"insert"},
                        build_queued_polls=1, build_working_polls=1, build_outcome="SUCCESS", build_status_detail=None,
                        tar_manifest=False, tar_base256=False, gzip_members=1, gzip_level=1, short_disk_raw=0,
                        truncate_object=None, corrupt_object=None, throttle={}, unavailable={}, forbidden=set(),
                        storage_delay=0.0, storage_chunk=256 * 1024, storage_drops=0, storage_drop_after=MiB,
                        storage_requires_auth=False, metadata_enabled=True)
        with self.lock:
            for k, v in defaults.items():
                setattr(self, k, v)

    # ---- links ----
    def compute_base(self, req=None):
        host = (req.headers.get("host") if req is not None else None) or urllib.parse.urlsplit(self.base_url or "http://127.0.0.1").netloc
        return f"http://{host}/compute/v1"

    def project_link(self, req=None):
        return f"{self.compute_base(req)}/projects/{self.project}"

    def _image_record(self, name, disk, labels, description, status):
        return {"name": name, "id": numeric_id(self.project, "image", name, time.time()), "disk": disk, "labels": dict(labels),
                "description": description, "status": status, "created": time.time(), "operation": None,
                "label_fingerprint": _fingerprint()}


# ---- error shapes -----------------------------------------------------------------------------------
_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 409: "ALREADY_EXISTS",
           412: "FAILED_PRECONDITION", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}


def google_error(code, message, reason=None, status=None, headers=None, domain="global", extra=None):
    """Google's JSON error: {"error": {"code", "message", "errors": [{"message", "domain",
    "reason"}], "status"}} (Compute Engine's shape; Cloud Build's has no "errors": reason None)."""
    err = {"code": code, "message": message}
    if reason:
        e = {"message": message, "domain": domain, "reason": reason}
        e.update(extra or {})
        err["errors"] = [e]
    err["status"] = status or _STATUS.get(code, "UNKNOWN")
    h = {"Content-Type": "application/json; charset=UTF-8", "Vary": "Origin, X-Origin, Referer"}
    h.update(headers or {})
    return Response(code, h, {"error": err})


def _not_found(what):
    return google_error(404, f"The resource '{what}' was not found", "notFound")


def _unauthenticated(missing):
    www = {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"' + ("" if missing else ', error="invalid_token"')}
    if missing:
        return google_error(401, "Request is missing required authentication credential. Expected OAuth 2 access token, "
                            "login cookie or other valid authentication credential. See "
                            "https://developers.google.com/identity/sign-in/web/devconsole-project.", "required",
                            headers=www, extra={"location": "Authorization", "locationType": "header"})
    return google_error(401, "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
                        "or other valid authentication credential. See "
                        "https://developers.google.com/identity/sign-in/web/devconsole-project.", "authError",
                        headers=www, extra={"location": "Authorization", "locationType": "header"})


_PERMISSIONS = {"zones": "compute.zones.list", "aggregated_instances": "compute.instances.list",
                "list_instances": "compute.instances.list", "get_instance": "compute.instances.get",
                "machine_type": "compute.machineTypes.get", "get_disk": "compute.disks.get",
                "insert_image": "compute.images.create", "get_image": "compute.images.get", "list_images": "compute.images.list",
                "delete_image": "compute.images.delete", "get_operation": "compute.globalOperations.get",
                "wait_operation": "compute.globalOperations.get", "create_build": "cloudbuild.builds.create",
                "get_build": "cloudbuild.builds.get", "cancel_build": "cloudbuild.builds.update",
                "build_operation": "cloudbuild.builds.get", "storage": "storage.objects.get"}


def _token_info(state, req):
    """(valid, missing) for the request's Bearer token."""
    auth = req.secrets.get("authorization")
    if not auth:
        return False, True
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer":
        return False, False
    with state.lock:
        info = state.tokens.get(token.strip())
    return info is not None and info["exp"] > time.time(), False


def _gate(state, key, req, auth=True):
    """The checks every API route makes first: the Bearer token (401), permissions (403),
    throttling (429) and unavailability (503). None when the request may go on."""
    with state.lock:
        state.calls[key] += 1
    if auth:
        valid, missing = _token_info(state, req)
        if not valid:
            return _unauthenticated(missing)
    with state.lock:
        if key in state.forbidden:
            return google_error(403, f"Required '{_PERMISSIONS.get(key, key)}' permission for 'projects/{state.project}'",
                                "forbidden")
        if state.throttle.get(key, 0) > 0:
            state.throttle[key] -= 1
            return google_error(429, "Rate Limit Exceeded", "rateLimitExceeded", domain="usageLimits")
        if state.unavailable.get(key, 0) > 0:
            state.unavailable[key] -= 1
            return google_error(503, "Internal error. Please try again or contact Google Support.", "backendError")
    return None


def _route(state, method, pattern, key, handler, auth=True, project=True):
    """A Route whose responder runs _gate, checks the project of the path (group "project"), then
    handler(req, match)."""
    compiled = re.compile(pattern)

    def respond(req):
        refused = _gate(state, key, req, auth)
        if refused is not None:
            return refused
        m = compiled.search(req.path)
        if project and m.group("project") not in (state.project, state.project_number):
            return _not_found(f"projects/{m.group('project')}")
        return handler(req, m)
    return Route(method, pattern, respond)


# ---- paging and filters ----------------------------------------------------------------------------
def _page_window(state, req, count):
    """(start, end, next token or None) or an error Response for maxResults / pageToken."""
    try:
        size = int(req.query.get("maxResults", 500))
    except (TypeError, ValueError):
        return google_error(400, "Invalid value for field 'maxResults': must be an integer.", "invalid")
    if size < 0 or size > 500:
        return google_error(400, f"Invalid value for field 'maxResults': {size}. Must be in the range [0, 500].", "invalid")
    if size == 0:
        size = 500
    if state.page_size:
        size = min(size, int(state.page_size))
    start = 0
    token = req.query.get("pageToken")
    if token:
        try:
            kind, _, offset = _b64url_decode(token).decode().partition(":")
            start = int(offset)
            assert kind == "hsdk-page" and 0 <= start <= count
        except Exception:
            return google_error(400, "Invalid value for field 'pageToken'.", "invalid")
    end = min(count, start + size)
    nxt = _b64url(f"hsdk-page:{end}".encode()) if end < count else None
    return start, end, nxt


_FILTER_TERM = re.compile(r"""\s*(?:AND\s+)?\(?\s*([A-Za-z_][\w.-]*)\s*(!=|=|:|\beq\b|\bne\b)\s*("([^"]*)"|'([^']*)'|[^\s()]+)\s*\)?\s*""")


def parse_filter(text):
    """The Compute Engine list filter mini-language, as far as the fixture understands it: terms
    `field = value`, `field != value`, `field : value` (has; `*` any), `field eq regex`, `field ne
    regex`, joined by spaces or AND, each maybe parenthesized; field a dotted path (labels.key).
    Returns [(field, op, value)]; raises ValueError for anything else."""
    terms, pos = [], 0
    text = text or ""
    while pos < len(text):
        m = _FILTER_TERM.match(text, pos)
        if not m or m.end() == pos:
            if text[pos:].strip() == "":
                break
            raise ValueError(f"cannot parse the filter at {text[pos:]!r}")
        value = m.group(4) if m.group(4) is not None else m.group(5) if m.group(5) is not None else m.group(3)
        terms.append((m.group(1), m.group(2), value))
        pos = m.end()
    return terms


def _field(resource, path):
    cur = resource
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def filter_matches(resource, terms):
    for name, op, value in terms:
        got = _field(resource, name)
        text = "" if got is None else (json.dumps(got) if isinstance(got, bool) else str(got))
        if isinstance(got, bool):
            text = "true" if got else "false"
        if op == "=" and text != value:
            return False
        if op == "!=" and text == value:
            return False
        if op == ":" and (got is None or (value != "*" and value not in text)):
            return False
        if op == "eq" and not re.fullmatch(value, text):
            return False
        if op == "ne" and re.fullmatch(value, text):
            return False
    return True


def _filtered(req, items):
    """items filtered by the request's `filter`, or a 400 Response."""
    text = req.query.get("filter")
    if not text:
        return items
    try:
        terms = parse_filter(text)
    except ValueError as e:
        return google_error(400, f"Invalid value for field 'filter': '{text}'. Invalid list filter expression ({e}).", "invalid")
    return [i for i in items if filter_matches(i, terms)]


# ---- token endpoint and metadata server ----------------------------------------------------------------
_NO_STORE = {"Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-cache, no-store, max-age=0, must-revalidate",
             "Pragma": "no-cache"}


def _oauth_error(status, error, description):
    return Response(status, dict(_NO_STORE), {"error": error, "error_description": description})


def _token_answer(state, kind, subject, extra=None):
    token = state.issue_token(kind, subject)
    body = {"access_token": token, "expires_in": int(state.token_lifetime), "token_type": "Bearer"}
    body.update(extra or {})
    return Response(200, dict(_NO_STORE), body)


def _verify_assertion(state, assertion):
    """None and the service account's email when the JWT is good, else (error, description)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    parts = (assertion or "").split(".")
    if len(parts) != 3:
        return ("invalid_grant", "Invalid JWT: the assertion is not a JWT (three base64url parts)."), None
    try:
        header = json.loads(_b64url_decode(parts[0]))
        claims = json.loads(_b64url_decode(parts[1]))
        signature = _b64url_decode(parts[2])
    except (ValueError, UnicodeDecodeError):
        return ("invalid_grant", "Invalid JWT: the header or the claims are not base64url JSON."), None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return ("invalid_grant", "Invalid JWT: the header and the claims must be JSON objects."), None
    if header.get("alg") != "RS256" or header.get("typ", "JWT") != "JWT":
        return ("invalid_grant", "Invalid JWT: the header must be {\"alg\":\"RS256\",\"typ\":\"JWT\"}."), None
    with state.lock:
        if header.get("kid"):
            sa = state.service_accounts.get(header["kid"])
        else:
            sa = next((s for s in state.service_accounts.values() if s["email"] == claims.get("iss")), None)
    if sa is None or sa["email"] != claims.get("iss"):
        if not any(s["email"] == claims.get("iss") for s in state.service_accounts.values()):
            return ("invalid_grant", "Invalid grant: account not found"), None
        return ("invalid_grant", "Invalid JWT Signature."), None
    try:
        sa["public_key"].verify(signature, (parts[0] + "." + parts[1]).encode(), padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return ("invalid_grant", "Invalid JWT Signature."), None
    if claims.get("aud") != state.token_uri:
        return ("invalid_grant", f"Invalid JWT: Failed audience check. The right audience is {state.token_uri}"), None
    iat, exp, now = claims.get("iat"), claims.get("exp"), time.time()
    if not isinstance(iat, int) or not isinstance(exp, int) or exp - iat > 3600 or exp <= iat or exp <= now or iat > now + 300:
        return ("invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. "
                "Check your iat and exp values in the JWT claim."), None
    scopes = str(claims.get("scope") or "").split()
    if CLOUD_PLATFORM not in scopes:
        return ("invalid_scope", "Invalid OAuth scope or ID token audience provided."), None
    return None, sa["email"]


def token_routes(state):
    """POST /token (jwt-bearer and refresh_token grants) and the metadata server."""
    def token(req):
        refused = _gate(state, "token", req, auth=False)
        if refused is not None:
            return refused
        ctype = req.headers.get("content-type", "")
        if "application/x-www-form-urlencoded" not in ctype:
            return _oauth_error(400, "invalid_request", "The request body must be application/x-www-form-urlencoded.")
        form = req.form
        grant = form.get("grant_type")
        if grant == JWT_BEARER:
            error, email = _verify_assertion(state, form.get("assertion"))
            with state.lock:
                state.token_requests.append({"grant": "jwt_bearer", "outcome": "refused" if error else "issued",
                                             "error": error[1] if error else None, "subject": email})
            if error:
                return _oauth_error(400, *error)
            return _token_answer(state, "jwt_bearer", email)
        if grant == "refresh_token":
            client_id, secret, refresh = form.get("client_id"), form.get("client_secret"), form.get("refresh_token")
            auth = req.secrets.get("authorization", "")
            if (client_id is None or secret is None) and auth.lower().startswith("basic "):
                client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            with state.lock:
                client = state.oauth_clients.get(client_id or "")
            outcome = "issued"
            if client is None or client["secret"] != secret:
                outcome, answer = "refused", _oauth_error(401, "invalid_client", "Unauthorized")
            elif refresh not in client["refresh_tokens"]:
                outcome, answer = "refused", _oauth_error(400, "invalid_grant", "Bad Request")
            with state.lock:
                state.token_requests.append({"grant": "refresh_token", "outcome": outcome, "subject": client_id})
            if outcome == "refused":
                return answer
            return _token_answer(state, "refresh_token", client_id, {"scope": CLOUD_PLATFORM})
        with state.lock:
            state.token_requests.append({"grant": grant, "outcome": "refused"})
        if not grant:
            return _oauth_error(400, "invalid_request", "Missing required parameter: grant_type")
        return _oauth_error(400, "unsupported_grant_type", f"Invalid grant_type: {grant}")

    def metadata(req):
        with state.lock:
            state.calls["metadata"] += 1
        if not state.metadata_enabled:
            return Response(404, {"Content-Type": "text/html; charset=UTF-8"}, b"Not Found")
        flavor = {"Metadata-Flavor": "Google", "Server": "Metadata Server for VM", "X-Frame-Options": "SAMEORIGIN"}
        if req.headers.get("metadata-flavor") != "Google" or "x-forwarded-for" in req.headers:
            return Response(403, dict(flavor, **{"Content-Type": "text/html; charset=UTF-8"}),
                            b"Your client does not have permission to get URL from this server. "
                            b"Missing Metadata-Flavor:Google header.")
        path = req.path.rstrip("/")
        text = lambda s: Response(200, dict(flavor, **{"Content-Type": "application/text"}), s)  # noqa: E731
        base = "/computeMetadata/v1"
        listing = {"": "computeMetadata/\n", "/computeMetadata": "v1/\n", base: "instance/\nproject/\n"}
        if path in listing:
            return text(listing[path])
        if path == base + "/project/project-id":
            return text(state.project)
        if path == base + "/project/numeric-project-id":
            return text(state.project_number)
        if path == base + "/instance/zone":
            return text(f"projects/{state.project_number}/zones/{state.zones[0]}")
        accounts = base + "/instance/service-accounts/"
        if path in (accounts + "default/email", accounts + state.service_account_email + "/email"):
            return text(state.service_account_email)
        if path in (base + "/instance/service-accounts/default/token",
                    base + f"/instance/service-accounts/{state.service_account_email}/token"):
            with state.lock:
                state.token_requests.append({"grant": "metadata", "outcome": "issued", "subject": state.service_account_email})
            token = state.issue_token("metadata", state.service_account_email)
            return Response(200, dict(flavor, **{"Content-Type": "application/json"}),
                            {"access_token": token, "expires_in": int(state.token_lifetime), "token_type": "Bearer"})
        if path == base + "/instance/service-accounts/default/scopes":
            return text(CLOUD_PLATFORM + "\n")
        return Response(404, dict(flavor, **{"Content-Type": "text/html; charset=UTF-8"}), b"Not Found")

    return [Route("POST", r"^/token$", token),
            Route("GET", r"^/$", metadata),
            Route("GET", r"^/computeMetadata(/.*)?$", metadata)]


# ---- Compute Engine ---------------------------------------------------------------------------------
_CP = r"^/compute/v1/projects/(?P<project>[^/]+)"


def _link(state, req, *parts):
    return "/".join([state.project_link(req)] + [str(p) for p in parts])


def machine_type_json(state, req, zone, name):
    cpus, mem, desc = state.machine_types[name]
    return {"kind": "compute#machineType", "id": numeric_id("machineType", name), "creationTimestamp": "1969-12-31T16:00:00.000-08:00",
            "name": name, "description": desc, "guestCpus": cpus, "memoryMb": mem, "imageSpaceGb": 0,
            "maximumPersistentDisks": 128, "maximumPersistentDisksSizeGb": "263168", "zone": zone,
            "selfLink": _link(state, req, "zones", zone, "machineTypes", name), "isSharedCpu": name in SHARED_CPU,
            "architecture": "X86_64"}


def disk_json(state, req, d):
    out = {"kind": "compute#disk", "id": numeric_id(state.project, d.zone, "disk", d.name),
           "creationTimestamp": _rfc3339(d.created), "name": d.name, "sizeGb": str(d.size_gb),
           "zone": _link(state, req, "zones", d.zone), "status": "READY",
           "selfLink": _link(state, req, "zones", d.zone, "disks", d.name),
           "type": _link(state, req, "zones", d.zone, "diskTypes", d.disk_type),
           "labelFingerprint": "42WmSpB8rSM=", "physicalBlockSizeBytes": str(d.physical_block_size),
           "architecture": d.architecture, "satisfiesPzi": True}
    if d.source_image:
        out["sourceImage"] = f"{state.compute_base(req)}/{d.source_image}"
        out["sourceImageId"] = numeric_id("image", d.source_image)
    if d.licenses:
        out["licenses"] = [f"{state.compute_base(req)}/{lic}" for lic in d.licenses]
        out["licenseCodes"] = [numeric_id("license", lic) for lic in d.licenses]
    if d.guest_os_features:
        out["guestOsFeatures"] = [{"type": t} for t in d.guest_os_features]
    if d.labels:
        out["labels"] = dict(d.labels)
    if d.users:
        out["users"] = [_link(state, req, "zones", d.zone, "instances", u) for u in d.users]
        out["lastAttachTimestamp"] = _rfc3339(d.created)
    return out


def instance_json(state, req, inst):
    disks = []
    for pos, a in enumerate(inst.disks):
        d = a.disk
        ad = {"kind": "compute#attachedDisk", "type": "PERSISTENT", "mode": a.mode,
              "source": _link(state, req, "zones", d.zone, "disks", d.name), "deviceName": a.device_name or d.name,
              "index": pos if a.index is None else a.index, "boot": a.boot, "autoDelete": a.auto_delete,
              "interface": a.interface, "diskSizeGb": str(d.size_gb), "architecture": d.architecture}
        if d.licenses and a.boot:
            ad["licenses"] = [f"{state.compute_base(req)}/{lic}" for lic in d.licenses]
        if d.guest_os_features:
            ad["guestOsFeatures"] = [{"type": t} for t in d.guest_os_features]
        disks.append(ad)
    nics = []
    for n in inst.nics:
        nic = {"kind": "compute#networkInterface", "network": _link(state, req, "global", "networks", n.network),
               "subnetwork": _link(state, req, "regions", region_of(inst.zone), "subnetworks", n.subnetwork),
               "networkIP": n.ip, "name": n.name, "fingerprint": "ZvUw5yKykn0=", "stackType": n.stack_type}
        if n.external_ip:
            nic["accessConfigs"] = [{"kind": "compute#accessConfig", "type": "ONE_TO_ONE_NAT", "name": "External NAT",
                                     "natIP": n.external_ip, "networkTier": "PREMIUM"}]
        if n.nic_type:
            nic["nicType"] = n.nic_type
        nics.append(nic)
    out = {
        "kind": "compute#instance", "id": numeric_id(state.project, inst.zone, "instance", inst.name),
        "creationTimestamp": _rfc3339(inst.created), "name": inst.name, "tags": {"fingerprint": "42WmSpB8rSM="},
        "machineType": _link(state, req, "zones", inst.zone, "machineTypes", inst.machine_type),
        "status": inst.status, "zone": _link(state, req, "zones", inst.zone), "canIpForward": False,
        "networkInterfaces": nics, "disks": disks,
        "metadata": {"kind": "compute#metadata", "fingerprint": "uQ2fCMiDm7w="},
        "serviceAccounts": [{"email": f"{state.project_number}-compute@developer.gserviceaccount.com", "scopes": [CLOUD_PLATFORM]}],
        "selfLink": _link(state, req, "zones", inst.zone, "instances", inst.name),
        "scheduling": {"onHostMaintenance": "MIGRATE", "automaticRestart": True, "preemptible": False, "provisioningModel": "STANDARD"},
        "cpuPlatform": inst.cpu_platform if inst.status == "RUNNING" else "Unknown CPU Platform",
        "labelFingerprint": "42WmSpB8rSM=", "startRestricted": False, "deletionProtection": False,
        "shieldedInstanceConfig": {"enableSecureBoot": inst.secure_boot, "enableVtpm": inst.vtpm,
                                   "enableIntegrityMonitoring": inst.integrity_monitoring},
        "shieldedInstanceIntegrityPolicy": {"updateAutoLearnPolicy": True},
        "fingerprint": "x0cTJ2m2dZk=", "lastStartTimestamp": _rfc3339(inst.created), "satisfiesPzi": True,
    }
    if inst.labels:
        out["labels"] = dict(inst.labels)
    return out


def image_json(state, req, rec):
    d = rec["disk"]
    out = {"kind": "compute#image", "id": rec["id"], "creationTimestamp": _rfc3339(rec["created"]), "name": rec["name"],
           "sourceType": "RAW", "status": rec["status"], "selfLink": _link(state, req, "global", "images", rec["name"]),
           "labelFingerprint": rec["label_fingerprint"], "storageLocations": ["us"], "architecture": "X86_64"}
    if rec["description"]:
        out["description"] = rec["description"]
    if rec["labels"]:
        out["labels"] = dict(rec["labels"])
    if d is not None:
        out["diskSizeGb"] = str(d.size_gb)
        out["sourceDisk"] = _link(state, req, "zones", d.zone, "disks", d.name)
        out["sourceDiskId"] = numeric_id(state.project, d.zone, "disk", d.name)
        if d.guest_os_features:
            out["guestOsFeatures"] = [{"type": t} for t in d.guest_os_features]
        if d.licenses:
            out["licenses"] = [f"{state.compute_base(req)}/{lic}" for lic in d.licenses]
        if rec["status"] == "READY":
            out["archiveSizeBytes"] = str(max(1, d.size_bytes // 7))
    else:
        out["diskSizeGb"] = "10"
    return out


def _new_operation(state, req, op_type, target_link, target_id, on_done=None, error=None):
    name = f"operation-{int(time.time() * 1000)}-{uuid.uuid4().hex[:13]}-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:8]}"
    rec = {"name": name, "id": numeric_id(state.project, "operation", name), "type": op_type, "target_link": target_link,
           "target_id": target_id, "status": "PENDING", "polls": 0, "polls_to_done": int(state.operation_polls),
           "insert": time.time(), "start": None, "end": None, "error": error, "on_done": on_done,
           "user": state.service_account_email}
    with state.lock:
        state.operations[name] = rec
    return rec


def _advance_operation(state, op, finish=False):
    """One poll of an operation (finish: a wait call, which returns it DONE)."""
    done_now = None
    with state.lock:
        if op["status"] == "DONE":
            return
        op["polls"] += 1
        if finish or op["polls"] >= op["polls_to_done"]:
            op["status"] = "DONE"
            op["start"] = op["start"] or time.time()
            op["end"] = time.time()
            done_now = op.get("on_done")
        else:
            op["status"] = "RUNNING"
            op["start"] = op["start"] or time.time()
    if done_now is not None:
        done_now(op)


def operation_json(state, req, op):
    out = {"kind": "compute#operation", "id": op["id"], "name": op["name"], "operationType": op["type"],
           "targetLink": op["target_link"], "targetId": op["target_id"], "status": op["status"], "user": op["user"],
           "progress": 100 if op["status"] == "DONE" else (0 if op["status"] == "PENDING" else 50),
           "insertTime": _rfc3339(op["insert"]), "selfLink": _link(state, req, "global", "operations", op["name"])}
    if op["start"]:
        out["startTime"] = _rfc3339(op["start"])
    if op["status"] == "DONE":
        out["endTime"] = _rfc3339(op["end"])
        if op["error"]:
            out["error"] = {"errors": [op["error"]]}
            out["httpErrorStatusCode"] = 403 if op["error"]["code"] == "QUOTA_EXCEEDED" else 400
            out["httpErrorMessage"] = "FORBIDDEN" if op["error"]["code"] == "QUOTA_EXCEEDED" else "BAD REQUEST"
    return out


_DISK_REF = re.compile(r"(?:^|/)(?:projects/(?P<project>[^/]+)/)?zones/(?P<zone>[^/]+)/disks/(?P<disk>[^/?]+)$")
_IMAGE_REF = re.compile(r"(?:^|/)(?:projects/(?P<project>[^/]+)/)?global/images/(?P<image>[^/?]+)$")


def _operation_error(state):
    e = state.operation_error
    if e is None:
        return None
    if isinstance(e, dict):
        return dict(e)
    messages = {"QUOTA_EXCEEDED": "Quota 'IMAGES' exceeded.  Limit: 100.0 globally.",
                "RESOURCE_OPERATION_RATE_EXCEEDED": "Operation rate exceeded for resource 'projects/{p}/global/images'. "
                "Too frequent operations from the source resource."}
    return {"code": str(e), "message": messages.get(str(e), f"The operation failed ({e}, hsdk fixture).").replace("{p}", state.project)}


def compute_routes(state):
    def zones_list(req, m):
        items = [{"kind": "compute#zone", "id": numeric_id("zone", z), "name": z, "description": z, "status": "UP",
                  "region": _link(state, req, "regions", region_of(z)), "selfLink": _link(state, req, "zones", z)}
                 for z in state.zones]
        items = _filtered(req, items)
        if isinstance(items, Response):
            return items
        return _paged(state, req, items, {"kind": "compute#zoneList", "id": f"projects/{state.project}/zones",
                                          "selfLink": _link(state, req, "zones")})

    def _paged(state, req, items, envelope):
        window = _page_window(state, req, len(items))
        if isinstance(window, Response):
            return window
        start, end, nxt = window
        body = dict(envelope)
        if items[start:end]:
            body["items"] = items[start:end]
        if nxt:
            body["nextPageToken"] = nxt
        return Response(200, {}, body)

    def _sorted_instances():
        with state.lock:
            return sorted(state.instances.values(), key=lambda i: (state.zones.index(i.zone), i.name))

    def aggregated(req, m):
        items = _filtered(req, [instance_json(state, req, i) for i in _sorted_instances()])
        if isinstance(items, Response):
            return items
        window = _page_window(state, req, len(items))
        if isinstance(window, Response):
            return window
        start, end, nxt = window
        page = items[start:end]
        scoped = {}
        for z in state.zones:
            here = [i for i in page if i["zone"].rsplit("/", 1)[1] == z]
            if here:
                scoped[f"zones/{z}"] = {"instances": here}
            else:
                scoped[f"zones/{z}"] = {"warning": {"code": "NO_RESULTS_ON_PAGE",
                                                    "message": f"There are no results for scope 'zones/{z}' on this page.",
                                                    "data": [{"key": "scope", "value": f"zones/{z}"}]}}
        body = {"kind": "compute#instanceAggregatedList", "id": f"projects/{state.project}/aggregated/instances",
                "items": scoped, "selfLink": _link(state, req, "aggregated", "instances")}
        if nxt:
            body["nextPageToken"] = nxt
        return Response(200, {}, body)

    def zone_ok(zone):
        return zone in state.zones

    def list_instances(req, m):
        zone = m.group("zone")
        if not zone_ok(zone):
            return _not_found(f"projects/{state.project}/zones/{zone}")
        items = _filtered(req, [instance_json(state, req, i) for i in _sorted_instances() if i.zone == zone])
        if isinstance(items, Response):
            return items
        return _paged(state, req, items, {"kind": "compute#instanceList", "id": f"projects/{state.project}/zones/{zone}/instances",
                                          "selfLink": _link(state, req, "zones", zone, "instances")})

    def get_instance(req, m):
        zone, name = m.group("zone"), m.group("name")
        with state.lock:
            inst = state.instances.get((zone, name))
        if inst is None:
            return _not_found(f"projects/{state.project}/zones/{zone}/instances/{name}")
        return Response(200, {}, instance_json(state, req, inst))

    def machine_type(req, m):
        zone, name = m.group("zone"), m.group("name")
        if not zone_ok(zone) or name not in state.machine_types:
            return _not_found(f"projects/{state.project}/zones/{zone}/machineTypes/{name}")
        return Response(200, {}, machine_type_json(state, req, zone, name))

    def get_disk(req, m):
        zone, name = m.group("zone"), m.group("name")
        with state.lock:
            d = state.disks.get((zone, name))
        if d is None:
            return _not_found(f"projects/{state.project}/zones/{zone}/disks/{name}")
        return Response(200, {}, disk_json(state, req, d))

    def insert_image(req, m):
        try:
            body = req.json
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return google_error(400, "Invalid JSON payload received.", "parseError")
        name = body.get("name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            return google_error(400, f"Invalid value for field 'resource.name': '{name}'. Must be a match of regex "
                                "'(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'", "invalid")
        labels = body.get("labels") or {}
        if not isinstance(labels, dict) or not all(isinstance(k, str) and LABEL_KEY_RE.match(k) and isinstance(v, str)
                                                    and LABEL_VALUE_RE.match(v) for k, v in labels.items()):
            return google_error(400, f"Invalid value for field 'resource.labels': '{labels}'. Label keys and values "
                                "must be lower-case letters, digits, '_' and '-'.", "invalid")
        source = body.get("sourceDisk")
        if not source:
            return google_error(400, "Invalid value for field 'resource': a source is required (sourceDisk, rawDisk, "
                                "sourceImage or sourceSnapshot).", "invalid")
        dm = _DISK_REF.search(urllib.parse.urlsplit(source).path if "://" in source else source)
        if not dm or (dm.group("project") and dm.group("project") not in (state.project, state.project_number)):
            return google_error(400, f"Invalid value for field 'resource.sourceDisk': '{source}'. The URL is malformed.", "invalid")
        with state.lock:
            disk = state.disks.get((dm.group("zone"), dm.group("disk")))
            exists = name in state.images
        if disk is None:
            return _not_found(f"projects/{state.project}/zones/{dm.group('zone')}/disks/{dm.group('disk')}")
        if exists:
            return google_error(409, f"The resource 'projects/{state.project}/global/images/{name}' already exists", "alreadyExists")
        force = str(req.query.get("forceCreate", "false")).lower() == "true"
        with state.lock:
            running_users = [i.name for i in state.instances.values()
                             if i.status == "RUNNING" and any(a.disk is disk for a in i.disks)]
        if running_users and not force:
            return google_error(400, f"The disk resource 'projects/{state.project}/zones/{disk.zone}/disks/{disk.name}' is already "
                                f"being used by 'projects/{state.project}/zones/{disk.zone}/instances/{running_users[0]}'",
                                "resourceInUseByAnotherResource")
        error = _operation_error(state) if "insert" in state.operation_error_types else None
        with state.lock:
            rec = state._image_record(name, disk, labels, body.get("description") or "", "PENDING")
            rec["force_create"] = force
            state.images[name] = rec
            state.created_images.append(name)
            state.image_inserts.append({"name": name, "labels": dict(labels), "source_disk": source, "force_create": force,
                                        "description": body.get("description") or ""})

        def done(op, rec=rec):
            with state.lock:
                if op["error"]:
                    if state.images.get(rec["name"]) is rec:
                        del state.images[rec["name"]]
                elif rec["status"] == "PENDING":
                    rec["status"] = "READY"
        op = _new_operation(state, req, "insert", _link(state, req, "global", "images", name), rec["id"], done, error)
        rec["operation"] = op["name"]
        return Response(200, {}, operation_json(state, req, op))

    def _image_op_poll(rec):
        op = state.operations.get(rec.get("operation") or "")
        if op is not None and op["status"] != "DONE":
            _advance_operation(state, op)  # reading the image is a poll too

    def get_image(req, m):
        name = m.group("name")
        with state.lock:
            rec = state.images.get(name)
        if rec is not None:
            _image_op_poll(rec)
            with state.lock:
                rec = state.images.get(name)
        if rec is None:
            return _not_found(f"projects/{state.project}/global/images/{name}")
        return Response(200, {}, image_json(state, req, rec))

    def list_images(req, m):
        with state.lock:
            recs = sorted(state.images.values(), key=lambda r: r["name"])
        items = _filtered(req, [image_json(state, req, r) for r in recs])
        if isinstance(items, Response):
            return items
        return _paged(state, req, items, {"kind": "compute#imageList", "id": f"projects/{state.project}/global/images",
                                          "selfLink": _link(state, req, "global", "images")})

    def delete_image(req, m):
        name = m.group("name")
        with state.lock:
            rec = state.images.pop(name, None)
            if rec is not None:
                state.deleted_images.append(name)
                state._planted_images.discard(name)
        if rec is None:
            return _not_found(f"projects/{state.project}/global/images/{name}")
        op = _new_operation(state, req, "delete", _link(state, req, "global", "images", name), rec["id"])
        return Response(200, {}, operation_json(state, req, op))

    def get_operation(req, m):
        with state.lock:
            op = state.operations.get(m.group("name"))
        if op is None:
            return _not_found(f"projects/{state.project}/global/operations/{m.group('name')}")
        _advance_operation(state, op)
        return Response(200, {}, operation_json(state, req, op))

    def wait_operation(req, m):
        with state.lock:
            op = state.operations.get(m.group("name"))
        if op is None:
            return _not_found(f"projects/{state.project}/global/operations/{m.group('name')}")
        _advance_operation(state, op, finish=True)
        return Response(200, {}, operation_json(state, req, op))

    r = lambda method, path, key, fn: _route(state, method, _CP + path, key, fn)  # noqa: E731
    return [
        r("GET", r"/zones/?$", "zones", zones_list),
        r("GET", r"/aggregated/instances/?$", "aggregated_instances", aggregated),
        r("GET", r"/zones/(?P<zone>[^/]+)/instances/?$", "list_instances", list_instances),
        r("GET", r"/zones/(?P<zone>[^/]+)/instances/(?P<name>[^/]+)$", "get_instance", get_instance),
        r("GET", r"/zones/(?P<zone>[^/]+)/machineTypes/(?P<name>[^/]+)$", "machine_type", machine_type),
        r("GET", r"/zones/(?P<zone>[^/]+)/disks/(?P<name>[^/]+)$", "get_disk", get_disk),
        r("POST", r"/global/images/?$", "insert_image", insert_image),
        r("GET", r"/global/images/?$", "list_images", list_images),
        r("GET", r"/global/images/(?P<name>[^/]+)$", "get_image", get_image),
        r("DELETE", r"/global/images/(?P<name>[^/]+)$", "delete_image", delete_image),
        r("GET", r"/global/operations/(?P<name>[^/]+)$", "get_operation", get_operation),
        r("POST", r"/global/operations/(?P<name>[^/]+)/wait$", "wait_operation", wait_operation),
    ]


# ---- Cloud Build ------------------------------------------------------------------------------------
_BP = r"^/v1/projects/(?P<project>[^/]+)(?:/locations/(?P<location>[^/]+))?/builds"
_KNOWN_FLAGS = {"client_id", "client_version", "source_image", "source_disk", "destination_uri", "format", "network", "subnet",
                "zone", "timeout", "project", "scratch_bucket_gcs_path", "oauth", "compute_endpoint_override",
                "disable_gcs_logging", "disable_cloud_logging", "disable_stdout_logging", "labels", "compute_service_account"}
_DURATION = re.compile(r"^\d+(\.\d{1,9})?s$")


def _build_error(code, message):
    return google_error(code, message)  # Cloud Build's errors carry no "errors" list


def _parse_export_step(body):
    """(step, flags) of the export build, or an error message (400 INVALID_ARGUMENT)."""
    steps = body.get("steps")
    if not isinstance(steps, list) or not steps:
        return "invalid build: build must have at least one step"
    step = steps[0]
    if len(steps) != 1 or not isinstance(step, dict):
        return "invalid build: the hsdk fixture runs builds of exactly one step (the image export)"
    if not str(step.get("name", "")).startswith(EXPORT_STEP):
        return f"invalid build: step 0 is {step.get('name')!r}, not {EXPORT_STEP}:TAG (the hsdk fixture runs only that)"
    args = step.get("args")
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        return "invalid build: step 0 args must be a list of strings"
    flags = {}
    for a in args:
        fm = re.match(r"^--?([a-z_]+)=(.*)$", a)
        if not fm:
            return f"invalid build: step 0 argument {a!r} is not -flag=value"
        if fm.group(1) not in _KNOWN_FLAGS:
            return f"invalid build: step 0 argument {a!r}: flag provided but not defined: -{fm.group(1)}"
        flags[fm.group(1)] = fm.group(2)
    if not flags.get("source_image"):
        return "invalid build: step 0 needs -source_image"
    dest = flags.get("destination_uri", "")
    if not re.match(r"^gs://[a-z0-9][-_.a-z0-9]{1,221}[a-z0-9]/.+$", dest):
        return f"invalid build: step 0 -destination_uri={dest!r} is not gs://BUCKET/OBJECT"
    if "format" in flags and flags["format"].lower() not in EXPORT_FORMATS:
        return f"invalid build: step 0 -format={flags['format']!r} is not one of {', '.join(EXPORT_FORMATS)}"
    if "timeout" in flags and not re.match(r"^\d+[smh]?$|^\d+(\.\d+)?s$", flags["timeout"]):
        return f"invalid build: step 0 -timeout={flags['timeout']!r} is not a duration"
    timeout = body.get("timeout")
    if timeout is not None and (not isinstance(timeout, str) or not _DURATION.match(timeout)):
        return f"invalid build: timeout {timeout!r} is not a duration such as \"7200s\""
    tags = body.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) and re.match(r"^[\w][\w.-]{0,127}$", t) for t in tags):
        return f"invalid build: invalid tags {tags!r}"
    return step, flags


def build_json(state, b):
    out = {"id": b["id"], "status": b["status"], "steps": [], "createTime": _zulu(b["create"]),
           "timeout": b["timeout"], "projectId": state.project,
           "logsBucket": f"gs://{state.project_number}.cloudbuild-logs.googleusercontent.com",
           "options": {"logging": "LEGACY", "pool": {}},
           "logUrl": f"https://console.cloud.google.com/cloud-build/builds/{b['id']}?project={state.project_number}",
           "tags": list(b["tags"]), "queueTtl": "3600s", "name": f"projects/{state.project_number}/locations/global/builds/{b['id']}",
           "serviceAccount": f"projects/{state.project}/serviceAccounts/{state.project_number}@cloudbuild.gserviceaccount.com"}
    step = {"name": b["step"]["name"], "args": list(b["step"].get("args", []))}
    if b["start"]:
        out["startTime"] = _zulu(b["start"])
        step["status"] = {"WORKING": "WORKING", "SUCCESS": "SUCCESS", "CANCELLED": "CANCELLED"}.get(b["status"], "FAILURE")
        step["timing"] = {"startTime": _zulu(b["start"])}
    if b["finish"]:
        out["finishTime"] = _zulu(b["finish"])
        step.setdefault("timing", {})["endTime"] = _zulu(b["finish"])
    out["steps"] = [step]
    if b.get("detail") and b["status"] in BUILD_FINAL and b["status"] != "SUCCESS":
        out["statusDetail"] = b["detail"]
        if b["status"] == "FAILURE":
            out["failureInfo"] = {"type": "USER_BUILD_STEP", "detail": b["detail"]}
    if b["status"] == "SUCCESS":
        out["results"] = {"buildStepImages": ["sha256:" + hashlib.sha256(b["step"]["name"].encode()).hexdigest()],
                          "buildStepOutputs": [""]}
    return out


def _build_operation(state, b, metadata_only=False):
    name = f"operations/build/{state.project}/{base64.b64encode(b['id'].encode()).decode()}"
    out = {"name": name, "metadata": {"@type": "type.googleapis.com/google.devtools.cloudbuild.v1.BuildOperationMetadata",
                                      "build": build_json(state, b)}}
    if not metadata_only and b["status"] in BUILD_FINAL:
        out["done"] = True
        if b["status"] == "SUCCESS":
            out["response"] = dict(build_json(state, b), **{"@type": "type.googleapis.com/google.devtools.cloudbuild.v1.Build"})
        else:
            out["error"] = {"code": 2, "message": f"Build {b['status'].lower()}; check build logs for details"}
    return out


def _finish_build(state, b):
    """The build's end: the export written (SUCCESS), or its failure. Called without the lock."""
    outcome = b["outcome"]
    flags = b["flags"]
    detail = b["detail_knob"]
    if outcome == "SUCCESS":
        source = flags["source_image"]
        m = _IMAGE_REF.search(source) or re.match(r"^(?P<image>[a-z][-a-z0-9]*)$", source)
        with state.lock:
            rec = state.images.get(m.group("image")) if m else None
        project_ok = not m or not m.groupdict().get("project") or m.group("project") in (state.project, state.project_number)
        bucket, _, obj = flags["destination_uri"][5:].partition("/")
        step = f"build step 0 \"{b['step']['name']}\" failed: step exited with non-zero status: 1"
        if rec is None or not project_ok:
            image = m.group("image") if m else source
            outcome, detail = "FAILURE", (f"Build step failure: {step}: [image-export]: source image '{source}' was not found "
                                          f"(googleapi: Error 404: The resource 'projects/{state.project}/global/images/{image}' "
                                          "was not found, notFound)")
        elif rec["status"] != "READY":
            outcome, detail = "FAILURE", (f"Build step failure: {step}: [image-export]: source image '{source}' is "
                                          f"{rec['status']}, not READY")
        elif state.gcs is None or not state.gcs.bucket_exists(bucket):
            outcome, detail = "FAILURE", f"Build step failure: {step}: [image-export]: the bucket '{bucket}' does not exist"
        else:
            try:
                data = _export_bytes(state, rec, flags, b["export"])
                state.gcs.upload(bucket, obj, data, content_type="application/octet-stream")
                with state.lock:
                    state.exports.append({"build": b["id"], "uri": flags["destination_uri"], "bytes": len(data)})
            except Exception as e:  # a broken export: the build fails, naming why
                outcome, detail = "FAILURE", f"Build step failure: {step}: [image-export]: {type(e).__name__}: {e}"
    elif outcome == "FAILURE":
        detail = detail or (f"Build step failure: build step 0 \"{b['step']['name']}\" failed: step exited with non-zero "
                            "status: 1 (hsdk fixture: build_outcome FAILURE)")
    elif outcome == "TIMEOUT":
        detail = detail or "Build timeout"
    elif outcome == "INTERNAL_ERROR":
        detail = detail or "Internal error (hsdk fixture: build_outcome INTERNAL_ERROR)"
    with state.lock:
        if b["status"] in BUILD_FINAL:  # cancelled meanwhile
            return
        b["status"] = outcome
        b["detail"] = detail
        b["finish"] = time.time()


def _export_bytes(state, rec, flags, knobs):
    d = rec["disk"]
    licenses = list(d.licenses) if d is not None and d.licenses else []
    return export_object(d.path if d is not None else None, d.size_bytes if d is not None else 10 * GiB,
                         flags.get("format", ""), knobs, state.workdir, licenses)


EXPORT_KNOBS = {"tar_manifest": False, "tar_base256": False, "gzip_members": 1, "gzip_level": 1, "short_disk_raw": 0,
                "truncate_object": None, "corrupt_object": None}


def export_object(path, size, fmt="", knobs=None, workdir=None, licenses=()):
    """The bytes the export build writes for a disk of `size` bytes held in the raw file `path`:
    the tar.gz holding disk.raw (fmt ""), or the disk converted by qemu-img (fmt vmdk, vhdx, vpc,
    ...); knobs: the export knobs (EXPORT_KNOBS' keys, see the module doc)."""
    knobs = dict(EXPORT_KNOBS, **(knobs or {}))
    fmt = (fmt or "").lower()
    if fmt:
        data = bytearray(export_converted(path, size, "vpc" if fmt == "vhd" else fmt, workdir))
        if knobs["corrupt_object"]:
            data[len(data) // 2] ^= 0xFF
    else:
        manifest = {"licenses": list(licenses)} if knobs["tar_manifest"] else None
        data = bytearray(export_tar_gz(path, size - int(knobs["short_disk_raw"] or 0), manifest, knobs["tar_base256"],
                                       knobs["gzip_level"], knobs["gzip_members"]))
        if knobs["corrupt_object"] == "crc":
            data[-8] ^= 0xFF
        elif knobs["corrupt_object"]:
            data[len(data) // 2] ^= 0xFF
    cut = knobs["truncate_object"]
    if cut is not None:
        keep = int(len(data) * cut) if isinstance(cut, float) and cut < 1 else int(cut)
        data = data[:keep]
    return bytes(data)


def _advance_build(state, b):
    """One poll of a build: QUEUED for build_queued_polls GETs, WORKING for build_working_polls, then
    its outcome (a "hang" build stays WORKING)."""
    finish = False
    with state.lock:
        if b["status"] in BUILD_FINAL:
            return
        b["polls"] += 1
        if b["polls"] <= b["queued_polls"]:
            b["status"] = "QUEUED"
        elif b["polls"] <= b["queued_polls"] + b["working_polls"] or b["outcome"] == "hang":
            b["status"] = "WORKING"
            b["start"] = b["start"] or time.time()
        else:
            b["start"] = b["start"] or time.time()
            finish = True
    if finish:
        _finish_build(state, b)


def cloudbuild_routes(state):
    def find(m):
        with state.lock:
            return state.builds.get(m.group("id"))

    def create(req, m):
        try:
            body = req.json
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _build_error(400, "Invalid JSON payload received.")
        parsed = _parse_export_step(body)
        if isinstance(parsed, str):
            return _build_error(400, parsed)
        step, flags = parsed
        bid = str(uuid.uuid4())
        with state.lock:
            b = {"id": bid, "status": "QUEUED", "step": step, "flags": flags, "timeout": body.get("timeout") or "600s",
                 "tags": list(body.get("tags") or []), "create": time.time(), "start": None, "finish": None, "polls": 0,
                 "queued_polls": int(state.build_queued_polls), "working_polls": int(state.build_working_polls),
                 "outcome": state.build_outcome, "detail_knob": state.build_status_detail, "detail": None,
                 "location": m.group("location") or "global",
                 "export": {"tar_manifest": state.tar_manifest, "tar_base256": state.tar_base256,
                            "gzip_members": state.gzip_members, "gzip_level": state.gzip_level,
                            "short_disk_raw": state.short_disk_raw, "truncate_object": state.truncate_object,
                            "corrupt_object": state.corrupt_object}}
            state.builds[bid] = b
            state.created_builds.append(bid)
        return Response(200, {}, _build_operation(state, b, metadata_only=True))

    def get(req, m):
        b = find(m)
        if b is None:
            return _build_error(404, "Requested entity was not found.")
        _advance_build(state, b)
        return Response(200, {}, build_json(state, b))

    def cancel(req, m):
        b = find(m)
        with state.lock:
            state.cancel_calls.append(m.group("id"))
        if b is None:
            return _build_error(404, "Requested entity was not found.")
        with state.lock:
            if b["status"] not in BUILD_FINAL:
                b["status"] = "CANCELLED"
                b["finish"] = time.time()
        return Response(200, {}, build_json(state, b))

    def list_builds(req, m):
        with state.lock:
            items = [build_json(state, b) for b in sorted(state.builds.values(), key=lambda b: -b["create"])]
        return Response(200, {}, {"builds": items} if items else {})

    def operation(req, m):
        try:
            bid = base64.b64decode(m.group("b64") + "=" * (-len(m.group("b64")) % 4)).decode()
        except (ValueError, UnicodeDecodeError):
            bid = ""
        with state.lock:
            b = state.builds.get(bid)
        if b is None:
            return _build_error(404, "Requested entity was not found.")
        _advance_build(state, b)
        return Response(200, {}, _build_operation(state, b))

    r = lambda method, path, key, fn: _route(state, method, path, key, fn)  # noqa: E731
    return [
        r("POST", _BP + r"/?$", "create_build", create),
        r("GET", _BP + r"/?$", "get_build", list_builds),
        r("GET", _BP + r"/(?P<id>[^/:]+)$", "get_build", get),
        r("POST", _BP + r"/(?P<id>[^/:]+):cancel$", "cancel_build", cancel),
        r("GET", r"^/v1/operations/build/(?P<project>[^/]+)/(?P<b64>[^/]+)$", "build_operation", operation),
    ]


# ---- Cloud Storage through the fixture (slow reads) ----------------------------------------------------
_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection", "host", "content-length"}


def storage_routes(state):
    """Every /storage/v1, /download/storage/v1 and /upload/storage/v1 request forwarded to
    fake-gcs-server as it came; media downloads (alt=media or /download/) streamed back
    storage_chunk bytes at a time with storage_delay seconds after each, or cut short
    (storage_drops). With storage_requires_auth a valid Bearer token is needed (401 otherwise)."""
    def forward(req):
        if state.storage_requires_auth:
            refused = _gate(state, "storage", req, auth=True)
        else:
            refused = _gate(state, "storage", req, auth=False)
        if refused is not None:
            return refused
        gcs = state.gcs
        if gcs is None:
            return google_error(404, "No such object (no fake-gcs-server behind the fixture).", "notFound")
        headers = {k: v for k, v in req.headers.items() if k not in _HOP}
        if req.body or req.method in ("POST", "PUT", "PATCH"):
            headers["Content-Length"] = str(len(req.body))
        conn = http.client.HTTPConnection(gcs.host, gcs.port, timeout=120)
        conn.request(req.method, req.raw_path, body=req.body or None, headers=headers)
        resp = conn.getresponse()
        out = {k: v for k, v in resp.getheaders() if k.lower() not in _HOP}
        media = req.query.get("alt") == "media" or req.path.startswith("/download/")
        length = resp.getheader("Content-Length")
        rng = req.headers.get("range")
        if req.method == "GET" and media and resp.status in (200, 206) and length is not None:
            with state.lock:
                drop = state.storage_drops > 0
                if drop:
                    state.storage_drops -= 1
                delay, chunk, drop_after = state.storage_delay, max(1, int(state.storage_chunk)), int(state.storage_drop_after)
            record = [req.method, req.path, rng, resp.status, 0]
            with state.lock:
                state.storage_requests.append(record)

            def pieces():
                sent = 0
                try:
                    while True:
                        want = chunk if not drop else min(chunk, drop_after - sent)
                        if want <= 0:
                            return  # cut short: the connection closes with bytes missing
                        data = resp.read(want)
                        if not data:
                            return
                        sent += len(data)
                        record[4] = sent
                        yield data
                        if delay:
                            time.sleep(delay)
                finally:
                    conn.close()
            return Response(resp.status, out, Stream(pieces(), length=int(length)))
        try:
            data = resp.read()
        finally:
            conn.close()
        with state.lock:
            state.storage_requests.append([req.method, req.path, rng, resp.status, len(data)])
        if req.method == "HEAD" and length is not None:
            out["Content-Length"] = length
        return Response(resp.status, out, data)

    return [Route("*", r"^/(?:download/|upload/)?storage/v1/", forward)]


# ---- everything ------------------------------------------------------------------------------------
def gcp_routes(state, storage=True):
    """Routes for one FixtureServer serving the token endpoint, the metadata server, Compute
    Engine, Cloud Build and (storage=True) the storage proxy."""
    routes = token_routes(state) + compute_routes(state) + cloudbuild_routes(state)
    if storage:
        routes += storage_routes(state)
    return routes
