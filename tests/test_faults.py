"""Faults (issue 5, "Faults"): the built .so, driven by the C host like Fluent Bit (on FLB_RETRY
the host re-flushes the same chunk after a delay, as Fluent Bit's scheduler does), against a
botocore-verifying receiver, tinyproxy and broken credential endpoints.

Every delivery scenario generates numbered records (id ``c<chunk>-<i>``) and checks with the
receiver's count (tests/helpers/faults.py: check_delivery) that every record was delivered
exactly once — or, where a lost response makes a duplicate unavoidable (the server processed
the request but the plugin never heard back), at least once, with every duplicate traced to a
request whose response was lost and whose chunk was retried.

Scenario → test → what is asserted:
  receiver down at start, then up   test_receiver_down_at_start_then_up     RETRY (refused), exactly once
  receiver restarted mid-run (x2)   test_receiver_restarted_mid_run         at least once; duplicates
                                                                            only from answers lost in
                                                                            the restart
  reset mid request body            test_connection_reset_mid_request_body  one RETRY per reset,
                                                                            exactly once
  reset mid response body           test_connection_reset_mid_response_body at least once, duplicates
                                                                            = records of reset requests
  stalled past ``timeout``          test_stalled_past_timeout               RETRY after ~timeout,
                                                                            at least once (counted)
  429 / 503 storm                   test_error_storm                        one RETRY per refusal,
                                                                            exactly once
  500 on every third request        test_500_on_every_third_request         exactly once, also with
                                                                            chunks split in parts
  proxy down, then up               test_proxy_down_then_up                 exactly once, via proxy
  proxy 403 CONNECT / 407 / 401     test_proxy_refuses_then_allows          RETRY + reason logged,
                                                                            then exactly once
  STS down longer than creds live   test_sts_down_longer_than_credential... RETRY once expired (logged),
                                                                            exactly once, valid keys
  IMDS / container hang, close,     test_broken_credential_endpoint_then_   RETRY within a bound, the
  reset, garbage, HTTP garbage,     healthy                                 provider named, nothing
  then healthy again                                                        sent; then exactly once
  IMDS hangs while init needs it    test_imds_hang_at_init_for_region       init fails in bounded time
  DNS failure, then resolvable      test_dns_failure_then_resolvable        RETRY, "dns error" logged;
                                                                            then exactly once

Network rule: nothing leaves loopback or a namespace the test creates. Tests outside a namespace
use loopback endpoints only and AWS_EC2_METADATA_DISABLED=true (tests/helpers/host.py); the
proxy, metadata and DNS tests run the host and every server inside a private namespace with only
``lo`` (tests/helpers/netns.py).
"""

from __future__ import annotations

import re
import time

import pytest

from tests.conftest import CREDENTIALS, CREDS_ENV
from tests.helpers import faults as F
from tests.helpers import host as H
from tests.helpers.fakes import FakeContainer, FakeIMDS, FakeSTS
from tests.helpers.receiver import Response

REGION, SERVICE = "us-east-1", "es"
REMOTE = "10.201.0.1"  # a non-loopback address on the namespace's lo: the proxy is used for it
PROXY_USER, PROXY_PASSWORD = "flbfault", "FaultProxyPassw0rdNeverLogged"


def instance(endpoint: str, **props) -> dict:
    d = {"endpoint": endpoint, "aws_region": REGION, "aws_service": SERVICE,
         "format": "json_lines"}
    d.update(props)
    return d


def receiver(**kw) -> F.FaultReceiver:
    kw.setdefault("credentials", [CREDENTIALS])
    kw.setdefault("region", REGION)
    kw.setdefault("service", SERVICE)
    kw.setdefault("require_token", True)
    return F.FaultReceiver(**kw)


@pytest.fixture
def receivers():
    made = []

    def make(start=True, **kw):
        r = receiver(**kw)
        made.append(r)
        return r.start() if start else r

    yield make
    for r in made:
        r.stop()


def first_results(res):
    return [f["results"][0] for f in res.summary["flushes"]]


def assert_signed(requests):
    bad = [(r.index, r.auth_reason) for r in requests if r.auth_checked and not r.auth_ok]
    assert not bad, f"requests with a bad signature: {bad[:5]}"


def assert_no_crash(res):
    text = res.stderr
    assert "panicked" not in text, res.describe()
    assert res.returncode in (H.EXIT_OK, H.EXIT_INIT), res.describe()


# ------------------------------------------------------------------------------------------------
# the receiver side: down, restarted, resets, stalls, error storms


def test_receiver_down_at_start_then_up(receivers):
    rcv = receivers(start=False)
    rcv.kill()  # nothing listens on its port
    chunk_list = F.numbered_chunks(12, 20)
    run = F.HostRun([instance(rcv.endpoint("/logs"))], chunk_list, env=CREDS_ENV, threads=3,
                    retry_delay_ms=200, max_retries=200).start()
    try:
        assert run.wait_log(r"failed, chunk kept for retry", 20), run.stderr_text()
        time.sleep(1.0)
        rcv.revive()
        res = run.wait()
    finally:
        run.cleanup()
    assert res.returncode == 0, res.describe()
    assert set(first_results(res)[:3]) == {H.FLB_RETRY}, "the first flushes should meet no receiver"
    assert any(re.search(r"refused|connect", l, re.I) for l in res.logs("warn")), res.describe()
    rep = F.check_delivery(res, chunk_list, rcv.requests(), exactly_once=True)
    assert_signed(rcv.requests())
    print(rep.line(), f"elapsed={res.elapsed:.1f}s")


def test_receiver_restarted_mid_run(receivers):
    rcv = receivers()
    chunk_list = F.numbered_chunks(60, 10)
    run = F.HostRun([instance(rcv.endpoint("/logs"))], chunk_list, env=CREDS_ENV, threads=4,
                    flush_interval_ms=50, retry_delay_ms=200, max_retries=200).start()
    try:
        assert F.wait_until(lambda: len(rcv.accepted()) >= 10, 20), run.stderr_text()
        rcv.kill()
        time.sleep(1.5)
        rcv.revive()
        assert F.wait_until(lambda: len(rcv.accepted()) >= 25, 20)
        rcv.kill()  # a second restart, at another moment
        time.sleep(0.5)
        rcv.revive()
        res = run.wait()
    finally:
        run.cleanup()
    assert res.returncode == 0, res.describe()
    assert res.summary["retry"] > 0, "the restarts were not felt"
    rep = F.check_delivery(res, chunk_list, rcv.requests(), exactly_once=False)
    assert_signed(rcv.requests())
    print(rep.line())


def test_connection_reset_mid_request_body_exactly_once(receivers):
    """The connection dies halfway through the request body: the server never sees a whole
    request, the flush is retried, every record arrives exactly once."""
    rcv = receivers()
    proxy = F.TcpFaultProxy(("127.0.0.1", rcv.port),
                            lambda n: "reset_mid_body" if n % 3 == 1 else "pass").start()
    try:
        chunk_list = F.numbered_chunks(15, 40, pad=200)
        res = F.run_host([instance(proxy.url("/logs"))], chunk_list, env=CREDS_ENV, threads=3,
                         retry_delay_ms=100, max_retries=50)
    finally:
        proxy.stop()
    assert res.returncode == 0, res.describe()
    resets = [a for a in proxy.actions if a[1] == "reset_mid_body"]
    assert len(resets) >= 5, proxy.actions
    assert res.summary["retry"] == len(resets), (res.summary["retry"], proxy.actions)
    rep = F.check_delivery(res, chunk_list, rcv.requests(), exactly_once=True)
    assert_signed(rcv.requests())
    print(rep.line())


def test_connection_reset_mid_response_body_at_least_once(receivers):
    """The server processes the request and the connection dies halfway through its answer:
    the plugin cannot know, retries, and the records of those requests arrive twice — each
    duplicate is accounted for."""
    rcv = receivers()
    rcv.set_responder(lambda req: Response(status=200, reset="mid_body")
                      if req.index % 4 == 1 else None)
    chunk_list = F.numbered_chunks(16, 20)
    res = F.run_host([instance(rcv.endpoint("/logs"))], chunk_list, env=CREDS_ENV, threads=4,
                     retry_delay_ms=100, max_retries=50)
    assert res.returncode == 0, res.describe()
    rep = F.check_delivery(res, chunk_list, rcv.requests(), exactly_once=False,
                           lost_outcomes=("reset",))
    resets = [r for r in rcv.requests() if r.outcome == "reset"]
    assert resets and rep.duplicates == sum(len(r.records) for r in resets), rep
    assert res.summary["retry"] == len(resets)
    print(rep.line())


def test_stalled_past_timeout(receivers):
    """Responses stalled past ``timeout`` (2 s): each such flush returns FLB_RETRY after about
    2 s, never hangs; the stalled requests are answered 200 late (processed), so their records
    arrive twice, accounted for."""
    rcv = receivers()
    rcv.set_responder(lambda req: Response(status=200, stall=4.0)
                      if req.index in (1, 4, 7) else None)
    chunk_list = F.numbered_chunks(9, 20)
    res = F.run_host([instance(rcv.endpoint("/logs"), timeout="2s")], chunk_list,
                     env=CREDS_ENV, threads=3, retry_delay_ms=100, max_retries=20)
    assert res.returncode == 0, res.describe()
    stalled = [r for r in rcv.requests() if r.outcome == "stalled"]
    assert len(stalled) == 3
    # one FLB_RETRY per stalled request (a retry may meet a stall again), each after ~2 s
    retry_ms = [ms for f in res.summary["flushes"] for code, ms in zip(f["results"], f["ms"])
                if code == H.FLB_RETRY]
    assert len(retry_ms) == 3, res.summary["flushes"]
    for ms in retry_ms:
        assert 1500 <= ms <= 3500, f"a stalled flush took {ms} ms with timeout 2s"
    assert any("timed out" in l or "timeout" in l.lower() for l in res.logs("warn")), \
        res.describe()
    rep = F.check_delivery(res, chunk_list, rcv.requests(), exactly_once=False,
                           lost_outcomes=("stalled",))
    assert rep.duplicates == sum(len(r.records) for r in stalled)
    print(rep.line())


@pytest.mark.parametrize("status", [429, 503])
def test_error_storm(receivers, status):
    """A storm: the first 40 requests get 429 (or 503, with Retry-After); nothing is lost,
    nothing duplicated, one FLB_RETRY per refused request."""
    rcv = receivers()
    body = ('{"__type":"ThrottlingException","message":"Rate exceeded"}' if status == 429
            else "<html>503 Service Unavailable</html>")
    rcv.set_responder(lambda req: Response(status=status, body=body,
                                           headers={"Retry-After": "1"})
                      if req.index < 40 else None)
    chunk_list = F.numbered_chunks(20, 15)
    res = F.run_host([instance(rcv.endpoint("/logs"))], chunk_list, env=CREDS_ENV, threads=4,
                     retry_delay_ms=20, max_retries=100)
    assert res.returncode == 0, res.describe()
    refused = [r for r in rcv.requests() if r.status == status]
    assert len(refused) == 40
    assert res.summary["retry"] == 40
    assert any(f"HTTP {status}" in l for l in res.logs("warn")), res.describe()
    rep = F.check_delivery(res, chunk_list, rcv.requests(), exactly_once=True)
    assert_signed(rcv.requests())
    print(rep.line())


@pytest.mark.parametrize("split", [False, True], ids=["one-request-per-chunk", "split-chunks"])
def test_500_on_every_third_request(receivers, split):
    """HTTP 500 on every third request. With ``split``, ``max_request_bytes`` cuts each chunk
    into ~5 requests, so a 500 hits a chunk whose first parts were delivered: the retry must
    send only the missing parts (DESIGN §6) — still exactly once."""
    rcv = receivers()
    rcv.set_responder(lambda req: Response(status=500, body='{"message":"internal"}')
                      if req.index % 3 == 2 else None)
    chunk_list = F.numbered_chunks(30, 10)
    props = {"compress": "gzip"}
    if split:
        props["max_request_bytes"] = "2500"  # ~2 records of ~1 KiB JSON per request
    res = F.run_host([instance(rcv.endpoint("/logs"), **props)], chunk_list,
                     env=CREDS_ENV, threads=4, retry_delay_ms=20, max_retries=50)
    assert res.returncode == 0, res.describe()
    n500 = len([r for r in rcv.requests() if r.status == 500])
    assert n500 >= 10 and res.summary["retry"] == n500
    if split:
        sizes = [len(r.records) for r in rcv.accepted()]
        assert max(sizes) < 10, f"chunks were not split: {sizes[:10]}"
    rep = F.check_delivery(res, chunk_list, rcv.requests(), exactly_once=True)
    assert_signed(rcv.requests())
    print(rep.line())


# ------------------------------------------------------------------------------------------------
# network namespaces: proxies, metadata endpoints, DNS


def _netns():
    from tests.helpers import netns as N

    return N


def _ns_skip():
    try:
        N = _netns()
    except ImportError as e:  # pragma: no cover - the helper is part of the tree
        return f"tests/helpers/netns.py: {e}"
    return N.unavailable_reason()


needs_ns = pytest.mark.skipif(_ns_skip() is not None, reason=f"network namespaces: {_ns_skip()}")


@pytest.fixture
def ns():
    N = _netns()
    n = N.NetNS(addrs=(REMOTE, N.IMDS_ADDR, N.ECS_ADDR)).create()
    yield n
    n.delete()


def _tinyproxy():
    from tests.helpers import proxy as P

    if not P.available():
        pytest.skip("tinyproxy is not installed (apt-get install tinyproxy)")
    return P


def _ns_receiver(ns, stoppers, **kw):
    rcv = ns.call(lambda: receiver(bind_host=REMOTE, **kw).start())
    stoppers.append(rcv.stop)
    return rcv


@pytest.fixture
def stoppers():
    s = []
    yield s
    for stop in reversed(s):
        try:
            stop()
        except Exception:  # noqa: BLE001 - best-effort teardown
            pass


@needs_ns
def test_proxy_down_then_up(ns, stoppers, tmp_path):
    """The configured proxy is not running at first (connection refused → FLB_RETRY), then it
    starts on its port: every record arrives once, through the proxy."""
    P = _tinyproxy()
    rcv = _ns_receiver(ns, stoppers)
    port = ns.free_port()
    chunk_list = F.numbered_chunks(8, 20)
    run = F.HostRun([instance(f"{rcv.url}/logs", proxy=f"http://127.0.0.1:{port}")],
                    chunk_list, env=CREDS_ENV, threads=2, retry_delay_ms=200, max_retries=200,
                    ns=ns).start()
    try:
        assert run.wait_log(r"failed, chunk kept for retry", 20), run.stderr_text()
        time.sleep(0.5)
        tp = P.Tinyproxy(ns, tmp_path / "tp", port=port)
        tp.start()
        stoppers.append(tp.stop)
        res = run.wait()
    finally:
        run.cleanup()
    assert res.returncode == 0, res.describe()
    assert set(first_results(res)[:2]) == {H.FLB_RETRY}
    proxied = [r for r in tp.requests() if r.host == REMOTE]
    assert len(proxied) == len(chunk_list), tp.describe()
    rep = F.check_delivery(res, chunk_list, rcv.requests(), exactly_once=True)
    assert_signed(rcv.requests())
    print(rep.line())


def _tls_receiver(ns, stoppers, tmp_path):
    tls = F.make_tls_files(tmp_path / "tls", ips=(REMOTE,), names=())
    rcv = _ns_receiver(ns, stoppers, tls=(str(tls["cert"]), str(tls["key"])))
    return rcv, tls


@needs_ns
@pytest.mark.parametrize("refusal", ["connect_403", "auth_407", "wrong_password_401"])
def test_proxy_refuses_then_allows(ns, stoppers, tmp_path, refusal):
    """An https endpoint behind tinyproxy. First the proxy refuses the CONNECT: to a port it does
    not allow (403); without credentials when it requires them (407); with a password it does
    not accept (tinyproxy answers 401 then). Each flush returns FLB_RETRY and the log says the
    tunnel failed (never showing the proxy password). Then the proxy is reconfigured on the same
    port to allow the tunnel: the same host process delivers every record, exactly once."""
    P = _tinyproxy()
    rcv, tls = _tls_receiver(ns, stoppers, tmp_path)
    port = ns.free_port()
    plain = f"http://127.0.0.1:{port}"
    with_auth = f"http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{port}"
    auth = dict(user=PROXY_USER, password=PROXY_PASSWORD)
    bad, good, proxy_url, reason = {
        "connect_403": (dict(connect_ports=(443,)), dict(connect_ports=(rcv.port,)), plain,
                        "tunnel error: unsuccessful"),
        "auth_407": (dict(connect_ports=(rcv.port,), **auth), dict(connect_ports=(rcv.port,)),
                     plain, "proxy authorization required"),
        "wrong_password_401": (dict(connect_ports=(rcv.port,), user=PROXY_USER,
                                    password="SomethingElse42"),
                               dict(connect_ports=(rcv.port,), **auth), with_auth,
                               "tunnel error: unsuccessful"),
    }[refusal]
    tp = P.Tinyproxy(ns, tmp_path / "tp-bad", port=port, **bad).start()
    stoppers.append(tp.stop)
    chunk_list = F.numbered_chunks(6, 20)
    run = F.HostRun([instance(f"{rcv.url}/logs", proxy=proxy_url, tls_ca_file=tls["ca"])],
                    chunk_list, env=CREDS_ENV, threads=2, retry_delay_ms=300, max_retries=300,
                    ns=ns).start()
    try:
        assert run.wait_log(r"failed, chunk kept for retry", 20), run.stderr_text()
        time.sleep(1.0)
        refused_log = tp.log_text()
        tp.stop()
        tp2 = P.Tinyproxy(ns, tmp_path / "tp-good", port=port, **good).start()
        stoppers.append(tp2.stop)
        res = run.wait()
    finally:
        run.cleanup()
    assert res.returncode == 0, res.describe()
    assert set(first_results(res)[:2]) == {H.FLB_RETRY}
    assert "CONNECT" in refused_log, refused_log[-2000:]
    warns = [l for l in res.logs("warn") if "chunk kept for retry" in l]
    print("\n".join(sorted(set(re.sub(r":\d+", ":PORT", l) for l in warns))))
    # the refusal, with its reason (later lines may also show the proxy restarting)
    assert warns and reason in warns[0], warns[:3]
    assert sum(reason in l for l in warns) >= 2, warns
    assert PROXY_PASSWORD not in res.stdout + res.stderr
    tunnels = [r for r in tp2.requests() if r.method == "CONNECT"]
    assert tunnels and all(r.host == REMOTE for r in tunnels), tp2.describe()
    rep = F.check_delivery(res, chunk_list, rcv.requests(), exactly_once=True)
    assert_signed(rcv.requests())
    print(rep.line())


# -- credential endpoints ------------------------------------------------------------------------


@pytest.mark.slow
def test_sts_down_longer_than_credential_lifetime(receivers):
    """AssumeRole credentials live 20 s. STS goes down 3 s into the run for 25 s: the plugin keeps
    using the valid credentials, then — once they expire — flushes return FLB_RETRY (logged),
    and when STS is back new credentials are fetched and every record arrives exactly once,
    each request signed with credentials that were valid when it was received."""
    sts = FakeSTS("127.0.0.1", 0, base_credentials=[CREDENTIALS], lifetime=20).start()
    rcv = receivers(extra_credentials=lambda: [i.cred for i in sts.issued()])
    try:
        chunk_list = F.numbered_chunks(60, 10)
        inst = instance(rcv.endpoint("/logs"),
                        aws_role_arn="arn:aws:iam::123456789012:role/flbt-fault",
                        aws_sts_endpoint=sts.url)
        run = F.HostRun([inst], chunk_list, env=CREDS_ENV, threads=2, flush_interval_ms=1000,
                        retry_delay_ms=1000, max_retries=100, log_level="debug").start()
        try:
            time.sleep(3)
            assert len(sts.issued()) == 1
            sts.stop()
            down_at = time.time()
            time.sleep(25)
            sts.start()
            up_at = time.time()
            res = run.wait()
        finally:
            run.cleanup()
    finally:
        sts.stop()
    assert res.returncode == 0, res.describe()
    first = sts.issued()[0]
    assert down_at < first.expires_at < up_at, "the outage must outlast the credentials"
    assert res.summary["retry"] > 0, "flushes after the expiry should have been retried"
    retry_logs = [l for l in res.logs("warn") if "no usable credentials" in l]
    assert retry_logs and any("expired" in l for l in retry_logs), res.describe()
    assert any("refreshing credentials" in l for l in res.logs("warn"))
    by_key = sts.issued_by_key()
    assert len(by_key) >= 2
    for r in rcv.accepted():
        iss = by_key.get(r.access_key)
        assert iss is not None, f"request #{r.index} signed with {r.access_key}"
        assert iss.valid_at(r.received_at), (
            f"request #{r.index} signed with credentials expired at {iss.expires_at}")
    rep = F.check_delivery(res, chunk_list, rcv.requests(), exactly_once=True)
    print(rep.line())


METADATA_CASES = [(p, m) for p in ("imds", "container")
                  for m in ("hang", "close", "reset", "garbage", "http_garbage")]


@needs_ns
@pytest.mark.parametrize("provider,mode", METADATA_CASES,
                         ids=[f"{p}-{m}" for p, m in METADATA_CASES])
def test_broken_credential_endpoint_then_healthy(ns, stoppers, provider, mode):
    """Instance metadata (169.254.169.254) or the container endpoint (169.254.170.2) that hangs,
    closes the connection, resets it, answers bytes that are not HTTP, or answers 200 with a
    body that is not what was asked. Init succeeds (the chain only checks configuration); each
    flush returns FLB_RETRY within a bounded time with a log line naming the provider; nothing
    is sent. Then the endpoint is healthy again (a fake IMDSv2 / container endpoint takes the
    same address and port): the chunks the host kept re-flushing are delivered, exactly once,
    signed with the credentials the healthy endpoint issued. No crash."""
    N = _netns()
    addr = N.IMDS_ADDR if provider == "imds" else N.ECS_ADDR
    path = "/v2/credentials/flbt"
    fault = F.RawFaultServer(addr, 80, mode, ns=ns).start()
    stoppers.append(fault.stop)
    healthy = []
    rcv = ns.call(lambda: receiver(
        credentials=[], extra_credentials=lambda: [i.cred for f in healthy
                                                   for i in f.issued()]).start())
    stoppers.append(rcv.stop)
    env = {"AWS_EC2_METADATA_DISABLED": None}
    props = {}
    if provider == "imds":
        props["aws_imds"] = "on"
    else:
        env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = f"http://{addr}{path}"
    chunk_list = F.numbered_chunks(3, 5)
    run = F.HostRun([instance(rcv.endpoint("/logs"), **props)], chunk_list, env=env,
                    threads=1, max_retries=500, retry_delay_ms=200, ns=ns, timeout=300).start()
    try:
        # the broken phase: at least two flushes refused for want of credentials
        assert F.wait_until(lambda: run.stderr_text().count("chunk kept for retry") >= 2, 120), \
            run.stderr_text()[-3000:]
        sent_while_broken = len(rcv.requests())
        connections = fault.connections
        fault.stop()
        fake = (FakeIMDS(addr, 80, ns=ns) if provider == "imds"
                else FakeContainer(addr, 80, ns=ns, path=path))
        healthy.append(fake)
        fake.start()
        stoppers.append(fake.stop)
        healed_at = run.elapsed()
        res = run.wait()
    finally:
        run.cleanup()
    assert_no_crash(res)
    assert res.returncode == 0, res.describe()
    assert sent_while_broken == 0, "nothing may be sent without credentials"
    assert connections >= 1
    first = res.summary["flushes"][0]
    assert first["results"][:2] == [H.FLB_RETRY, H.FLB_RETRY], res.describe()
    bound_ms = 15000 if provider == "imds" else 25000
    refused_ms = [ms for f in res.summary["flushes"] for code, ms in zip(f["results"], f["ms"])
                  if code == H.FLB_RETRY]
    assert max(refused_ms) < bound_ms, f"a refused flush took {max(refused_ms)} ms"
    name = "imds" if provider == "imds" else "container"
    lines = [l for l in res.logs("warn") + res.logs("error") if name in l]
    assert lines, res.describe()
    assert fake.issued(), "the healthy endpoint was never asked"
    rep = F.check_delivery(res, chunk_list, rcv.requests(), exactly_once=True)
    assert_signed(rcv.requests())
    assert {r.access_key for r in rcv.accepted()} <= {i.access_key for i in fake.issued()}
    print(f"{provider}/{mode}: refused flushes ms={refused_ms} healed at {healed_at:.1f}s, "
          f"done at {res.elapsed:.1f}s; {rep.line()}; log: {lines[0][:200]}")


@needs_ns
def test_imds_hang_at_init_for_region(ns, stoppers):
    """No region configured: it must come from instance metadata, which hangs. Init fails within a
    bounded time with one clear error, no crash."""
    N = _netns()
    fault = F.RawFaultServer(N.IMDS_ADDR, 80, "hang", ns=ns).start()
    stoppers.append(fault.stop)
    inst = {"endpoint": "http://127.0.0.1:9/logs", "aws_service": SERVICE, "aws_imds": "on"}
    res = F.run_host([inst], F.numbered_chunks(1, 1), env={"AWS_EC2_METADATA_DISABLED": None},
                     max_retries=0, ns=ns, timeout=120)
    wall = res.elapsed
    assert "panicked" not in res.stderr
    assert res.returncode == H.EXIT_INIT, res.describe()
    assert wall < 30, wall
    errors = res.logs("error")
    assert errors and any("imds" in l.lower() or "metadata" in l.lower() for l in errors), \
        res.describe()
    print(f"init failed after {wall:.1f}s: {errors[0][:300]}")


@needs_ns
def test_dns_failure_then_resolvable(ns, stoppers):
    """The endpoint's host name does not resolve: a reserved .invalid name, looked up inside a
    namespace that has only lo (the namespace's /etc/hosts — tests/helpers/netns.py set_hosts —
    does not list it, and the resolver of /etc/resolv.conf is unreachable there, so no query
    leaves). Every flush returns FLB_RETRY quickly with a DNS error in the log. Then the name is
    added to the namespace's hosts file (rewritten in place, which the running host sees): the
    same chunks, re-flushed by the host, are delivered exactly once."""
    host_name = "logs.flbt-fault.invalid"
    ns.set_hosts({})
    rcv = _ns_receiver(ns, stoppers)
    chunk_list = F.numbered_chunks(3, 5)
    run = F.HostRun([instance(f"http://{host_name}:{rcv.port}/logs")], chunk_list,
                    env=CREDS_ENV, threads=3, max_retries=300, retry_delay_ms=200, ns=ns,
                    timeout=180).start()
    try:
        assert F.wait_until(lambda: run.stderr_text().count("chunk kept for retry") >= 6, 60), \
            run.stderr_text()[-3000:]
        sent_while_unresolvable = len(rcv.requests())
        ns.set_hosts({host_name: REMOTE})
        res = run.wait()
    finally:
        run.cleanup()
    assert_no_crash(res)
    assert res.returncode == 0, res.describe()
    assert sent_while_unresolvable == 0
    for f in res.summary["flushes"]:
        assert f["results"][0] == H.FLB_RETRY, res.describe()
        retry_ms = [ms for code, ms in zip(f["results"], f["ms"]) if code == H.FLB_RETRY]
        assert max(retry_ms) < 10000, f["ms"]
    warns = [l for l in res.logs("warn") if "chunk kept for retry" in l]
    assert len(warns) >= 6, res.describe()
    assert all(re.search(r"dns|lookup|resolve|name or service", l, re.I) for l in warns), warns
    rep = F.check_delivery(res, chunk_list, rcv.requests(), exactly_once=True)
    assert_signed(rcv.requests())
    print(warns[0])
    print(rep.line())
