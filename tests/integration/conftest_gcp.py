"""Pytest fixtures and helpers shared by the GCP tests: fake-gcs-server for the session, and
GcpCloud, one GcpState (tests/integration/gcp_fixtures.py) on that fake-gcs-server behind its own
FixtureServer, with a registered service-account key and the client's config and environment.

A test module registers the fixtures by importing them (conftest.py may import them too, as it
does for conftest_aws / conftest_azure):

    from conftest_gcp import fake_gcs  # noqa: F401
"""
import os
import pathlib
import uuid

import pytest

from conftest import MiB, write_pattern
from fixture_server import FixtureServer
from gcp_fixtures import GiB, GcpState, gcp_routes
from gcs_sim import FakeGcs

# Variables that would make a Google client use other credentials, another project, or look for a
# metadata server or storage emulator elsewhere.
_GOOGLE_ENV_PREFIXES = ("GOOGLE_", "CLOUDSDK_", "GCLOUD_", "GCE_METADATA", "STORAGE_EMULATOR_HOST", "GCE_")


@pytest.fixture(scope="session")
def fake_gcs(tmp_path_factory):
    """build/sim/fake-gcs-server on 127.0.0.1 (memory backend, plain HTTP, no auth)."""
    gcs = FakeGcs(tmp_path_factory.mktemp("fake-gcs"))
    try:
        yield gcs
    finally:
        gcs.stop()


def pattern_disk(path, seed, data_bytes=16 * MiB, size=GiB):
    """A sparse raw file of `size` bytes: conftest.write_pattern's seeded mix of data, zeros and
    holes over the first `data_bytes`, a hole after. Returns the path."""
    write_pattern(path, data_bytes, seed)
    os.truncate(path, size)
    return pathlib.Path(path)


def clean_env(base=None):
    """A copy of `base` (os.environ) without any Google credentials, project or endpoint variable."""
    return {k: v for k, v in (os.environ if base is None else base).items() if not k.startswith(_GOOGLE_ENV_PREFIXES)}


class GcpCloud:
    """GcpState + FixtureServer over a (shared) fake-gcs-server, a bucket of its own, and a
    registered service-account key in <tmp>/sa-key.json.

        cloud = GcpCloud(fake_gcs, tmp_path, page_size=1)
        make_disk(cloud.state, ...); cloud.state.add_instance(...)
        hsdk(..., "--config", json.dumps(cloud.config()), env=cloud.env())
        cloud.stop()
    """

    def __init__(self, gcs, tmp, page_size=None):
        self.tmp = pathlib.Path(tmp)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.gcs = gcs
        self.state = GcpState(gcs=gcs, workdir=self.tmp / "gcp-state", page_size=page_size,
                              bucket="hsdk-exports-" + uuid.uuid4().hex[:12])
        self.srv = FixtureServer(gcp_routes(self.state))
        self.state.base_url = self.srv.url
        self.key_path = self.tmp / "sa-key.json"
        self.key = self.state.make_service_account_key(self.key_path)
        self.home = self.tmp / "home"
        (self.home / ".config" / "gcloud").mkdir(parents=True, exist_ok=True)

    @property
    def url(self):
        return self.srv.url

    def endpoints(self, storage=None):
        """The endpoint overrides: every Google API at the fixture server, storage at fake-gcs-server
        (storage="proxy": through the fixture server's slow proxy)."""
        return {"token_uri": self.state.token_uri, "compute_endpoint": self.srv.url, "cloudbuild_endpoint": self.srv.url,
                "storage_endpoint": self.srv.url if storage == "proxy" else self.gcs.url, "metadata_host": self.srv.url}

    def config(self, storage=None, credentials=True, **more):
        """The gcp provider's config: project, the service-account key file, the endpoints, the
        export bucket and a short poll interval; `more` adds or overrides keys (a None value
        removes one)."""
        c = {"project": self.state.project, **self.endpoints(storage), "bucket": self.state.bucket, "poll_interval_ms": 20}
        if credentials:
            c["credentials_file"] = str(self.key_path)
        for k, v in more.items():
            if v is None:
                c.pop(k, None)
            else:
                c[k] = v
        return c

    def env(self, **more):
        """The environment of a client process: no Google variables from outside, HOME and
        CLOUDSDK_CONFIG in empty folders (no gcloud or ADC file is found), and the metadata server
        at the fixture (so that no lookup ever leaves 127.0.0.1)."""
        env = clean_env()
        env.update(HOME=str(self.home), CLOUDSDK_CONFIG=str(self.home / ".config" / "gcloud"),
                   GCE_METADATA_HOST=self.state.metadata_host, GCE_METADATA_IP=self.state.metadata_host)
        env.update({k: str(v) for k, v in more.items() if v is not None})
        return env

    def secrets(self, *infos):
        """Strings no output may show: issued tokens, the key's private key (pieces), and the
        secrets of other credential dicts given."""
        return self.state.secrets_of(self.key, *infos)

    def assert_nothing_left(self):
        st = self.state
        assert not st.images_left(), f"images of ours left: {st.images_left()}"
        assert not st.running_builds(), f"builds still running: {st.running_builds()}"
        assert not st.objects_left(), f"export objects left: {st.objects_left()}"

    def stop(self):
        self.srv.stop()
