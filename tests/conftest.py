"""Fixtures for the flb-sigv4 Python tests (C host, plugin .so, verifying receivers, chunks),
and three suite-wide rules:

* every host run logs at ``Log_Level trace`` unless the test chooses a level
  (``FLB_SIGV4_TEST_LOG_LEVEL``, read by tests/helpers/host.py; set it to override);
* every host run's output is searched for every secret the suite uses (tests/helpers/leaks.py):
  this module's credentials and the secret-looking globals of every collected test module are
  registered at collection, the fakes register what they issue, and each run adds what it was
  given; a hit fails the test;
* with ``FLB_SIGV4_CI=1`` (set by .ci/run) a skipped test is an error, except the tests gated on
  ``FLUENT_BIT`` (a real Fluent Bit binary) and ``FLB_SIGV4_TSAN_SO`` (a ThreadSanitizer build)
  while those are unset: in CI a missing namespace, valgrind, tinyproxy or moto must not pass
  silently.
"""

from __future__ import annotations

import os

import pytest

from tests.helpers import chunks as chunks_mod
from tests.helpers import host as host_mod
from tests.helpers import leaks
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
    os.environ.setdefault("FLB_SIGV4_TEST_LOG_LEVEL", "trace")
    leaks.register("tests/conftest.py SECRET_KEY", SECRET_KEY)
    leaks.register("tests/conftest.py SESSION_TOKEN", SESSION_TOKEN)


def pytest_collection_modifyitems(session, config, items):
    seen = set()
    for item in items:
        mod = item.getparent(pytest.Module)
        if mod is not None and mod.nodeid not in seen:
            seen.add(mod.nodeid)
            leaks.register_module(mod.obj)


def in_ci() -> bool:
    return os.environ.get("FLB_SIGV4_CI") == "1"


def allowed_skip(item, reason: str) -> bool:
    """The skips CI tolerates: no real Fluent Bit (FLUENT_BIT unset; FLUENT_BIT_IMAGE unset for
    the container tests) and no ThreadSanitizer build (FLB_SIGV4_TSAN_SO unset), each only for
    the tests gated on it."""
    if "FLUENT_BIT is not set" in reason and not os.environ.get("FLUENT_BIT") \
            and item.path.name == "test_fluent_bit_real.py":
        return True
    if "set FLUENT_BIT_IMAGE" in reason and not os.environ.get("FLUENT_BIT_IMAGE") \
            and item.path.name == "test_containers.py":
        return True
    if "FLB_SIGV4_TSAN_SO" in reason and not os.environ.get("FLB_SIGV4_TSAN_SO") \
            and "thread_sanitizer" in item.name:
        return True
    return False


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not (rep.skipped and in_ci()) or hasattr(rep, "wasxfail"):
        return
    lr = rep.longrepr
    reason = lr[2] if isinstance(lr, tuple) and len(lr) == 3 else str(lr)
    if allowed_skip(item, reason):
        return
    rep.outcome = "failed"
    rep.longrepr = (f"skipped in CI (FLB_SIGV4_CI=1), which must run every test but the "
                    f"FLUENT_BIT- and FLB_SIGV4_TSAN_SO-gated ones: {reason}")


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

    def run(instances, chunk_list=(), env=None, so=None, **kw):
        full_env = dict(CREDS_ENV)
        full_env.update(env or {})
        return host_mod.run_host(instances, chunk_list, so=so or plugin_so, env=full_env, **kw)

    return run


@pytest.fixture
def run_mock(mock_so, host_bin):
    def run(instances, chunk_list=(), **kw):
        return host_mod.run_host(instances, chunk_list, so=mock_so, **kw)

    return run
