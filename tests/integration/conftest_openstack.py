"""pytest fixtures for the openstack provider tests: the OpenStack fixtures (openstack_fixtures.py:
Keystone, Nova, Cinder and Glance shaped like the API references) on one FixtureServer for the
session, a fresh cloud per test, and Debian's real glance-api (glance_sim.py) for the session. Not
registered by conftest.py: a test module imports them,

    from conftest_openstack import openstack, openstack_disks, openstack_server  # noqa: F401
    from conftest_openstack import glance  # noqa: F401
"""
import os
from types import SimpleNamespace

import pytest

from conftest import MiB, qemu_img, write_pattern
from fixture_server import FixtureServer
from glance_sim import Glance
from openstack_fixtures import OpenStackState, attach, plant_standard

PASSWORD_ENV = "HSDK_TEST_OS_PASSWORD"
SECRET_ENV = "HSDK_TEST_OS_APP_SECRET"


@pytest.fixture(scope="session")
def openstack_disks(tmp_path_factory):
    """The planted contents: web01's root disk (16 MiB, raw, also as qcow2 for a Glance image of
    that format) and db01's boot and data volumes (8 and 4 MiB of data at the start of 1 GiB)."""
    d = tmp_path_factory.mktemp("openstack-disks")
    web01 = write_pattern(d / "web01.raw", 16 * MiB, seed=4242)
    qcow2 = d / "web01.qcow2"
    qemu_img("convert", "-f", "raw", "-O", "qcow2", web01, qcow2)
    return SimpleNamespace(web01=web01, web01_qcow2=qcow2,
                           db01_boot=write_pattern(d / "db01-boot.raw", 8 * MiB, seed=77),
                           db01_data=write_pattern(d / "db01-data.raw", 4 * MiB, seed=78))


@pytest.fixture(scope="session")
def openstack_server():
    with FixtureServer() as srv:
        yield srv


@pytest.fixture(scope="session")
def glance(tmp_path_factory):
    """Debian's glance-api, standalone (SQLite, filesystem store, no Keystone), for the session:
    a few seconds to start. Fails (not skips) when the package is missing: scripts/setup installs it."""
    with Glance(tmp_path_factory.mktemp("glance")) as g:
        yield g


@pytest.fixture
def openstack(openstack_server, openstack_disks):
    """A fresh cloud (plant_standard) on the session's server, with two more Glance images for
    glance:// sources: state.raw_image (web01's root, raw) and state.qcow2_image (the same as
    qcow2). state.disks: the planted files."""
    state = OpenStackState()
    plant_standard(state, openstack_disks.web01, openstack_disks.db01_boot, openstack_disks.db01_data, prewarm=False)
    state.raw_image = state.add_image("hsdk-raw", openstack_disks.web01, visibility="private")
    state.qcow2_image = state.add_image("hsdk-qcow2", openstack_disks.web01_qcow2, disk_format="qcow2", visibility="private")
    state.disks = openstack_disks
    attach(state, openstack_server)
    yield state


def bare_env(**more):
    """This process's environment without OS_* variables, plus `more`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update(more)
    return env


def password_config(state, **more):
    """Password auth entirely from the config (the password through PASSWORD_ENV)."""
    return {"auth_url": state.auth_url, "username": state.username, "password_env": PASSWORD_ENV,
            "project_name": state.project_name, "user_domain_name": "Default", "project_domain_name": "Default",
            "region_name": "RegionOne", "poll_interval_ms": 20, **more}
