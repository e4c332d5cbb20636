#!/usr/bin/env python3
"""AWS simulator for the integration tests: moto's server on 127.0.0.1, plus the extensions the
tests need (volume contents, EBS direct data for EC2 snapshots, AWS-shaped ListChangedBlocks,
snapshot state knobs) and a control/log API under /_hsdk/ on the same port.

    python3 tests/sim/aws/awssim.py [--auth]

Prints one JSON line {"url", "region", "access_key_id", "secret_access_key"} on stdout once it
serves, then runs until its stdin closes. See README.md beside this file for what is moto native
and what is an extension."""
import argparse
import base64
import hashlib
import io
import json
import logging
import os
import sys
import threading
import urllib.parse

BLOCK = 524288  # AWS's EBS direct block size (512 KiB)
GiB = 1 << 30
REGION = "us-east-1"
DUMMY_KEY = ("AKIDEXAMPLE", "hsdk-sim-secret")
ADMIN_USER = "hsdk-admin"
ADMIN_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})

# Keys of form parameters or query parameters whose values are never logged.
_SECRET_WORDS = ("password", "secret", "signature", "securitytoken", "security-token", "sessiontoken", "privatekey")


def _b64_sha256(data):
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def _is_zero(data):
    return not data or data.count(0) == len(data)


def write_into(blocks, offset, data, size_bytes=None):
    """Writes `data` at byte `offset` into a sparse {block index: BLOCK bytes} map (read-modify-write;
    a block that ends up all zero is dropped)."""
    if size_bytes is not None and offset + len(data) > size_bytes:
        raise ValueError(f"write of {len(data)} bytes at {offset} passes the volume's end ({size_bytes} bytes)")
    pos = 0
    while pos < len(data):
        idx, within = divmod(offset + pos, BLOCK)
        n = min(BLOCK - within, len(data) - pos)
        cur = bytearray(blocks.get(idx, bytes(BLOCK)))
        cur[within:within + n] = data[pos:pos + n]
        if _is_zero(cur):
            blocks.pop(idx, None)
        else:
            blocks[idx] = bytes(cur)
        pos += n


class State:
    """Everything the extensions keep beside moto's backends. One lock guards it all."""

    def __init__(self):
        self.lock = threading.RLock()
        self.volume_data = {}  # volume id -> {block index: BLOCK bytes}
        self.volume_home = {}  # volume id -> (account id, region)
        self.pending_polls = 0
        self.snapshot_error = False
        self.log = []
        self.local = threading.local()  # .native: inside moto's own StartSnapshot


STATE = State()


# ---- moto patches ---------------------------------------------------------------------------

def install_extensions():
    from moto.core.exceptions import JsonRESTError
    from werkzeug.exceptions import HTTPException
    from moto.core.responses import ActionResult
    from moto.ebs import models as ebs_models
    from moto.ebs.responses import EBSResponse
    from moto.ec2.models import amis as ec2_amis
    from moto.ec2.models import elastic_block_store as ec2_ebs
    from moto.ec2.models import instances as ec2_instances
    from moto.ec2.responses.amis import AmisResponse
    from moto.ec2.responses.elastic_block_store import ElasticBlockStore

    ebs_backends = ebs_models.ebs_backends

    class EbsError(JsonRESTError):
        """An EBS direct API error shaped like AWS's: {"__type", "message", "Reason"}."""

        def __init__(self, error_type, status, message, reason):
            super().__init__(error_type, message)
            self.code = status
            self.description = json.dumps({"__type": error_type, "message": message, "Reason": reason})

    def ebs_snapshot_or_404(backend, snapshot_id, need_completed=True):
        snap = backend.snapshots.get(snapshot_id)
        if snap is None:
            raise EbsError("ResourceNotFoundException", 404, f"The snapshot '{snapshot_id}' does not exist.", "SNAPSHOT_NOT_FOUND")
        if need_completed and snap.status != "completed":
            raise EbsError("ValidationException", 400,
                           f"The snapshot '{snapshot_id}' is not in the completed state (it is {snap.status}).", "INVALID_SNAPSHOT_ID")
        return snap

    def block_bytes(block):
        data = block.block_data
        return data.encode() if isinstance(data, str) else bytes(data or b"")

    # -- (a) volume contents -----------------------------------------------------------------
    def blocks_from_snapshot(account_id, region, snapshot_id, size_gib):
        esnap = ebs_backends[account_id][region].snapshots.get(snapshot_id)
        blocks = {}
        if esnap is None:
            return blocks
        limit = size_gib * GiB if size_gib else None
        for idx, block in esnap.blocks.items():
            data = block_bytes(block)
            offset = int(idx) * esnap.block_size
            if limit is not None and offset >= limit:
                continue
            if limit is not None:
                data = data[:limit - offset]
            write_into(blocks, offset, data)
        return blocks

    orig_create_volume = ec2_ebs.EBSBackend.create_volume

    def create_volume(self, *args, **kwargs):
        volume = orig_create_volume(self, *args, **kwargs)
        snapshot_id = kwargs.get("snapshot_id", args[2] if len(args) > 2 else None)
        blocks = blocks_from_snapshot(self.account_id, self.region_name, snapshot_id, volume.size) if snapshot_id else {}
        with STATE.lock:
            STATE.volume_data[volume.id] = blocks
            STATE.volume_home[volume.id] = (self.account_id, self.region_name)
        return volume

    ec2_ebs.EBSBackend.create_volume = create_volume

    orig_delete_volume = ec2_ebs.EBSBackend.delete_volume

    def delete_volume(self, volume_id):
        volume = orig_delete_volume(self, volume_id)
        with STATE.lock:
            STATE.volume_data.pop(volume_id, None)
            STATE.volume_home.pop(volume_id, None)
        return volume

    ec2_ebs.EBSBackend.delete_volume = delete_volume

    # -- (b) EC2 snapshots known to the EBS direct backend -----------------------------------
    def register_ebs_snapshot(account_id, region, snapshot, blocks, status):
        esnap = ebs_models.EBSSnapshot(account_id=account_id, snapshot=snapshot)
        esnap.block_size = BLOCK
        esnap.volume_size = snapshot.volume.size
        esnap.status = status
        esnap.hsdk_source = "ec2"
        for idx in sorted(blocks):
            data = blocks[idx]
            esnap.put_block(str(idx), data, _b64_sha256(data), "SHA256", str(len(data)))
        ebs_backends[account_id][region].snapshots[snapshot.id] = esnap
        return esnap

    orig_create_snapshot = ec2_ebs.EBSBackend.create_snapshot

    def create_snapshot(self, volume_id, description, owner_id=None, from_ami=None):
        snapshot = orig_create_snapshot(self, volume_id, description, owner_id=owner_id, from_ami=from_ami)
        if from_ami or getattr(STATE.local, "native", False):
            return snapshot  # AMI bookkeeping snapshots and moto's StartSnapshot stay moto's
        with STATE.lock:
            frozen = dict(STATE.volume_data.get(volume_id, {}))
            polls, error = STATE.pending_polls, STATE.snapshot_error
        if error:
            snapshot.status = "error"
            snapshot.status_message = "hsdk-sim: the snapshot failed (snapshot_error knob)"
            register_ebs_snapshot(self.account_id, self.region_name, snapshot, {}, "error")
        elif polls > 0:
            snapshot.status = "pending"
            snapshot.hsdk_pending_left = polls
            snapshot.hsdk_pending_total = polls
            register_ebs_snapshot(self.account_id, self.region_name, snapshot, frozen, "pending")
        else:
            register_ebs_snapshot(self.account_id, self.region_name, snapshot, frozen, "completed")
        return snapshot

    ec2_ebs.EBSBackend.create_snapshot = create_snapshot

    def snapshot_progress(self):
        if self.status == "pending":
            total = self.__dict__.get("hsdk_pending_total", 1)
            done = total - self.__dict__.get("hsdk_pending_left", total)
            return f"{done * 100 // (total + 1)}%"
        if self.status == "error":
            return "0%"
        return "100%"

    ec2_ebs.Snapshot.progress = property(snapshot_progress)

    orig_delete_snapshot = ec2_ebs.EBSBackend.delete_snapshot

    def delete_snapshot(self, snapshot_id):
        snapshot = orig_delete_snapshot(self, snapshot_id)
        ebs_backends[self.account_id][self.region_name].snapshots.pop(snapshot_id, None)
        return snapshot

    ec2_ebs.EBSBackend.delete_snapshot = delete_snapshot

    orig_copy_snapshot = ec2_ebs.EBSBackend.copy_snapshot

    def copy_snapshot(self, source_snapshot_id, source_region, description, kms_key_id):
        snapshot = orig_copy_snapshot(self, source_snapshot_id, source_region, description, kms_key_id)
        source = ebs_backends[self.account_id][source_region or self.region_name].snapshots.get(source_snapshot_id)
        if source is not None:
            blocks = {}
            for idx, block in source.blocks.items():
                write_into(blocks, int(idx) * source.block_size, block_bytes(block))
            register_ebs_snapshot(self.account_id, self.region_name, snapshot, blocks, "completed")
        return snapshot

    ec2_ebs.EBSBackend.copy_snapshot = copy_snapshot

    def advance_pending(snapshot):
        """One DescribeSnapshots poll that includes `snapshot`."""
        left = snapshot.__dict__.get("hsdk_pending_left")
        if left is None or snapshot.status != "pending":
            return
        if left > 0:
            snapshot.hsdk_pending_left = left - 1
            return
        snapshot.status = "completed"
        del snapshot.hsdk_pending_left
        esnap = ebs_backends[snapshot.ec2_backend.account_id][snapshot.ec2_backend.region_name].snapshots.get(snapshot.id)
        if esnap is not None:
            esnap.status = "completed"

    def describe_snapshots_response(self):
        filters = self._filters_from_querystring()
        snapshot_ids = self._get_param("SnapshotIds", [])
        snapshots = self.ec2_backend.describe_snapshots(snapshot_ids=snapshot_ids, filters=filters)
        with STATE.lock:
            for snapshot in snapshots:
                advance_pending(snapshot)
        return ActionResult({"Snapshots": snapshots})

    ElasticBlockStore.describe_snapshots = describe_snapshots_response

    def create_snapshots_response(self):
        # moto's own answer leaves out each item's state (SnapshotInfo calls it "state", the
        # Snapshot model "status") and ignores CopyTagsFromSource: answer explicitly.
        instance_spec = self._get_param("InstanceSpecification", {})
        description = self._get_param("Description", "")
        copy_tags = self._get_param("CopyTagsFromSource")
        snapshot_tags = self._parse_tag_specification().get("snapshot", {})
        self.error_on_dryrun()
        snapshots = self.ec2_backend.create_snapshots(instance_spec, description, {})
        items = []
        for snapshot in snapshots:
            tags = {}
            if copy_tags == "volume":
                tags.update({t["key"]: t["value"] for t in snapshot.volume.get_tags()})
            tags.update(snapshot_tags)
            snapshot.add_tags(tags)
            items.append({
                "Description": snapshot.description,
                "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
                "Encrypted": snapshot.encrypted,
                "VolumeId": snapshot.volume.id,
                "State": snapshot.status,
                "VolumeSize": snapshot.volume.size,
                "StartTime": snapshot.start_time,
                "Progress": snapshot.progress,
                "OwnerId": snapshot.owner_id,
                "SnapshotId": snapshot.id,
            })
        return ActionResult({"Snapshots": items})

    ElasticBlockStore.create_snapshots = create_snapshots_response

    # -- RegisterImage block device mappings, used by RunInstances -------------------------------
    def register_image_response(self):
        name = self._get_param("Name")
        description = self._get_param("Description", "")
        self.error_on_dryrun()
        image = self.ec2_backend.register_image(name, description)
        root = self._get_param("RootDeviceName")
        mappings = []
        for m in self._get_param("BlockDeviceMappings", []) or []:
            ebs = m.get("Ebs") or {}
            mappings.append({
                "VirtualName": m.get("VirtualName"),
                "DeviceName": m.get("DeviceName"),
                "NoDevice": m.get("NoDevice"),
                "Ebs": {
                    "SnapshotId": ebs.get("SnapshotId"),
                    "VolumeSize": int(ebs["VolumeSize"]) if ebs.get("VolumeSize") else None,
                    "DeleteOnTermination": str(ebs.get("DeleteOnTermination", "true")).lower() == "true",
                    "VolumeType": ebs.get("VolumeType"),
                    "Iops": ebs.get("Iops"),
                    "Encrypted": str(ebs.get("Encrypted", "false")).lower() == "true",
                    "KmsKeyId": ebs.get("KmsKeyId"),
                },
            })
        if root:
            image.root_device_name = root
        if mappings:
            image.root_device_type = "ebs"
            image.hsdk_block_device_mappings = mappings
        for attr, param in (("architecture", "Architecture"), ("virtualization_type", "VirtualizationType"), ("boot_mode", "BootMode")):
            if self._get_param(param):
                setattr(image, attr, self._get_param(param))
        return ActionResult({"ImageId": image.id})

    AmisResponse.register_image = register_image_response

    orig_ami_bdm = ec2_amis.Ami.block_device_mappings

    def ami_block_device_mappings(self):
        registered = self.__dict__.get("hsdk_block_device_mappings")
        if registered is None:
            return orig_ami_bdm.fget(self)
        out = []
        for m in registered:
            if m.get("NoDevice") is not None:
                out.append({"DeviceName": m["DeviceName"], "NoDevice": ""})
                continue
            ebs = {k: v for k, v in m["Ebs"].items() if v is not None and k not in ("Iops", "KmsKeyId")}
            snap = self.ec2_backend.snapshots.get(ebs.get("SnapshotId") or "")
            if "VolumeSize" not in ebs and snap is not None:
                ebs["VolumeSize"] = snap.volume.size
            out.append({"DeviceName": m["DeviceName"], "Ebs": ebs})
        return out

    ec2_amis.Ami.block_device_mappings = property(ami_block_device_mappings)

    orig_run_instances = ec2_instances.InstanceBackend.run_instances

    def run_instances(self, image_id, count, user_data, security_group_names, **kwargs):
        ami = self.amis.get(image_id)
        registered = ami.__dict__.get("hsdk_block_device_mappings") if ami is not None else None
        if registered:
            merged = {m["DeviceName"]: json.loads(json.dumps(m)) for m in registered}
            for m in kwargs.get("block_device_mappings") or []:
                base = merged.get(m["DeviceName"])
                if base is None or m.get("NoDevice") is not None:
                    merged[m["DeviceName"]] = m
                    continue
                for k, v in (m.get("Ebs") or {}).items():
                    if v is not None and not (k in ("DeleteOnTermination", "Encrypted") and v is False):
                        base["Ebs"][k] = v
            kwargs["block_device_mappings"] = [m for m in merged.values() if m.get("NoDevice") != ""]
        return orig_run_instances(self, image_id, count, user_data, security_group_names, **kwargs)

    ec2_instances.InstanceBackend.run_instances = run_instances

    # -- EBS direct: moto-native StartSnapshot stays moto's; reads check state; (c) ListChangedBlocks
    orig_start_snapshot = ebs_models.EBSBackend.start_snapshot

    def start_snapshot(self, *args, **kwargs):
        STATE.local.native = True
        try:
            esnap = orig_start_snapshot(self, *args, **kwargs)
        finally:
            STATE.local.native = False
        esnap.hsdk_source = "native"
        return esnap

    ebs_models.EBSBackend.start_snapshot = start_snapshot

    orig_put_block = ebs_models.EBSBackend.put_snapshot_block

    def put_snapshot_block(self, snapshot_id, *args, **kwargs):
        ebs_snapshot_or_404(self, snapshot_id, need_completed=False)
        return orig_put_block(self, snapshot_id, *args, **kwargs)

    ebs_models.EBSBackend.put_snapshot_block = put_snapshot_block

    orig_complete = ebs_models.EBSBackend.complete_snapshot

    def complete_snapshot(self, snapshot_id):
        esnap = ebs_snapshot_or_404(self, snapshot_id, need_completed=False)
        # AWS lists block indexes in numerical order; moto keeps the order of PutSnapshotBlock.
        esnap.blocks = dict(sorted(esnap.blocks.items(), key=lambda kv: int(kv[0])))
        return orig_complete(self, snapshot_id)

    ebs_models.EBSBackend.complete_snapshot = complete_snapshot

    def list_snapshot_blocks(self, snapshot_id):
        return ebs_snapshot_or_404(self, snapshot_id)

    ebs_models.EBSBackend.list_snapshot_blocks = list_snapshot_blocks

    def get_snapshot_block(self, snapshot_id, block_index, block_token=None):
        esnap = ebs_snapshot_or_404(self, snapshot_id)
        block = esnap.blocks.get(str(block_index))
        if block is None or (block_token is not None and block_token != block.block_token):
            raise EbsError("ValidationException", 400,
                           f"The block token for block {block_index} of '{snapshot_id}' is not valid.", "INVALID_BLOCK_TOKEN")
        return block

    ebs_models.EBSBackend.get_snapshot_block = get_snapshot_block

    def get_snapshot_block_response(self):
        parts = self.path.split("/")
        token = self._get_params().get("blockToken")
        block = self.ebs_backend.get_snapshot_block(snapshot_id=parts[-3], block_index=parts[-1], block_token=token)
        headers = {
            "x-amz-Checksum": block.checksum,
            "x-amz-Checksum-Algorithm": block.checksum_algorithm,
            "x-amz-Data-Length": block.data_length,
        }
        return 200, headers, block.block_data

    EBSResponse.get_snapshot_block = get_snapshot_block_response

    def list_changed_blocks(self, first_snapshot_id, second_snapshot_id):
        """Every block index whose content differs between the two snapshots (present in either),
        in numerical order: [(index, first token or None, second token or None)]."""
        second = ebs_snapshot_or_404(self, second_snapshot_id)
        first = ebs_snapshot_or_404(self, first_snapshot_id) if first_snapshot_id else None
        if first is not None and first.block_size != second.block_size:
            raise EbsError("ValidationException", 400, "The snapshots have different block sizes.", "UNRELATED_SNAPSHOTS")
        first_blocks = first.blocks if first is not None else {}
        changed = []
        for idx in sorted(set(first_blocks) | set(second.blocks), key=int):
            a, b = first_blocks.get(idx), second.blocks.get(idx)
            if a is not None and b is not None and block_bytes(a) == block_bytes(b):
                continue
            changed.append((idx, a.block_token if a else None, b.block_token if b else None))
        return changed, second

    ebs_models.EBSBackend.list_changed_blocks = list_changed_blocks

    def list_changed_blocks_response(self):
        params = self._get_params()
        second_snapshot_id = self.path.split("/")[-2]
        changed, second = self.ebs_backend.list_changed_blocks(
            first_snapshot_id=params.get("firstSnapshotId"), second_snapshot_id=second_snapshot_id)
        start = params.get("startingBlockIndex")
        token = params.get("pageToken")
        if token:
            try:
                start = int(base64.b64decode(token).decode())
            except ValueError:
                raise EbsError("ValidationException", 400, "The page token is not valid.", "INVALID_PAGE_TOKEN")
        if start is not None:
            changed = [c for c in changed if int(c[0]) >= int(start)]
        body = {"VolumeSize": second.volume_size, "BlockSize": second.block_size}
        limit = params.get("maxResults")
        if limit is not None and len(changed) > int(limit):
            body["NextToken"] = base64.b64encode(str(int(changed[int(limit)][0])).encode()).decode()
            changed = changed[:int(limit)]
        blocks = []
        for idx, t1, t2 in changed:
            item = {"BlockIndex": idx}  # a JSON string, as moto's own answers have it
            if t1:
                item["FirstBlockToken"] = t1
            if t2:
                item["SecondBlockToken"] = t2
            blocks.append(item)
        body["ChangedBlocks"] = blocks
        return json.dumps(body)

    EBSResponse.list_changed_blocks = list_changed_blocks_response

    # -- access control for EBS direct calls -------------------------------------------------
    # moto re-signs a request to check it from `data or params`: for a bodyless EBS call (every GET)
    # its params are the query string or, without one, the request headers, which it then hashes as
    # a form-encoded body, so a correctly signed GET never matches. EBS direct has no form
    # parameters: with none, the body (empty, or PutSnapshotBlock's unsigned payload) is hashed.
    orig_ebs_setup = EBSResponse.setup_class

    def ebs_setup_class(self, request, full_url, headers, *args, **kwargs):
        orig_ebs_setup(self, request, full_url, headers, *args, **kwargs)
        self.data = {}

    EBSResponse.setup_class = ebs_setup_class

    # moto answers a refused EBS direct call with the XML ErrorResponse of the query protocols;
    # EBS direct is a REST-JSON API: the same code and message as {"__type", "message"}.
    orig_ebs_auth = EBSResponse._authenticate_and_authorize_normal_action

    def ebs_authenticate(self, *args, **kwargs):
        try:
            return orig_ebs_auth(self, *args, **kwargs)
        except JsonRESTError:
            raise
        except HTTPException as e:
            if hasattr(e, "to_json"):
                raise e.to_json() from None
            raise

    EBSResponse._authenticate_and_authorize_normal_action = ebs_authenticate


# ---- the control API and the request log ------------------------------------------------------

def _find_volume(volume_id):
    from moto.ec2.models import ec2_backends
    with STATE.lock:
        home = STATE.volume_home.get(volume_id)
    if home is None:
        return None
    return ec2_backends[home[0]][home[1]].volumes.get(volume_id)


def _guess_service(environ, query):
    auth = environ.get("HTTP_AUTHORIZATION", "")
    scope = ""
    if "Credential=" in auth:
        scope = auth.split("Credential=", 1)[1].split(",", 1)[0]
    elif "X-Amz-Credential" in query:
        scope = query["X-Amz-Credential"]
    parts = scope.split("/")
    return parts[3] if len(parts) >= 5 else None


def _redact(params):
    return {k: ("<redacted>" if any(w in k.lower() for w in _SECRET_WORDS) else v) for k, v in params.items()}


class HsdkApp:
    """WSGI middleware: /_hsdk/* is ours; everything else goes to moto and is logged."""

    def __init__(self, moto_app):
        self.moto_app = moto_app

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_hsdk/"):
            return self.control(environ, start_response, path)
        query = {k: v[0] if len(v) == 1 else v for k, v in urllib.parse.parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).items()}
        params = None
        if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            if length:
                body = environ["wsgi.input"].read(length)
                environ["wsgi.input"] = io.BytesIO(body)
                params = {k: v[0] if len(v) == 1 else v for k, v in urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
        action = (params or {}).get("Action") or query.get("Action")
        entry = {
            "method": environ.get("REQUEST_METHOD"),
            "path": path,
            "query": _redact(query),
            "service": _guess_service(environ, query),
            "action": action if isinstance(action, str) else None,
            "status": None,
            "range": environ.get("HTTP_RANGE"),
        }
        if params is not None:
            entry["params"] = _redact(params)

        def recording_start_response(status, headers, exc_info=None):
            entry["status"] = int(status.split(" ", 1)[0])
            with STATE.lock:
                STATE.log.append(entry)
            return start_response(status, headers, exc_info)

        try:
            return self.moto_app(environ, recording_start_response)
        except Exception:
            if entry["status"] is None:
                entry["status"] = 500
                with STATE.lock:
                    STATE.log.append(entry)
            raise

    @staticmethod
    def _answer(start_response, status, body=None):
        reasons = {200: "OK", 204: "No Content", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
        data = b"" if body is None else json.dumps(body).encode()
        headers = [("Content-Length", str(len(data)))]
        if body is not None:
            headers.append(("Content-Type", "application/json"))
        start_response(f"{status} {reasons.get(status, '')}", headers)
        return [data]

    def control(self, environ, start_response, path):
        method = environ.get("REQUEST_METHOD")
        query = dict(urllib.parse.parse_qsl(environ.get("QUERY_STRING", "")))
        body = {}
        if method == "POST":
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
                raw = environ["wsgi.input"].read(length) if length else b""
                body = json.loads(raw) if raw else {}
            except ValueError as e:
                return self._answer(start_response, 400, {"error": f"bad JSON body: {e}"})
        try:
            if path == "/_hsdk/write" and method == "POST":
                return self.write(start_response, body)
            if path == "/_hsdk/control" and method == "POST":
                with STATE.lock:
                    if "pending_polls" in body:
                        STATE.pending_polls = int(body["pending_polls"])
                    if "snapshot_error" in body:
                        STATE.snapshot_error = bool(body["snapshot_error"])
                    if body.get("reset_log"):
                        STATE.log.clear()
                return self._answer(start_response, 204)
            if path == "/_hsdk/log" and method == "GET":
                with STATE.lock:
                    entries = list(STATE.log)
                return self._answer(start_response, 200, entries)
            if path == "/_hsdk/volume" and method == "GET":
                volume_id = query.get("volume_id", "")
                volume = _find_volume(volume_id)
                if volume is None:
                    return self._answer(start_response, 404, {"error": f"no volume {volume_id!r}"})
                with STATE.lock:
                    blocks = dict(STATE.volume_data.get(volume_id, {}))
                return self._answer(start_response, 200, {
                    "volume_id": volume_id, "size_gib": volume.size, "block_size": BLOCK,
                    "blocks": {str(i): hashlib.sha256(blocks[i]).hexdigest() for i in sorted(blocks)}})
            if path == "/_hsdk/snapshots" and method == "GET":
                return self._answer(start_response, 200, self.snapshots())
        except (KeyError, TypeError, ValueError) as e:
            return self._answer(start_response, 400, {"error": str(e)})
        return self._answer(start_response, 404, {"error": f"no control route {method} {path}"})

    def write(self, start_response, body):
        volume_id = body["volume_id"]
        offset = int(body["offset"])
        data = base64.b64decode(body["data_b64"])
        if offset < 0:
            raise ValueError("offset must not be negative")
        volume = _find_volume(volume_id)
        if volume is None:
            return self._answer(start_response, 404, {"error": f"no volume {volume_id!r}"})
        with STATE.lock:
            blocks = STATE.volume_data.setdefault(volume_id, {})
            write_into(blocks, offset, data, volume.size * GiB)
        return self._answer(start_response, 204)

    @staticmethod
    def snapshots():
        from moto.ebs.models import ebs_backends
        out = []
        for account_id, account in list(ebs_backends.items()):
            for region, backend in list(account.items()):
                for snapshot_id, esnap in list(backend.snapshots.items()):
                    out.append({
                        "snapshot_id": snapshot_id, "account_id": account_id, "region": region,
                        "status": esnap.status, "source": getattr(esnap, "hsdk_source", "native"),
                        "volume_size": esnap.volume_size, "block_size": esnap.block_size,
                        "block_count": len(esnap.blocks)})
        return out


# ---- main ------------------------------------------------------------------------------------

def create_admin():
    """Creates an IAM user allowed everything and returns its (access key id, secret)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.iam.models import iam_backends
    iam = iam_backends[DEFAULT_ACCOUNT_ID]["aws"]
    iam.create_user(region_name=REGION, user_name=ADMIN_USER)
    iam.put_user_policy(ADMIN_USER, "AdministratorAccess", ADMIN_POLICY)
    key = iam.create_access_key(ADMIN_USER)
    return key.access_key_id, key.secret_access_key


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--auth", action="store_true", help="check SigV4 signatures and IAM policies (moto's access control)")
    args = parser.parse_args()

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    from moto import settings
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ec2.models import ec2_backends
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    install_extensions()
    ec2_backends[DEFAULT_ACCOUNT_ID][REGION]  # builds the EC2 backend (and its default AMIs) now, not on the first call

    key = DUMMY_KEY
    if args.auth:
        key = create_admin()
        # From now on every request's signature and IAM permissions are checked.
        settings.INITIAL_NO_AUTH_ACTION_COUNT = 0

    app = HsdkApp(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_port
    sys.stdout.write(json.dumps({"url": f"http://127.0.0.1:{port}", "region": REGION,
                                 "access_key_id": key[0], "secret_access_key": key[1]}) + "\n")
    sys.stdout.flush()
    # Anything moto prints later goes to stderr: the parent reads only the first line of stdout.
    os.dup2(2, 1)
    # Runs until stdin closes (the test process ended or stopped the simulator).
    while sys.stdin.buffer.read(65536):
        pass
    server.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # moto's backends need no orderly interpreter teardown


if __name__ == "__main__":
    main()
