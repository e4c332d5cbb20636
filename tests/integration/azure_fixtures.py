"""Azure fixtures for tests/integration/fixture_server.py: Microsoft Entra ID tokens (client
credentials and the instance metadata service), Azure Resource Manager (Compute virtual machines,
managed disks, snapshots with beginGetAccess / endGetAccess; Network interfaces) and the blob
endpoint of managed-disk snapshots (page-range diffs), shaped like the Azure REST API reference and
the azure-rest-api-specs examples. Disk contents live in Azurite (tests/integration/azure_sim.py):
each managed disk is backed by an Azurite page blob, each snapshot gets a page-blob copy in a
container of its own, and beginGetAccess answers a real SAS URL to that copy (si= a stored access
policy, revoked by endGetAccess).

    az = Azurite(tmp_path)
    state = AzureState(azurite=az)
    os_disk = make_disk(state, "web01-os", os_bytes, 4 << 20, os_type="Linux", hyper_v_generation="V2")
    data0 = make_disk(state, "web01-data0", data_bytes, 8 << 20)
    state.add_vm(VM("web01", os_disk, [(0, data0)], [Nic("web01-nic", "00-0D-3A-12-34-56")]))
    with FixtureServer(arm_routes(state) + blob_routes(state)) as srv:
        state.blob_endpoint = srv.url     # accessSAS URLs point here (diffs answered, the rest forwarded to Azurite)
        ... client: AZURE_AUTHORITY_HOST / ARM endpoint = srv.url ...
        assert not state.open_grants() and not state.snapshots_left()

Everything the client did is kept in the state: state.snapshots (alive), state.created_snapshots,
state.deleted_snapshots, state.access_events ([(action, snapshot name, outcome)]), state.calls
(count per route key). Knobs (attributes of AzureState, in effect from the next request):
  page_size (VM and snapshot lists; default 1 so nextLink paging is exercised),
  throttle {route key: N} (the next N calls of that route answer 429 TooManyRequests, Retry-After:
    retry_after; blob routes answer 503 ServerBusy),
  operation_polls (how many polls of an async operation answer InProgress / 202 first; default 1),
  snapshot_put_status (201; the Compute spec lists 200 and 202 too), delete_status (202, 200 or 204),
  fail_snapshot (None, "put": the PUT is refused, or "operation": the snapshot is created but its
    operation ends Failed and it stays in provisioningState Failed) with fail_snapshot_sources (None:
    every source disk, or a set of disk names),
  fail_get_access (None, "post": beginGetAccess refused, no grant; "operation": accepted, then the
    operation fails) with fail_get_access_snapshots (None: all, or a set of snapshot names),
  refuse_delete_with_active_sas (True: DELETE of a snapshot with an open grant answers 409),
  pagelist_page_size (page ranges per diff answer before a NextMarker; default 2),
  token_lifetime (seconds), blob_endpoint (base URL of accessSAS; default Azurite's),
  data_read_delay (seconds each ranged data GET of a blob waits first: a slow link).
Route keys: token, imds, list_vms, get_vm, vm_instance_view, get_disk, get_nic, list_snapshots,
put_snapshot, get_snapshot, delete_snapshot, begin_get_access, end_get_access, operation,
pagelist_diff, blob.
"""
import base64
import datetime
import email.utils
import hashlib
import http.client
import json
import re
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

import azure_sim
from fixture_server import Response, Route

# api-versions of the reference pages the shapes follow (any well-formed api-version is accepted
# and recorded; tests may assert on the ones a client sends).
COMPUTE_API_VERSION = "2023-09-01"  # Microsoft.Compute/virtualMachines
DISK_API_VERSION = "2023-04-02"  # Microsoft.Compute/disks and snapshots (DiskRP)
NETWORK_API_VERSION = "2023-09-01"  # Microsoft.Network/networkInterfaces
IMDS_API_VERSION = "2018-02-01"
ARM_SCOPE = "https://management.azure.com/.default"
ARM_RESOURCE = "https://management.azure.com/"

GiB = 1 << 30

ROUTE_KEYS = ("token", "imds", "list_vms", "get_vm", "vm_instance_view", "get_disk", "get_nic", "list_snapshots",
              "put_snapshot", "get_snapshot", "delete_snapshot", "begin_get_access", "end_get_access", "operation",
              "pagelist_diff", "blob")


def _now_iso(t=None):
    t = time.time() if t is None else t
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f0+00:00")


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Disk:
    """A managed disk. blob: (container, blob name) of the Azurite page blob that holds its bytes
    (size_bytes long), or None for a disk without contents."""
    name: str
    size_bytes: int
    sku: str = "Premium_LRS"
    blob: tuple = None
    os_type: str = None  # "Linux" / "Windows" for an OS disk
    hyper_v_generation: str = None  # "V1" / "V2"; an OS disk takes its VM's unless set
    security_type: str = None  # "TrustedLaunch" on an OS disk takes its VM's unless set
    create_option: str = "Empty"
    tags: dict = field(default_factory=dict)
    unique_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    managed_by: str = None  # the VM's id once attached (add_vm sets it)
    time_created: float = field(default_factory=time.time)

    @property
    def size_gb(self):
        return max(1, -(-self.size_bytes // GiB))


@dataclass
class Nic:
    name: str
    mac_address: str  # Azure's form: "00-0D-3A-12-34-56"
    private_ip: str = "10.0.0.4"
    primary: bool = True
    accelerated_networking: bool = False


@dataclass
class VM:
    name: str
    os_disk: Disk
    data_disks: list = field(default_factory=list)  # [(lun, Disk)]
    nics: list = field(default_factory=list)  # [Nic]; the first is primary
    vm_size: str = "Standard_D2s_v5"
    hyper_v_generation: str = "V2"  # "V1" / "V2"
    security_type: str = "TrustedLaunch"  # None: a standard VM (no securityProfile)
    secure_boot: bool = True
    vtpm: bool = True
    os_type: str = "Linux"
    power_state: str = "running"  # PowerState/... of the instance view
    tags: dict = field(default_factory=dict)
    vm_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    zones: list = None


class AzureState:
    """One subscription with one resource group, its VMs, disks and NICs, the app registration
    the tokens are issued to, and everything the client did. See the module doc for the knobs."""

    def __init__(self, azurite=None, tenant="72f988bf-86f1-41af-91ab-2d7cd011db47",
                 subscription="00000000-1111-2222-3333-444444444444", resource_group="hsdk-rg", location="westeurope",
                 client_id="11111111-2222-3333-4444-555555555555", client_secret="hsdk-fixture-client-secret",
                 page_size=1):
        self.azurite = azurite
        self.tenant, self.subscription, self.resource_group, self.location = tenant, subscription, resource_group, location
        self.client_id, self.client_secret = client_id, client_secret
        self.lock = threading.RLock()
        self.vms, self.disks, self.nics = {}, {}, {}  # lower-case name -> VM / Disk / Nic
        # knobs
        self.page_size = page_size
        self.throttle = {}
        self.retry_after = 1
        self.operation_polls = 1
        self.operation_retry_after = 0
        self.snapshot_put_status = 201
        self.delete_status = 202
        self.fail_snapshot = None
        self.fail_snapshot_sources = None
        self.fail_get_access = None
        self.fail_get_access_snapshots = None
        self.refuse_delete_with_active_sas = True
        self.pagelist_page_size = 2
        self.token_lifetime = 3599
        self.blob_endpoint = None
        self.disk_container = "disks"
        self.page_diffs = {}  # (target "container/blob", previous key or None) -> (changed, cleared)
        # records
        self.tokens = {}  # access token -> {"exp", "client_id", "kind"}
        self.snapshots = {}  # lower-case name -> snapshot record (dict)
        self.created_snapshots = []  # names, in creation order (refused PUTs not included)
        self.deleted_snapshots = []
        self.access_events = []  # (action "begin"/"end", snapshot name, outcome "accepted"/"refused"/"failed")
        self.operations = {}
        self.calls = Counter()
        self._snapshot_seq = 0

    # ---- ids ----
    def _rg_prefix(self):
        return f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"

    def vm_id(self, name):
        return f"{self._rg_prefix()}/providers/Microsoft.Compute/virtualMachines/{name}"

    def disk_id(self, name):
        return f"{self._rg_prefix()}/providers/Microsoft.Compute/disks/{name}"

    def snapshot_id(self, name):
        return f"{self._rg_prefix()}/providers/Microsoft.Compute/snapshots/{name}"

    def nic_id(self, name):
        return f"{self._rg_prefix()}/providers/Microsoft.Network/networkInterfaces/{name}"

    # ---- building ----
    def add_disk(self, disk):
        with self.lock:
            self.disks[disk.name.lower()] = disk
        return disk

    def add_vm(self, vm):
        """Registers a VM with its disks (attached: managedBy) and NICs."""
        with self.lock:
            self.vms[vm.name.lower()] = vm
            vid = self.vm_id(vm.name)
            vm.os_disk.managed_by = vid
            vm.os_disk.os_type = vm.os_disk.os_type or vm.os_type
            vm.os_disk.hyper_v_generation = vm.os_disk.hyper_v_generation or vm.hyper_v_generation
            vm.os_disk.security_type = vm.os_disk.security_type or vm.security_type
            if vm.os_disk.create_option == "Empty":
                vm.os_disk.create_option = "FromImage"
            self.add_disk(vm.os_disk)
            for _, d in vm.data_disks:
                d.managed_by = vid
                self.add_disk(d)
            for nic in vm.nics:
                self.nics[nic.name.lower()] = nic
        return vm

    def set_page_diff(self, container, blob, changed, cleared=(), prev=None):
        """The answer of the blob endpoint's diff (comp=pagelist with prevsnapshot= or
        x-ms-previous-snapshot-url) for the blob container/blob: changed and cleared byte ranges
        [(start, end inclusive)]. prev: the previous snapshot's key (the prevsnapshot value, or
        "container/blob" of the previous snapshot URL), None for any."""
        with self.lock:
            self.page_diffs[(f"{container}/{blob}", prev)] = ([tuple(r) for r in changed], [tuple(r) for r in cleared])

    def snapshot_blob(self, name):
        """(container, blob) of the Azurite copy of a snapshot made through the fixture."""
        s = self.snapshots.get(name.lower())
        return None if s is None else (s["container"], s["blob"])

    # ---- what the client left ----
    def open_grants(self):
        """Names of the snapshots whose last beginGetAccess that was accepted (including ones whose
        operation then failed) was not followed by an endGetAccess."""
        with self.lock:
            open_ = {}
            for action, name, outcome in self.access_events:
                if action == "begin" and outcome != "refused":
                    open_[name.lower()] = name
                elif action == "end":
                    open_.pop(name.lower(), None)
            return sorted(open_.values())

    def snapshots_left(self):
        """Names of the snapshots created through the fixture that were not deleted."""
        with self.lock:
            return sorted(s["name"] for s in self.snapshots.values())

    def expire_tokens(self):
        """Every token issued so far is expired from now on (ARM answers ExpiredAuthenticationToken)."""
        with self.lock:
            for t in self.tokens.values():
                t["exp"] = time.time() - 1


def make_disk(state, name, data=b"", size_bytes=None, **kw):
    """A managed disk backed by a new Azurite page blob (state.disk_container/name) of size_bytes
    (default: len(data) rounded up to 512) holding `data` from offset 0 (only non-zero pages are
    written). Other keywords go to Disk. Registered with the state (add_vm attaches it later)."""
    az = state.azurite
    size = size_bytes if size_bytes is not None else -(-len(data) // 512) * 512
    container = state.disk_container
    with state.lock:
        if not getattr(state, "_disk_container_made", False):
            status, h, body = az.request("PUT", az.path(container), {"restype": "container"})
            if status not in (201, 409):
                raise azure_sim.BlobError(status, h, body, f"create container {container}")
            state._disk_container_made = True
    az.make_page_blob(container, name, data, size)
    return state.add_disk(Disk(name, size, blob=(container, name), **kw))


# ---- response shapes ----------------------------------------------------------------------------
def _arm_error(status, code, message, headers=None):
    h = {"x-ms-failure-cause": "gateway" if status in (401, 429) else "service"}
    h.update(headers or {})
    return Response(status, h, {"error": {"code": code, "message": message}})


def _sku(name):
    return {"name": name, "tier": name.split("_")[0] if "_" in name else "Standard"}


def _vm_json(state, vm, instance_view=False):
    os_disk = vm.os_disk
    storage = {
        "imageReference": {"publisher": "Canonical", "offer": "0001-com-ubuntu-server-jammy", "sku": "22_04-lts-gen2",
                           "version": "latest", "exactVersion": "22.04.202309080"},
        "osDisk": {"osType": os_disk.os_type or vm.os_type, "name": os_disk.name, "createOption": "FromImage",
                   "caching": "ReadWrite", "managedDisk": {"storageAccountType": os_disk.sku, "id": state.disk_id(os_disk.name)},
                   "deleteOption": "Delete", "diskSizeGB": os_disk.size_gb},
        "dataDisks": [{"lun": lun, "name": d.name, "createOption": "Attach", "caching": "None",
                       "managedDisk": {"storageAccountType": d.sku, "id": state.disk_id(d.name)},
                       "deleteOption": "Detach", "diskSizeGB": d.size_gb, "toBeDetached": False}
                      for lun, d in sorted(vm.data_disks, key=lambda x: x[0])],
        "diskControllerType": "SCSI",
    }
    props = {
        "vmId": vm.vm_id,
        "hardwareProfile": {"vmSize": vm.vm_size},
        "storageProfile": storage,
        "osProfile": {"computerName": vm.name, "adminUsername": "azureuser",
                      "linuxConfiguration": {"disablePasswordAuthentication": True, "provisionVMAgent": True,
                                             "patchSettings": {"patchMode": "ImageDefault", "assessmentMode": "ImageDefault"}},
                      "secrets": [], "allowExtensionOperations": True, "requireGuestProvisionSignal": True}
        if vm.os_type == "Linux" else
        {"computerName": vm.name[:15], "adminUsername": "azureuser",
         "windowsConfiguration": {"provisionVMAgent": True, "enableAutomaticUpdates": True}, "secrets": [],
         "allowExtensionOperations": True, "requireGuestProvisionSignal": True},
        "networkProfile": {"networkInterfaces": [{"id": state.nic_id(n.name), "properties": {"primary": i == 0}}
                                                 for i, n in enumerate(vm.nics)]},
        "diagnosticsProfile": {"bootDiagnostics": {"enabled": True}},
        "provisioningState": "Succeeded",
        "timeCreated": _now_iso(os_disk.time_created),
    }
    if vm.security_type:
        props["securityProfile"] = {"uefiSettings": {"secureBootEnabled": vm.secure_boot, "vTpmEnabled": vm.vtpm},
                                    "securityType": vm.security_type}
    if instance_view:
        props["instanceView"] = _instance_view_json(state, vm)
    out = {"name": vm.name, "id": state.vm_id(vm.name), "type": "Microsoft.Compute/virtualMachines",
           "location": state.location, "tags": dict(vm.tags), "properties": props}
    if vm.zones:
        out["zones"] = list(vm.zones)
    return out


def _instance_view_json(state, vm):
    now = _now_iso()
    disks = [vm.os_disk] + [d for _, d in vm.data_disks]
    return {
        "computerName": vm.name, "osName": "ubuntu" if vm.os_type == "Linux" else "Windows Server 2022 Datacenter",
        "osVersion": "22.04" if vm.os_type == "Linux" else "10.0.20348", "hyperVGeneration": vm.hyper_v_generation,
        "vmAgent": {"vmAgentVersion": "2.9.1.1", "statuses": [{"code": "ProvisioningState/succeeded", "level": "Info",
                                                                "displayStatus": "Ready", "time": now}]},
        "disks": [{"name": d.name, "statuses": [{"code": "ProvisioningState/succeeded", "level": "Info",
                                                  "displayStatus": "Provisioning succeeded", "time": now}]} for d in disks],
        "statuses": [{"code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Provisioning succeeded", "time": now},
                     {"code": f"PowerState/{vm.power_state}", "level": "Info",
                      "displayStatus": "VM " + vm.power_state.replace("deallocated", "deallocated")}],
    }


def _disk_json(state, d):
    props = {
        "creationData": {"createOption": d.create_option},
        "diskSizeGB": d.size_gb, "diskSizeBytes": d.size_bytes, "uniqueId": d.unique_id,
        "encryption": {"type": "EncryptionAtRestWithPlatformKey"},
        "networkAccessPolicy": "AllowAll", "publicNetworkAccess": "Enabled",
        "timeCreated": _now_iso(d.time_created), "provisioningState": "Succeeded",
        "diskState": "Attached" if d.managed_by else "Unattached",
        "supportedCapabilities": {"architecture": "x64"},
    }
    if d.sku.startswith("Premium"):
        props["tier"] = "P10"
    if d.os_type:
        props["osType"] = d.os_type
    if d.hyper_v_generation:
        props["hyperVGeneration"] = d.hyper_v_generation
    if d.security_type:
        props["securityProfile"] = {"securityType": d.security_type}
    out = {"name": d.name, "id": state.disk_id(d.name), "type": "Microsoft.Compute/disks", "location": state.location,
           "tags": dict(d.tags), "sku": _sku(d.sku), "properties": props}
    if d.managed_by:
        out["managedBy"] = d.managed_by
    return out


def _nic_json(state, nic):
    vm = next((v for v in state.vms.values() if nic in v.nics), None)
    nid = state.nic_id(nic.name)
    vnet = f"/subscriptions/{state.subscription}/resourceGroups/{state.resource_group}/providers/Microsoft.Network/virtualNetworks/hsdk-vnet"
    props = {
        "provisioningState": "Succeeded", "resourceGuid": str(uuid.uuid5(uuid.NAMESPACE_URL, nid)),
        "ipConfigurations": [{"name": "ipconfig1", "id": f"{nid}/ipConfigurations/ipconfig1",
                              "etag": 'W/"00000000-0000-0000-0000-000000000001"', "type": "Microsoft.Network/networkInterfaces/ipConfigurations",
                              "properties": {"provisioningState": "Succeeded", "privateIPAddress": nic.private_ip,
                                             "privateIPAllocationMethod": "Dynamic", "subnet": {"id": f"{vnet}/subnets/default"},
                                             "primary": True, "privateIPAddressVersion": "IPv4"}}],
        "dnsSettings": {"dnsServers": [], "appliedDnsServers": [], "internalDomainNameSuffix": "hsdk.ax.internal.cloudapp.net"},
        "macAddress": nic.mac_address, "enableAcceleratedNetworking": nic.accelerated_networking,
        "vnetEncryptionSupported": False, "enableIPForwarding": False, "primary": nic.primary,
        "hostedWorkloads": [], "tapConfigurations": [], "nicType": "Standard", "auxiliaryMode": "None", "auxiliarySku": "None",
    }
    if vm is not None:
        props["virtualMachine"] = {"id": state.vm_id(vm.name)}
    return {"name": nic.name, "id": nid, "etag": 'W/"00000000-0000-0000-0000-000000000001"', "type": "Microsoft.Network/networkInterfaces",
            "location": state.location, "kind": "Regular", "properties": props}


def _snapshot_json(state, s):
    d = s["source"]
    props = {
        "creationData": {"createOption": s["create_option"], "sourceResourceId": state.disk_id(d.name), "sourceUniqueId": d.unique_id},
        "diskSizeGB": d.size_gb, "diskSizeBytes": d.size_bytes, "uniqueId": s["unique_id"],
        "encryption": {"type": "EncryptionAtRestWithPlatformKey"}, "incremental": s["incremental"],
        "networkAccessPolicy": "AllowAll", "publicNetworkAccess": "Enabled",
        "timeCreated": _now_iso(s["created"]), "provisioningState": s["provisioning"],
        "diskState": "ActiveSAS" if s.get("grant") else "Unattached",
        "supportedCapabilities": {"architecture": "x64"},
    }
    if s["incremental"]:
        props["incrementalSnapshotFamilyId"] = d.unique_id
    if d.os_type:
        props["osType"] = d.os_type
    if d.hyper_v_generation:
        props["hyperVGeneration"] = d.hyper_v_generation
    if d.security_type:
        props["securityProfile"] = {"securityType": d.security_type}
    return {"name": s["name"], "id": state.snapshot_id(s["name"]), "type": "Microsoft.Compute/snapshots",
            "location": state.location, "tags": dict(s["tags"]), "sku": _sku(s["sku"]), "properties": props}


# ---- plumbing shared by the routes ---------------------------------------------------------------
_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")


def _base(state, req):
    return "http://" + req.headers.get("host", "127.0.0.1")


def _throttled(state, key, blob=False):
    with state.lock:
        state.calls[key] += 1
        n = state.throttle.get(key, 0)
        if n <= 0:
            return None
        state.throttle[key] = n - 1
    if blob:
        return Response(503, {"Retry-After": str(state.retry_after), "x-ms-error-code": "ServerBusy", "Content-Type": "application/xml"},
                        _storage_error_xml("ServerBusy", "The server is busy."))
    return _arm_error(429, "TooManyRequests", "The request is being throttled as the limit has been reached for operation type "
                      f"- {key}. Please retry after {state.retry_after} seconds.", {"Retry-After": str(state.retry_after)})


def _check_token(state, req):
    auth = req.secrets.get("authorization")
    www = f'Bearer authorization_uri="https://login.microsoftonline.com/{state.tenant}", error="invalid_token"'
    if not auth:
        return _arm_error(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.",
                          {"WWW-Authenticate": www + ', error_description="The authentication failed because of missing \'Authorization\' header."'})
    scheme, _, token = auth.partition(" ")
    with state.lock:
        info = state.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
    if info is None:
        return _arm_error(401, "InvalidAuthenticationToken", "The access token is invalid.",
                          {"WWW-Authenticate": www + ', error_description="The access token is invalid."'})
    now = time.time()
    if info["exp"] <= now:
        fmt = lambda t: datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%m/%d/%Y %H:%M:%S")  # noqa: E731
        return _arm_error(401, "ExpiredAuthenticationToken", f"The access token expiry UTC time '{fmt(info['exp'])}' is earlier than "
                          f"current UTC time '{fmt(now)}'.", {"WWW-Authenticate": www + ', error_description="The access token has expired."'})
    return None


def _arm(state, key, handler, scope="rg"):
    """Wraps an ARM handler(req, match): bearer token, throttling, api-version, subscription and
    resource group checks, then request ids on the answer."""
    def respond(req):
        refused = _check_token(state, req) or _throttled(state, key)
        if refused is None:
            version = req.query.get("api-version")
            if not version:
                refused = _arm_error(400, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests.")
            elif not isinstance(version, str) or not _API_VERSION.match(version):
                refused = _arm_error(400, "InvalidApiVersionParameter", f"The api-version '{version}' is invalid.")
        m = respond.pattern.search(req.path)
        if refused is None and m.group("sub").lower() != state.subscription.lower():
            refused = _arm_error(404, "SubscriptionNotFound", f"The subscription '{m.group('sub')}' could not be found.")
        if refused is None and scope == "rg" and m.group("rg").lower() != state.resource_group.lower():
            refused = _arm_error(404, "ResourceGroupNotFound", f"Resource group '{m.group('rg')}' could not be found.")
        resp = refused or handler(req, m)
        rid = str(uuid.uuid4())
        resp.headers.setdefault("x-ms-request-id", rid)
        resp.headers.setdefault("x-ms-correlation-request-id", req.headers.get("x-ms-correlation-request-id") or rid)
        resp.headers.setdefault("Cache-Control", "no-cache")
        if isinstance(resp.body, (dict, list)):
            resp.headers.setdefault("Content-Type", "application/json; charset=utf-8")
        return resp
    return respond


def _route(method, path, responder):
    """A case-insensitive route (ARM paths are), the compiled pattern also given to the responder."""
    r = Route(method, "(?i)" + path, responder)
    responder.pattern = r.pattern
    return r


def _page(state, req, items, render):
    size = max(1, int(state.page_size or 1))
    token = req.query.get("$skiptoken")
    start = 0
    if token:
        try:
            start = int(base64.urlsafe_b64decode(token + "==").decode().split(":", 1)[1])
        except (ValueError, IndexError):
            return _arm_error(400, "InvalidSkipToken", "The skip token is invalid.")
    body = {"value": [render(x) for x in items[start:start + size]]}
    if start + size < len(items):
        q = {k: v for k, v in req.query.items() if k != "$skiptoken"}
        q["$skiptoken"] = _b64url(f"hsdk:{start + size}".encode())
        body["nextLink"] = _base(state, req) + req.path + "?" + urllib.parse.urlencode(q, quote_via=urllib.parse.quote, safe="$")
    return Response(200, {}, body)


def _new_operation(state, req, kind, target, outcome="Succeeded", output=None, location_body=None, error=None, error_status=409):
    op_id = str(uuid.uuid4())
    with state.lock:
        state.operations[op_id] = {"id": op_id, "kind": kind, "target": target, "polls_left": state.operation_polls,
                                   "outcome": outcome, "output": output, "location_body": location_body, "error": error,
                                   "error_status": error_status, "start": time.time(), "end": None, "polls": 0}
    version = req.query.get("api-version") or DISK_API_VERSION
    url = (f"{_base(state, req)}/subscriptions/{state.subscription}/providers/Microsoft.Compute/locations/{state.location}"
           f"/DiskOperations/{op_id}?p={_b64url(op_id.encode())[:16]}&api-version={version}")
    return op_id, url, url.replace("&api-version=", "&monitor=true&api-version=")


def _advance(state, op):
    """One poll: True while the operation is still in progress."""
    with state.lock:
        op["polls"] += 1
        if op["polls_left"] > 0:
            op["polls_left"] -= 1
            return True
        if op["end"] is None:
            op["end"] = time.time()
            done = op.get("on_done")
            if done:
                done(op)
        return False


def _async_headers(state, async_url, location_url=None):
    h = {"Azure-AsyncOperation": async_url, "Retry-After": str(state.operation_retry_after)}
    if location_url:
        h["Location"] = location_url
    return h


def _find_snapshot(state, name):
    with state.lock:
        return state.snapshots.get(name.lower())


def _not_found(kind, name, rg):
    return _arm_error(404, "ResourceNotFound", f"The Resource '{kind}/{name}' under resource group '{rg}' was not found. "
                      "For more details please go to https://aka.ms/ARMResourceNotFoundFix")


# ---- tokens -----------------------------------------------------------------------------------
def _issue_token(state, kind, client_id, audience):
    now = int(time.time())
    header = {"typ": "JWT", "alg": "RS256", "kid": "hsdk-fixture"}
    claims = {"aud": audience.rstrip("/"), "iss": f"https://sts.windows.net/{state.tenant}/", "iat": now, "nbf": now,
              "exp": now + state.token_lifetime, "appid": client_id, "tid": state.tenant, "oid": str(uuid.uuid4()),
              "idtyp": "app", "ver": "1.0", "uti": uuid.uuid4().hex}
    token = ".".join([_b64url(json.dumps(header).encode()), _b64url(json.dumps(claims).encode()),
                      _b64url(hashlib.sha256(uuid.uuid4().bytes).digest())])
    with state.lock:
        state.tokens[token] = {"exp": now + state.token_lifetime, "client_id": client_id, "kind": kind}
    return token, now


def _aad_error(status, error, code, description, state):
    trace, corr = str(uuid.uuid4()), str(uuid.uuid4())
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    return Response(status, {"Content-Type": "application/json; charset=utf-8"}, {
        "error": error, "error_description": f"AADSTS{code}: {description}\r\nTrace ID: {trace}\r\nCorrelation ID: {corr}\r\nTimestamp: {stamp}",
        "error_codes": [code], "timestamp": stamp, "trace_id": trace, "correlation_id": corr,
        "error_uri": f"https://login.microsoftonline.com/error?code={code}"})


def _token_route(state):
    def respond(req):
        throttled = _throttled(state, "token")
        if throttled:
            return throttled
        tenant = respond.pattern.search(req.path).group("tenant")
        if tenant.lower() not in (state.tenant.lower(), "organizations"):
            return _aad_error(400, "invalid_request", 90002, f"Tenant '{tenant}' not found. Check to make sure you have the correct "
                              "tenant ID and are signing into the correct cloud.", state)
        form = req.form
        if not form.get("grant_type"):
            return _aad_error(400, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'.", state)
        if form["grant_type"] != "client_credentials":
            return _aad_error(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.", state)
        if form.get("client_id") != state.client_id:
            return _aad_error(400, "unauthorized_client", 700016, f"Application with identifier '{form.get('client_id')}' was not "
                              f"found in the directory '{state.tenant}'.", state)
        scope = form.get("scope")
        if not scope:
            return _aad_error(400, "invalid_request", 900144, "The request body must contain the following parameter: 'scope'.", state)
        if scope.rstrip("/").lower() != ARM_SCOPE.lower():
            return _aad_error(400, "invalid_scope", 1002012, f"The provided value for scope {scope} is not valid. Client credential "
                              "flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", state)
        secret = req.secrets.get("authorization")  # client_secret_basic: Authorization: Basic base64(id:secret)
        given = form.get("client_secret")
        if given is None and secret and secret.lower().startswith("basic "):
            given = base64.b64decode(secret[6:]).decode().partition(":")[2]
        if given != state.client_secret:
            return _aad_error(401, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the "
                              "request is the client secret value, not the client secret ID, for a secret added to app "
                              f"'{state.client_id}'.", state)
        token, _ = _issue_token(state, "client_credentials", state.client_id, "https://management.azure.com")
        return Response(200, {"Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store, no-cache"},
                        {"token_type": "Bearer", "expires_in": state.token_lifetime, "ext_expires_in": state.token_lifetime,
                         "access_token": token})
    return _route("POST", r"^/(?P<tenant>[^/]+)/oauth2/v2\.0/token$", respond)


def _imds_route(state):
    def respond(req):
        throttled = _throttled(state, "imds")
        if throttled:
            return throttled
        if req.headers.get("metadata", "").lower() != "true":
            return Response(400, {}, {"error": "invalid_request", "error_description": "Required metadata header not specified"})
        if not req.query.get("api-version"):
            return Response(400, {}, {"error": "invalid_request", "error_description": "Required query variable 'api-version' is missing"})
        resource = req.query.get("resource")
        if not resource:
            return Response(400, {}, {"error": "invalid_request", "error_description": "Required query variable 'resource' is missing"})
        if resource.rstrip("/").lower() != ARM_RESOURCE.rstrip("/").lower():
            return Response(400, {}, {"error": "invalid_resource", "error_description": f"AADSTS500011: The resource principal named "
                                      f"{resource} was not found in the tenant named {state.tenant}."})
        client_id = req.query.get("client_id") or state.client_id
        token, now = _issue_token(state, "imds", client_id, resource)
        return Response(200, {}, {"access_token": token, "client_id": client_id, "expires_in": str(state.token_lifetime),
                                  "expires_on": str(now + state.token_lifetime), "ext_expires_in": str(state.token_lifetime),
                                  "not_before": str(now), "resource": resource, "token_type": "Bearer"})
    return _route("GET", r"^/metadata/identity/oauth2/token$", respond)


# ---- ARM ---------------------------------------------------------------------------------------
_SUB = r"^/subscriptions/(?P<sub>[^/]+)"
_RG = _SUB + r"/resourceGroups/(?P<rg>[^/]+)"
_COMPUTE = _RG + r"/providers/Microsoft\.Compute"


def _create_snapshot(state, req, m):
    name = m.group("name")
    body = req.json if req.body else None
    if not isinstance(body, dict):
        return _arm_error(400, "InvalidRequestContent", "The request content was invalid and could not be deserialized.")
    if not body.get("location"):
        return _arm_error(400, "LocationRequired", "The location property is required for this definition.")
    if body["location"].replace(" ", "").lower() != state.location.lower():
        return _arm_error(400, "InvalidParameter", f"Snapshot location '{body['location']}' must match the source disk's location '{state.location}'.")
    props = body.get("properties") or {}
    creation = props.get("creationData") or {}
    option = creation.get("createOption")
    if option not in ("Copy", "CopyStart"):
        return _arm_error(400, "InvalidParameter", f"Parameter 'creationData.createOption' ({option}) is not valid for a snapshot of a managed disk.")
    source_id = creation.get("sourceResourceId") or ""
    source = None
    with state.lock:
        for d in state.disks.values():
            if state.disk_id(d.name).lower() == source_id.rstrip("/").lower():
                source = d
    if source is None:
        return _arm_error(404, "NotFound", f"Resource {source_id} not found (creationData.sourceResourceId).")
    incremental = bool(props.get("incremental", False))
    existing = _find_snapshot(state, name)
    if existing is not None:  # createOrUpdate of an existing snapshot: tags only
        with state.lock:
            existing["tags"] = dict(body.get("tags") or {})
        return Response(200, {}, _snapshot_json(state, existing))
    failing = state.fail_snapshot and (state.fail_snapshot_sources is None or source.name in state.fail_snapshot_sources)
    if failing and state.fail_snapshot == "put":
        return _arm_error(409, "OperationNotAllowed", f"Snapshot creation from disk '{source.name}' is not allowed now (hsdk fixture: fail_snapshot).")
    with state.lock:
        state._snapshot_seq += 1
        seq = state._snapshot_seq
    record = {"name": name, "source": source, "incremental": incremental, "create_option": option,
              "tags": dict(body.get("tags") or {}), "sku": (body.get("sku") or {}).get("name") or ("Standard_LRS" if incremental else source.sku),
              "created": time.time(), "seq": seq, "provisioning": "Updating", "unique_id": str(uuid.uuid4()),
              "container": f"md-{hashlib.sha1(f'{seq}:{name.lower()}'.encode()).hexdigest()[:20]}", "blob": "abcd", "grant": None,
              "size": source.size_bytes}
    if state.azurite is not None and source.blob is not None:  # the frozen contents: a sparse page-blob copy
        az = state.azurite
        az.create_container(record["container"])
        az.copy_page_blob(source.blob[0], source.blob[1], record["container"], record["blob"])
    else:
        record["container"] = record["blob"] = None
    error = {"code": "InternalDiskManagementError", "message": f"An internal disk management error occurred creating snapshot '{name}' (hsdk fixture: fail_snapshot)."}
    outcome = "Failed" if failing else "Succeeded"
    op_id, async_url, _ = _new_operation(state, req, "put_snapshot", name, outcome, error=error if failing else None)
    op = state.operations[op_id]

    def done(op, record=record):
        record["provisioning"] = op["outcome"]
        op["output"] = _snapshot_json(state, record)
        op["location_body"] = op["output"]
    op["on_done"] = done
    record["operation"] = op_id
    with state.lock:
        state.snapshots[name.lower()] = record
        state.created_snapshots.append(name)
    return Response(state.snapshot_put_status, _async_headers(state, async_url), _snapshot_json(state, record))


def _get_snapshot(state, req, m):
    s = _find_snapshot(state, m.group("name"))
    if s is None:
        return _not_found("Microsoft.Compute/snapshots", m.group("name"), m.group("rg"))
    op = state.operations.get(s.get("operation"))
    if op is not None and op["end"] is None:
        _advance(state, op)  # reading the resource is a poll too
    return Response(200, {}, _snapshot_json(state, s))


def _delete_snapshot(state, req, m):
    name = m.group("name")
    s = _find_snapshot(state, name)
    if s is None:
        return Response(204, {}, b"")
    if s.get("grant") and state.refuse_delete_with_active_sas:
        return _arm_error(409, "OperationNotAllowed", f"Snapshot {s['name']} has an active SAS URI (diskState ActiveSAS): "
                          "end access (endGetAccess) before deleting it.")
    with state.lock:
        state.snapshots.pop(name.lower(), None)
        state.deleted_snapshots.append(s["name"])
    if state.azurite is not None and s["container"]:
        state.azurite.request("DELETE", state.azurite.path(s["container"]), {"restype": "container"})
    if state.delete_status in (200, 204):
        return Response(state.delete_status, {}, b"")
    _, async_url, location_url = _new_operation(state, req, "delete_snapshot", s["name"])
    return Response(202, _async_headers(state, async_url, location_url), b"")


def _begin_get_access(state, req, m):
    name = m.group("name")
    s = _find_snapshot(state, name)
    if s is None:
        return _not_found("Microsoft.Compute/snapshots", name, m.group("rg"))
    body = req.json if req.body else None
    if not isinstance(body, dict) or body.get("access") not in ("Read",):
        return _arm_error(400, "InvalidParameter", "Parameter 'grantAccessData.access' must be 'Read' for a snapshot.")
    duration = body.get("durationInSeconds")
    if not isinstance(duration, int) or isinstance(duration, bool) or duration <= 0:
        return _arm_error(400, "InvalidParameter", "Parameter 'grantAccessData.durationInSeconds' must be a positive integer.")
    if s["provisioning"] != "Succeeded":
        with state.lock:
            state.access_events.append(("begin", s["name"], "refused"))
        return _arm_error(409, "OperationNotAllowed", f"Snapshot {s['name']} is in provisioning state '{s['provisioning']}'; "
                          "access can be granted once it has succeeded.")
    failing = state.fail_get_access and (state.fail_get_access_snapshots is None or s["name"] in state.fail_get_access_snapshots)
    if failing and state.fail_get_access == "post":
        with state.lock:
            state.access_events.append(("begin", s["name"], "refused"))
        return _arm_error(409, "OperationNotAllowed", f"Granting access to snapshot {s['name']} is not allowed now (hsdk fixture: fail_get_access).")
    if s["container"] is None:
        raise RuntimeError(f"snapshot {s['name']} has no Azurite copy (AzureState.azurite and Disk.blob are needed for beginGetAccess)")
    si = str(uuid.uuid4())
    expiry = time.time() + duration
    az = state.azurite
    if not failing:
        az.set_container_acl(s["container"], {si: {"permissions": "r", "expiry": expiry}})
        sas = az.sas_url(s["container"], s["blob"], identifier=si, endpoint=state.blob_endpoint or az.endpoint)
    with state.lock:
        s["grant"] = {"si": si, "expiry": expiry, "duration": duration}
        state.access_events.append(("begin", s["name"], "failed" if failing else "accepted"))
    error = {"code": "InternalDiskManagementError", "message": f"Granting access to snapshot {s['name']} failed (hsdk fixture: fail_get_access)."}
    if failing:
        _, async_url, location_url = _new_operation(state, req, "begin_get_access", s["name"], "Failed", error=error, error_status=500)
    else:
        _, async_url, location_url = _new_operation(state, req, "begin_get_access", s["name"], output={"accessSAS": sas},
                                                    location_body={"accessSAS": sas})
    return Response(202, _async_headers(state, async_url, location_url), b"")


def _end_get_access(state, req, m):
    name = m.group("name")
    s = _find_snapshot(state, name)
    if s is None:
        return _not_found("Microsoft.Compute/snapshots", name, m.group("rg"))
    with state.lock:
        s["grant"] = None
        state.access_events.append(("end", s["name"], "accepted"))
    if state.azurite is not None and s["container"]:
        state.azurite.set_container_acl(s["container"], {})  # the SAS stops working
    _, async_url, location_url = _new_operation(state, req, "end_get_access", s["name"])
    return Response(202, _async_headers(state, async_url, location_url), b"")


def _operation(state, req, m):
    op = state.operations.get(m.group("op"))
    if op is None:
        return _arm_error(404, "NotFound", f"Operation {m.group('op')} was not found.")
    monitor = str(req.query.get("monitor", "")).lower() == "true"
    running = _advance(state, op)
    start = _now_iso(op["start"])
    if monitor:  # the Location URL: 202 while running, then the result (or the error's status)
        if running:
            return Response(202, {"Location": _base(state, req) + req.raw_path, "Retry-After": str(state.operation_retry_after)}, b"")
        if op["outcome"] == "Failed":
            return Response(op["error_status"], {}, {"error": op["error"]})
        body = op["location_body"]
        return Response(200, {}, body if body is not None else b"")
    out = {"startTime": start, "status": "InProgress" if running else op["outcome"], "name": op["id"]}
    if not running:
        out["endTime"] = _now_iso(op["end"])
        if op["outcome"] == "Failed":
            out["error"] = op["error"]
        elif op["output"] is not None:
            out["properties"] = {"output": op["output"]}
    return Response(200, {}, out)


def arm_routes(state):
    """Routes for the token endpoints and ARM (see the module doc), to give to FixtureServer."""
    def vm_list(req, m):
        with state.lock:  # one resource group holds them all: the subscription's list is the group's
            vms = sorted(state.vms.values(), key=lambda v: v.name.lower())
        expand = req.query.get("$expand") == "instanceView"
        return _page(state, req, vms, lambda v: _vm_json(state, v, expand))

    def vm_get(req, m):
        vm = state.vms.get(m.group("name").lower())
        if vm is None:
            return _not_found("Microsoft.Compute/virtualMachines", m.group("name"), m.group("rg"))
        return Response(200, {}, _vm_json(state, vm, req.query.get("$expand") == "instanceView"))

    def vm_instance_view(req, m):
        vm = state.vms.get(m.group("name").lower())
        if vm is None:
            return _not_found("Microsoft.Compute/virtualMachines", m.group("name"), m.group("rg"))
        return Response(200, {}, _instance_view_json(state, vm))

    def disk_get(req, m):
        d = state.disks.get(m.group("name").lower())
        if d is None:
            return _not_found("Microsoft.Compute/disks", m.group("name"), m.group("rg"))
        return Response(200, {}, _disk_json(state, d))

    def nic_get(req, m):
        n = state.nics.get(m.group("name").lower())
        if n is None:
            return _not_found("Microsoft.Network/networkInterfaces", m.group("name"), m.group("rg"))
        return Response(200, {}, _nic_json(state, n))

    def snapshot_list(req, m):
        with state.lock:
            snaps = sorted(state.snapshots.values(), key=lambda s: s["seq"])
        return _page(state, req, snaps, lambda s: _snapshot_json(state, s))

    w = lambda key, fn, scope="rg": _arm(state, key, fn, scope)  # noqa: E731
    snap = _COMPUTE + r"/snapshots/(?P<name>[^/]+)"
    return [
        _token_route(state),
        _imds_route(state),
        _route("GET", _SUB + r"/providers/Microsoft\.Compute/virtualMachines/?$", w("list_vms", vm_list, "sub")),
        _route("GET", _COMPUTE + r"/virtualMachines/?$", w("list_vms", vm_list)),
        _route("GET", _COMPUTE + r"/virtualMachines/(?P<name>[^/]+)/instanceView$", w("vm_instance_view", vm_instance_view)),
        _route("GET", _COMPUTE + r"/virtualMachines/(?P<name>[^/]+)$", w("get_vm", vm_get)),
        _route("GET", _COMPUTE + r"/disks/(?P<name>[^/]+)$", w("get_disk", disk_get)),
        _route("GET", _RG + r"/providers/Microsoft\.Network/networkInterfaces/(?P<name>[^/]+)$", w("get_nic", nic_get)),
        _route("GET", _COMPUTE + r"/snapshots/?$", w("list_snapshots", snapshot_list)),
        _route("PUT", snap + "$", w("put_snapshot", lambda req, m: _create_snapshot(state, req, m))),
        _route("GET", snap + "$", w("get_snapshot", lambda req, m: _get_snapshot(state, req, m))),
        _route("DELETE", snap + "$", w("delete_snapshot", lambda req, m: _delete_snapshot(state, req, m))),
        _route("POST", snap + "/beginGetAccess$", w("begin_get_access", lambda req, m: _begin_get_access(state, req, m))),
        _route("POST", snap + "/endGetAccess$", w("end_get_access", lambda req, m: _end_get_access(state, req, m))),
        _route("GET", _SUB + r"/providers/Microsoft\.Compute/locations/[^/]+/DiskOperations/(?P<op>[^/]+)$",
               w("operation", lambda req, m: _operation(state, req, m), "sub")),
    ]


# ---- the blob endpoint of managed-disk snapshots --------------------------------------------------
def _storage_error_xml(code, message, detail=None):
    rid = str(uuid.uuid4())
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")
    extra = f"<AuthenticationErrorDetail>{escape(detail)}</AuthenticationErrorDetail>" if detail else ""
    return (f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code><Message>{escape(message)}\n'
            f"RequestId:{rid}\nTime:{stamp}</Message>{extra}</Error>").encode()


def _storage_error(status, code, message, detail=None, extra_headers=None):
    h = {"Content-Type": "application/xml", "x-ms-error-code": code, "x-ms-request-id": str(uuid.uuid4()),
         "x-ms-version": azure_sim.SERVICE_VERSION}
    h.update(extra_headers or {})
    return Response(status, h, _storage_error_xml(code, message, detail))


def _check_blob_auth(state, req, container, blob):
    """None when the request carries a valid SAS for container/blob (or a valid SharedKey
    signature), else the 403 answer."""
    az = state.azurite
    if req.query.get("sig"):
        policies = az.container_acl(container) if (az is not None and req.query.get("si")) else {}
        reason = azure_sim.verify_sas(container, blob, req.query, policies=policies)
        if reason is None:
            return None
        return _storage_error(403, "AuthenticationFailed", "Server failed to authenticate the request. Make sure the value of "
                              "Authorization header is formed correctly including the signature.", reason)
    auth = req.secrets.get("authorization", "")
    if auth.startswith("SharedKey "):
        headers = dict(req.headers)
        expected = azure_sim.shared_key_authorization(req.method, urllib.parse.urlsplit(req.raw_path).path, req.query, headers)
        if auth == expected:
            return None
        return _storage_error(403, "AuthenticationFailed", "Server failed to authenticate the request.", "signature mismatch")
    return _storage_error(401, "NoAuthenticationInformation", "Server failed to authenticate the request. Please refer to the "
                          "information in the www-authenticate header.")


def _runs(pages):
    """Sorted page indexes → [(start byte, end byte inclusive)] runs."""
    out = []
    for p in sorted(pages):
        if out and out[-1][1] + 1 == p * 512:
            out[-1] = (out[-1][0], p * 512 + 511)
        else:
            out.append((p * 512, p * 512 + 511))
    return out


def _pages_of(az, container, blob):
    """{page index: bytes} of the written pages of an Azurite page blob."""
    out = {}
    for start, end in az.page_ranges(container, blob):
        data = az.read(container, blob, byte_range=(start, end))
        for off in range(0, len(data), 512):
            out[(start + off) // 512] = data[off:off + 512]
    return out


def _computed_diff(state, target, prev):
    """Changed and cleared ranges between two fixture snapshots of one disk, from their Azurite
    copies: pages written in the target whose bytes differ from the previous snapshot's (or that
    it lacks), and pages the previous snapshot had that the target has not."""
    az = state.azurite
    new, old = _pages_of(az, target["container"], target["blob"]), _pages_of(az, prev["container"], prev["blob"])
    changed = [p for p, data in new.items() if old.get(p) != data]
    cleared = [p for p in old if p not in new]
    return _runs(changed), _runs(cleared)


def _snapshot_by_blob(state, container, blob):
    with state.lock:
        for s in state.snapshots.values():
            if s["container"] == container and s["blob"] == blob:
                return s
    return None


def _pagelist_diff(state, req, m):
    throttled = _throttled(state, "pagelist_diff", blob=True)
    if throttled:
        return throttled
    container, blob = m.group("container"), m.group("blob")
    refused = _check_blob_auth(state, req, container, blob)
    if refused:
        return refused
    target_key = f"{container}/{blob}"
    prev_url = req.headers.get("x-ms-previous-snapshot-url")
    if prev_url:
        split = urllib.parse.urlsplit(prev_url)
        parts = urllib.parse.unquote(split.path).lstrip("/").split("/", 2)
        if len(parts) == 3 and parts[0] == azure_sim.ACCOUNT:
            prev_key = f"{parts[1]}/{parts[2]}"
        else:
            prev_key = "/".join(parts[-2:])
        prev_q = dict(urllib.parse.parse_qsl(split.query))
        if prev_q.get("snapshot"):
            prev_key += "?snapshot=" + prev_q["snapshot"]
    else:
        prev_key = req.query.get("prevsnapshot")
    configured = state.page_diffs.get((target_key, prev_key)) or state.page_diffs.get((target_key, None))
    size = None
    if configured is not None:
        changed, cleared = configured
    else:
        target = _snapshot_by_blob(state, container, blob)
        prev = _snapshot_by_blob(state, *prev_key.split("/", 1)) if prev_key and "/" in prev_key and "?" not in prev_key else None
        if target is None:
            return _storage_error(404, "BlobNotFound", "The specified blob does not exist.")
        if prev is None:
            return _storage_error(409, "PreviousSnapshotNotFound", "The previous snapshot is not found.")
        if prev["source"] is not target["source"]:
            return _storage_error(409, "PreviousSnapshotOperationNotSupported",
                                  "The previous snapshot is not a snapshot of the same managed disk.")
        if prev["seq"] > target["seq"]:
            return _storage_error(409, "PreviousSnapshotCannotBeNewer", "The prevsnapshot query parameter value cannot be newer than snapshot query parameter value.")
        changed, cleared = _computed_diff(state, target, prev)
        size = target["size"]
    if size is None:
        s = _snapshot_by_blob(state, container, blob)
        size = s["size"] if s else None
    if size is None and state.azurite is not None:
        status, h, _ = state.azurite.request("HEAD", state.azurite.path(container, blob))
        size = int(h["content-length"]) if status == 200 else None
    items = sorted([("PageRange", a, b) for a, b in changed] + [("ClearRange", a, b) for a, b in cleared], key=lambda x: x[1])
    window = req.headers.get("x-ms-range") or req.headers.get("range")
    if window:
        wm = re.match(r"^bytes=(\d+)-(\d*)$", window.strip())
        if not wm:
            return _storage_error(400, "InvalidHeaderValue", "The value for one of the HTTP headers is not in the correct format.")
        lo, hi = int(wm.group(1)), int(wm.group(2)) if wm.group(2) else (1 << 62)
        items = [(k, max(a, lo), min(b, hi)) for k, a, b in items if b >= lo and a <= hi]
    start = 0
    marker = req.query.get("marker")
    if marker:
        try:
            start = int(base64.b64decode(marker).decode().split("!", 1)[1])
        except (ValueError, IndexError):
            return _storage_error(400, "InvalidQueryParameterValue", "Value for one of the query parameters specified in the request URI is invalid.")
    limit = len(items)
    if state.pagelist_page_size:
        limit = state.pagelist_page_size
    if req.query.get("maxresults"):
        limit = min(limit, max(1, int(req.query["maxresults"])))
    page = items[start:start + limit]
    nxt = start + limit if start + limit < len(items) else None
    xml = ['<?xml version="1.0" encoding="utf-8"?><PageList>']
    for kind, a, b in page:
        xml.append(f"<{kind}><Start>{a}</Start><End>{b}</End></{kind}>")
    xml.append(f"<NextMarker>{base64.b64encode(f'hsdk!{nxt}'.encode()).decode()}</NextMarker>" if nxt is not None else "<NextMarker />")
    xml.append("</PageList>")
    headers = {"Content-Type": "application/xml", "Last-Modified": email.utils.formatdate(usegmt=True),
               "ETag": '"0x8DBC0FFEE0000"', "x-ms-request-id": str(uuid.uuid4()),
               "x-ms-version": req.headers.get("x-ms-version") or azure_sim.SERVICE_VERSION}
    if size is not None:
        headers["x-ms-blob-content-length"] = str(size)
    return Response(200, headers, "".join(xml).encode())


_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection", "host", "content-length"}


def _forward(state, req):
    """Sends the request to Azurite as it came (its SAS or SharedKey signature signs no host)."""
    throttled = _throttled(state, "blob", blob=True)
    if throttled:
        return throttled
    # A slow link for data reads (not the one-byte probe): getattr, a knob the tests set.
    delay = getattr(state, "data_read_delay", 0)
    rng = req.headers.get("range") or req.headers.get("x-ms-range") or ""
    if delay and req.method == "GET" and "comp" not in req.query and rng and rng != "bytes=0-0":
        time.sleep(delay)
    az = state.azurite
    if az is None:
        return _storage_error(404, "ResourceNotFound", "The specified resource does not exist.")
    headers = {k: v for k, v in req.headers.items() if k not in _HOP}
    headers.update({k: v for k, v in req.secrets.items() if k == "authorization"})
    if req.body or req.method in ("PUT", "POST"):
        headers["Content-Length"] = str(len(req.body))
    conn = http.client.HTTPConnection(az.host, az.port, timeout=120)
    try:
        conn.request(req.method, req.raw_path, body=req.body or None, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        out = {k: v for k, v in resp.getheaders() if k.lower() not in _HOP}
        if req.method == "HEAD" and resp.getheader("Content-Length") is not None:
            out["Content-Length"] = resp.getheader("Content-Length")
        return Response(resp.status, out, data)
    finally:
        conn.close()


def blob_routes(state, account=azure_sim.ACCOUNT):
    """Routes for a blob endpoint in front of Azurite, path-style (/ACCOUNT/container/blob): Get
    Page Ranges diffs (comp=pagelist with prevsnapshot= or x-ms-previous-snapshot-url) answered
    from state.page_diffs or computed from the snapshots' Azurite copies, paged by NextMarker; any
    other request forwarded to Azurite and its answer returned."""
    def is_diff(req):
        return req.query.get("comp") == "pagelist" and ("prevsnapshot" in req.query or "x-ms-previous-snapshot-url" in req.headers)

    pattern = rf"^/{re.escape(account)}/(?P<container>[^/]+)/(?P<blob>.+)$"
    diff = Route("GET", pattern, lambda req: _pagelist_diff(state, req, re.search(pattern, req.path)), when=is_diff)
    forward = Route("*", rf"^/{re.escape(account)}(/.*)?$", lambda req: _forward(state, req))
    return [diff, forward]


def parse_page_list(body):
    """(page ranges, clear ranges, next marker) of a Get Page Ranges answer (see azure_sim)."""
    return azure_sim.parse_page_list(body)
