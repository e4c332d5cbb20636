"""The openstack provider's harness for the conformance suite (test_provider_conformance.py):
request/response fixtures shaped like the OpenStack API references (openstack_fixtures.py:
Keystone, Nova, Cinder, Glance) on a FixtureServer. The planted disk is web01's root: its
createImage snapshot holds it, and every image of ours must be deleted afterwards."""
import os

from conftest import MiB, write_pattern
from openstack_fixtures import KiB, OpenStackState, plant_standard, serve


class OpenStackHarness:
    name = "openstack"
    vm = "web01"

    def __init__(self, tmp):
        self.planted = write_pattern(tmp / "planted.raw", 16 * MiB, seed=4242)
        self.state = OpenStackState()
        plant_standard(self.state, self.planted, prewarm=False)
        self.server = serve(self.state)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        self.env["HSDK_TEST_OS_PASSWORD"] = self.state.password

    def config(self, password_env="HSDK_TEST_OS_PASSWORD"):
        s = self.state
        return {"auth_url": s.auth_url, "username": s.username, "password_env": password_env, "project_name": s.project_name,
                "user_domain_name": "Default", "project_domain_name": "Default", "region_name": "RegionOne",
                "poll_interval_ms": 20}

    def bad_config(self):
        self.env["HSDK_WRONG_OS_PASSWORD"] = "wrong-t0ken"
        return self.config("HSDK_WRONG_OS_PASSWORD")

    def reset(self):
        self.state.chunk_size = 256 * KiB
        self.state.chunk_delay = 0

    def slow_down(self):
        self.state.chunk_size = 256 * KiB
        self.state.chunk_delay = 0.1  # 64 pieces of the 16 MiB image: over 6 s
        return {}

    def assert_nothing_left(self):
        assert not self.state.images_left(), [(i, self.state.images[i].status) for i in self.state.images_left()]

    def stop(self):
        self.server.stop()
