"""GcpHarness: the gcp provider in the provider conformance suite (test_provider_conformance.py),
with the interface of its other harnesses (name, vm, planted, env, config(), bad_config(),
reset(), slow_down(), assert_nothing_left(), stop()).

Request/response fixtures shaped like Google's REST references (tests/integration/gcp_fixtures.py:
token endpoint with real JWT checks, Compute Engine, Cloud Build's image export) over
fake-gcs-server (tests/sim/gcs) for the export objects. GCP disks are whole GiB, so the planted
disk is 1 GiB: the suite's 16 MiB pattern first, zeros after (`planted` is that sparse 1 GiB raw
file, so `qemu-img compare` of an export with it checks every byte). Every image of ours, every
export object and every build must be gone after each export; slow_down() serves the object
through the fixture's storage proxy, 256 KiB every 0.5 s, so a cancel lands mid-disk."""
import os

from conftest import MiB, write_pattern
from conftest_gcp import GcpCloud
from gcp_fixtures import GiB, Attached, Instance, Nic, make_disk
from gcs_sim import FakeGcs


class GcpHarness:
    name = "gcp"
    vm = "web01"

    def __init__(self, tmp):
        self.planted = write_pattern(tmp / "planted.raw", 16 * MiB, seed=4242)
        os.truncate(self.planted, GiB)  # a hole after the pattern: zeros
        self.gcs = FakeGcs(tmp / "fake-gcs")
        try:
            self.cloud = GcpCloud(self.gcs, tmp / "cloud")
        except BaseException:
            self.gcs.stop()
            raise
        st = self.cloud.state
        disk = make_disk(st, "web01", "us-central1-a", path=self.planted, guest_os_features=["UEFI_COMPATIBLE"])
        st.add_instance(Instance("web01", [Attached(disk, boot=True)], machine_type="e2-standard-2", nics=[Nic()]))
        # A key with the registered key's id and account but another private key: its JWTs are refused.
        self.forged_key = tmp / "forged-key.json"
        st.make_service_account_key(self.forged_key, forged=True)
        self.env = self.cloud.env()

    def config(self, credentials_file=None):
        return self.cloud.config(credentials_file=str(credentials_file or self.cloud.key_path), poll_interval_ms=20)

    def bad_config(self):
        return self.config(self.forged_key)

    def reset(self):
        self.cloud.state.reset_knobs()

    def slow_down(self):
        self.cloud.state.storage_delay = 0.5
        return {"storage_endpoint": self.cloud.url}  # read through the fixture's slow proxy

    def assert_nothing_left(self):
        self.cloud.assert_nothing_left()

    def stop(self):
        try:
            self.cloud.stop()
        finally:
            self.gcs.stop()
