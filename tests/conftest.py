"""Fixtures for the flb-sigv4 Python tests (C host, plugin .so, verifying receivers, chunks)."""

from __future__ import annotations

import pytest

from tests.helpers import chunks as chunks_mod
from tests.helpers import host as host_mod
from tests.helpers.receiver import Receiver

# Credentials the plugin reads from the host's environment (DESIGN.md §4, provider 1).
ACCESS_KEY = "AKIDFLBSIGV4TEST0001"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYFLBSIGV4KEY"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEFlbSigV4TestSessionToken//////////wEaCXVzLWVhc3QtMSJHMEUCIQ=="
CREDENTIALS = (ACCESS_KEY, SECRET_KEY, SESSION_TOKEN)
CREDS_ENV = {
    "AWS_ACCESS_KEY_ID": ACCESS_KEY,
    "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
    "AWS_SESSION_TOKEN": SESSION_TOKEN,
}


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    config.addinivalue_line("markers", "valgrind: runs the host under valgrind")


@pytest.fixture(scope="session")
def host_bin():
    return host_mod.host_binary()


@pytest.fixture(scope="session")
def plugin_so():
    """The plugin .so (built with cargo when missing or stale)."""
    try:
        return host_mod.plugin_so()
    except host_mod.BuildError as e:
        pytest.fail(f"cannot build the plugin: {e}", pytrace=False)


@pytest.fixture(scope="session")
def mock_so():
    return host_mod.mock_plugin_so()


@pytest.fixture
def receiver_factory():
    """make(**kw) -> a started Receiver (stopped at teardown). Defaults: the test credentials,
    verification on."""
    made = []

    def make(**kw):
        kw.setdefault("credentials", [CREDENTIALS])
        r = Receiver(**kw).start()
        made.append(r)
        return r

    yield make
    for r in made:
        r.stop()


@pytest.fixture
def receiver(receiver_factory):
    return receiver_factory(region="us-east-1", service="es", require_token=True)


@pytest.fixture
def chunks():
    return chunks_mod


@pytest.fixture
def run_plugin(plugin_so, host_bin, tmp_path):
    """run(instances, chunks, **kw) -> HostResult, with the test credentials in the host's
    environment (kw env= adds to them)."""

    def run(instances, chunk_list=(), env=None, **kw):
        full_env = dict(CREDS_ENV)
        full_env.update(env or {})
        return host_mod.run_host(instances, chunk_list, so=plugin_so, env=full_env, **kw)

    return run


@pytest.fixture
def run_mock(mock_so, host_bin):
    def run(instances, chunk_list=(), **kw):
        return host_mod.run_host(instances, chunk_list, so=mock_so, **kw)

    return run
