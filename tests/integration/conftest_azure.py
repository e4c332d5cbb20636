"""Session-scoped pytest fixture for Azurite (tests/sim/azure, started by azure_sim.Azurite).
Registered by the import in conftest.py."""
import pytest

from azure_sim import Azurite


@pytest.fixture(scope="session")
def azurite(tmp_path_factory):
    """azurite-blob on 127.0.0.1 (in memory, loose, any API version); the dev account and key."""
    sim = Azurite(tmp_path_factory.mktemp("azurite"))
    try:
        yield sim
    finally:
        sim.stop()
