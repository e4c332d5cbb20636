"""Session-scoped pytest fixtures for the AWS simulator (tests/sim/aws/awssim.py). Registered by
the import in conftest.py."""
import pytest

from aws_sim import AwsSim


def _start(tmp_path_factory, auth):
    sim = AwsSim(tmp_path_factory.mktemp("awssim-auth" if auth else "awssim"), auth=auth)
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture(scope="session")
def aws_sim(tmp_path_factory):
    """moto's server with our extensions, dummy keys (no signature checks)."""
    yield from _start(tmp_path_factory, auth=False)


@pytest.fixture(scope="session")
def aws_sim_auth(tmp_path_factory):
    """The same with moto's access control on: requests must be signed with the printed key pair."""
    yield from _start(tmp_path_factory, auth=True)
