"""Starts the AWS simulator (tests/sim/aws/awssim.py: moto's server plus our extensions) on
127.0.0.1 with a free port, and talks to its test extensions (volume contents, knobs, request log).
Also builds test setups: an instance with EBS volumes holding given bytes, a moto-native EBS
snapshot."""
import base64
import hashlib
import http.client
import json
import os
import pathlib
import subprocess
import sys
import urllib.parse

ROOT = pathlib.Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "tests" / "sim" / "aws" / "awssim.py"

BLOCK = 524288  # AWS's EBS direct block size, the simulator's volume block
GiB = 1 << 30

# Variables that would make a client use other credentials, or look for them elsewhere.
_UNSET = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
          "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
          "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN")


def size_gib(nbytes):
    return max(1, -(-nbytes // GiB))


class AwsSim:
    def __init__(self, workdir, auth=False):
        workdir = pathlib.Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        self.stderr_path = workdir / ("awssim-auth.stderr" if auth else "awssim.stderr")
        args = [sys.executable, str(LAUNCHER)] + (["--auth"] if auth else [])
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and not k.startswith("MOTO_")}
        self._stderr = open(self.stderr_path, "wb")
        # stdin stays open: the simulator exits when it closes (also if this test process dies).
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, env=env, cwd=str(workdir))
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=10)
            self._stderr.close()
            raise AssertionError(f"awssim did not start: {self.stderr_path.read_text(errors='replace')}")
        info = json.loads(line)
        self.url = info["url"]
        self.region = info["region"]
        self.access_key_id = info["access_key_id"]
        self.secret_access_key = info["secret_access_key"]
        self.auth = auth
        parsed = urllib.parse.urlsplit(self.url)
        self.host, self.port = parsed.hostname, parsed.port

    def stop(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self._stderr.close()

    def alive(self):
        return self.proc.poll() is None

    def env(self, base=None):
        """The environment for a client process (a copy of `base`, os.environ by default): the
        simulator's endpoint, region and keys, and nothing that would pick other credentials."""
        env = {k: v for k, v in (os.environ if base is None else base).items() if k not in _UNSET}
        env.update({
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL": self.url,
            "AWS_EC2_METADATA_DISABLED": "true",  # never ask 169.254.169.254
        })
        return env

    def boto3(self, service, access_key_id=None, secret_access_key=None):
        """A boto3 client for ec2, ebs, s3, iam (any service moto serves) pointed at the simulator;
        S3 path-style. Other keys may be given (to test refusals)."""
        import boto3
        from botocore.config import Config
        session = boto3.session.Session(
            aws_access_key_id=access_key_id or self.access_key_id,
            aws_secret_access_key=secret_access_key or self.secret_access_key,
            region_name=self.region)
        config = Config(s3={"addressing_style": "path"}, retries={"mode": "standard", "max_attempts": 1})
        return session.client(service, endpoint_url=self.url, config=config)

    # ---- control API ----
    def _request(self, method, path, body=None):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            data = None if body is None else json.dumps(body).encode()
            headers = {} if data is None else {"Content-Type": "application/json"}
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def write(self, volume_id, offset, data):
        status, body = self._request("POST", "/_hsdk/write", {
            "volume_id": volume_id, "offset": offset, "data_b64": base64.b64encode(data).decode()})
        assert status == 204, (status, body)

    def control(self, **kw):
        status, body = self._request("POST", "/_hsdk/control", kw)
        assert status == 204, (status, body)

    def log(self):
        status, body = self._request("GET", "/_hsdk/log")
        assert status == 200, (status, body)
        return json.loads(body)

    def volume(self, volume_id):
        """{"size_gib", "block_size", "blocks": {"index": sha256 hex}} of a volume's contents."""
        status, body = self._request("GET", "/_hsdk/volume?" + urllib.parse.urlencode({"volume_id": volume_id}))
        assert status == 200, (status, body)
        return json.loads(body)

    def snapshots(self):
        status, body = self._request("GET", "/_hsdk/snapshots")
        assert status == 200, (status, body)
        return json.loads(body)

    # ---- setups ----
    def write_disk(self, volume_id, data):
        """Writes the non-zero 512 KiB blocks of `data` into a volume from offset 0."""
        for off in range(0, len(data), BLOCK):
            chunk = data[off:off + BLOCK]
            if chunk.count(0) != len(chunk):
                self.write(volume_id, off, chunk)

    def make_instance(self, disks, name="web01", instance_type="t3.medium", volume_tags=None):
        """Runs an instance with one EBS volume per disk (bytes: the contents; int: an empty disk of
        that many bytes); the first is the root device. Returns {"instance_id", "image_id",
        "volumes": [{"volume_id", "device", "size_gib"}]} in device order."""
        ec2 = self.boto3("ec2")
        image = self._image()
        devices = [image.get("RootDeviceName") or "/dev/xvda"] + [f"/dev/sd{chr(ord('f') + i)}" for i in range(len(disks) - 1)]
        sizes = [size_gib(d if isinstance(d, int) else len(d)) for d in disks]
        tag_specs = [{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}]}]
        if volume_tags:
            tag_specs.append({"ResourceType": "volume", "Tags": [{"Key": k, "Value": v} for k, v in volume_tags.items()]})
        reservation = ec2.run_instances(
            ImageId=image["ImageId"], MinCount=1, MaxCount=1, InstanceType=instance_type,
            BlockDeviceMappings=[{"DeviceName": dev, "Ebs": {"VolumeSize": size, "DeleteOnTermination": True, "VolumeType": "gp3"}}
                                 for dev, size in zip(devices, sizes)],
            TagSpecifications=tag_specs)
        instance = reservation["Instances"][0]
        by_device = {m["DeviceName"]: m["Ebs"]["VolumeId"] for m in instance["BlockDeviceMappings"]}
        volumes = []
        for dev, size, disk in zip(devices, sizes, disks):
            volume_id = by_device[dev]
            if not isinstance(disk, int):
                self.write_disk(volume_id, disk)
            volumes.append({"volume_id": volume_id, "device": dev, "size_gib": size})
        return {"instance_id": instance["InstanceId"], "image_id": image["ImageId"], "volumes": volumes}

    def _image(self):
        """One of moto's default AMIs, with root device /dev/xvda when there is one (asked once:
        the list is long)."""
        if getattr(self, "_image_cache", None) is None:
            images = self.boto3("ec2").describe_images(Owners=["amazon"])["Images"]
            self._image_cache = next((i for i in images if i.get("RootDeviceName") == "/dev/xvda"), images[0])
        return self._image_cache

    def ebs_snapshot(self, data, volume_size_gib=1, description="hsdk test snapshot"):
        """A moto-native snapshot through StartSnapshot / PutSnapshotBlock / CompleteSnapshot, in
        the block size StartSnapshot answers (moto: 512); only non-zero blocks are put."""
        ebs = self.boto3("ebs")
        started = ebs.start_snapshot(VolumeSize=volume_size_gib, Description=description)
        snapshot_id, block_size = started["SnapshotId"], started["BlockSize"]
        count = 0
        for off in range(0, len(data), block_size):
            chunk = data[off:off + block_size].ljust(block_size, b"\0")
            if chunk.count(0) == len(chunk):
                continue
            ebs.put_snapshot_block(
                SnapshotId=snapshot_id, BlockIndex=off // block_size, BlockData=chunk, DataLength=len(chunk),
                Checksum=base64.b64encode(hashlib.sha256(chunk).digest()).decode(), ChecksumAlgorithm="SHA256")
            count += 1
        ebs.complete_snapshot(SnapshotId=snapshot_id, ChangedBlocksCount=count)
        return snapshot_id
