"""Starts the bundled vSphere simulator (tests/sim/vsphere, built by scripts/setup) on 127.0.0.1
with a free port and TLS, and talks to its test extensions (fault injection, call log)."""
import json
import os
import pathlib
import ssl
import subprocess
import http.client
import urllib.parse

from conftest import ROOT

SIM = pathlib.Path(os.environ.get("HSDK_VSPHERE_SIM", ROOT / "build" / "sim" / "vspheresim"))
PASSWORD = "s3cret-pa55word"
USERNAME = "exporter"


class Simulator:
    def __init__(self, workdir, esx=False, extra_args=()):
        if not SIM.exists():
            raise AssertionError(f"{SIM} is missing: run scripts/setup (it builds the vSphere simulator)")
        self.certdir = pathlib.Path(workdir) / "sim-cert"
        env = dict(os.environ, VSPHERESIM_PASSWORD=PASSWORD)
        args = [str(SIM), "-listen", "127.0.0.1:0", "-username", USERNAME, "-cert-dir", str(self.certdir)]
        if esx:
            args.append("-esx")
        args += list(extra_args)
        # stdin stays open: the simulator exits when it closes (also if this test process dies).
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"vspheresim did not start: {self.proc.stderr.read()}")
        info = json.loads(line)
        self.url = info["url"]
        self.host = info["host"]
        self.ca_file = info["ca_file"]
        self.thumbprint = info["thumbprint"]
        self.ssl = ssl.create_default_context(cafile=self.ca_file)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def alive(self):
        return self.proc.poll() is None

    def _request(self, method, path, body=None):
        conn = http.client.HTTPSConnection(self.host, context=self.ssl, timeout=30)
        conn.request(method, path, body=body)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp.status, data

    def control(self, **kw):
        status, data = self._request("POST", "/_hsdk/control", json.dumps(kw).encode())
        assert status == 204, (status, data)

    def state(self):
        status, data = self._request("GET", "/_hsdk/state")
        assert status == 200
        return json.loads(data)

    def upload(self, datastore_path, data, dc="DC0"):
        """PUT bytes to a datastore path such as "[LocalDS_0] DC0_H0_VM0/disk1.vmdk"."""
        ds, path = datastore_path[1:].split("] ", 1)
        q = urllib.parse.urlencode({"dcPath": dc, "dsName": ds})
        status, body = self._request("PUT", f"/folder/{urllib.parse.quote(path)}?{q}", data)
        assert status == 200, (status, body)

    def cli_args(self, trust="ca"):
        """Connection flags for hsdk; the password travels in the environment (see cli_env)."""
        args = ["--url", self.url, "--username", USERNAME, "--password-env", "HSDK_TEST_PASSWORD"]
        if trust == "ca":
            args += ["--ca-file", self.ca_file]
        elif trust == "thumbprint":
            args += ["--thumbprint", self.thumbprint]
        elif trust == "insecure":
            args += ["--insecure"]
        return args


def cli_env(password=PASSWORD):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVC_")}
    env["HSDK_TEST_PASSWORD"] = password
    return env
