"""Secrets (issue 5, "Secrets"; DESIGN §8).

Suite-wide: every host run of every test (at ``Log_Level trace`` unless the test is about log
levels) is searched for every secret the suite knows — tests/helpers/leaks.py, wired into
tests/helpers/host.py and tests/helpers/faults.py by tests/conftest.py; a hit fails that test.

This module adds focused scenarios of every credential source the plugin handles, success and
failure paths alike, each asserting that it really produced the log lines it is about (the scan
is not vacuous): environment keys, static keys of a shared credentials file (including a broken
line next to a secret), credential_process, sts:AssumeRole, the container endpoint with its
authorization token, web identity, EC2 instance metadata (IMDS-issued credentials and the IMDS
session token), and a proxy password. Every byte the host process writes (stdout with the
summary, stderr with every plugin log line and anything printed by a panic or a child process)
is searched for every secret value the scenario used — secret access keys, session tokens, a web
identity token, a container authorization token, a proxy password — in its raw form, JSON- and
URL-escaped, as the base64 of a Basic ``user:password``, and as any 16-character piece of it:
zero hits.

Network rule: the proxy scenario runs in a private namespace (tinyproxy, receiver and host all
inside); the others use loopback endpoints only (the fake IMDS too, through
AWS_EC2_METADATA_SERVICE_ENDPOINT), with AWS_EC2_METADATA_DISABLED=true except for the IMDS one.
"""

from __future__ import annotations

import base64
import json
import stat
import sys
import urllib.parse
from pathlib import Path
from secrets import token_urlsafe

import pytest

from tests.conftest import ACCESS_KEY, CREDENTIALS, CREDS_ENV, SECRET_KEY, SESSION_TOKEN
from tests.helpers import faults as F
from tests.helpers import host as H
from tests.helpers import leaks
from tests.helpers.fakes import FakeContainer, FakeIMDS, FakeSTS, sts_error
from tests.helpers.leaks import find_leaks, forms, pieces  # noqa: F401 - the search, re-exported
from tests.helpers.receiver import Response

REGION, SERVICE = "us-east-1", "es"
ROLE = "arn:aws:iam::123456789012:role/flbt-secrets"
WEB_IDENTITY_TOKEN = ("eyJhbGciOiJSUzI1NiIsImtpZCI6ImZsYnQifQ.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFj"
                      "Y291bnQ6ZmxidDpzZWNyZXRzIn0.WebIdentitySignatureNeverLogged0123456789")
CONTAINER_TOKEN = "Bearer-ContainerAuthTokenNeverLogged-8f2b9c1d7e6a"
PROXY_USER = "flbsecret"
PROXY_PASSWORD = "Pr0xyS3cretNeverLogged"
PROCESS_SECRET = "ProcessSecretAccessKey/NeverLogged+000000001"
PROCESS_TOKEN = "ProcessSessionToken//NeverLogged+FQoGZXIvYXdzEJr000000000000000001"
PROCESS_KEY = "ASIAPROCSECRETS00001"
STATIC_KEY = ("AKIDSTATICFILEFLBT01", "StaticFileSecretKey/NeverLogged+00000000001",
              "StaticFileSessionToken//NeverLogged+FQoGZXIvYXdzEJr0000000000001")
BROKEN_LINE_SECRET = "SecretOnABrokenLine/NeverLogged+000000000001"
IMDS_BROKEN_SECRET = "ImdsHalfDocumentSecret/NeverLogged+0000000001"


def check(res: H.HostResult, secrets: dict, *, expect_logs: list, min_lines: int = 4,
          debug: bool = False):
    """Zero hits in every byte of stdout + stderr, and the scenario's log lines are there."""
    blob = getattr(res, "raw_stdout", res.stdout.encode()) + \
        getattr(res, "raw_stderr", res.stderr.encode())
    hits = find_leaks(blob, secrets)
    assert not hits, "secrets in the host's output:\n" + "\n".join(
        f"  {n}: {p!r} in ...{ctx!r}..." for n, p, ctx in hits[:10])
    assert "panicked" not in res.stderr, res.describe()
    lines = res.log_lines
    assert len(lines) >= min_lines, f"only {len(lines)} log lines:\n" + res.stderr[-3000:]
    if debug:  # success paths log at debug level (Log_Level trace shows them)
        assert res.logs("debug"), "no debug line at Log_Level trace"
    text = "\n".join(lines)
    for pat in expect_logs:
        assert pat.lower() in text.lower(), f"expected a log line with {pat!r}:\n{text[-4000:]}"
    return len(lines)


def instance(endpoint: str, **props) -> dict:
    d = {"endpoint": endpoint, "aws_region": REGION, "aws_service": SERVICE}
    d.update(props)
    return d


def run(instances, env=None, chunks=None, **kw) -> H.HostResult:
    kw.setdefault("max_retries", 1)
    kw.setdefault("retry_delay_ms", 100)
    return F.run_host(instances, chunks or F.numbered_chunks(2, 3), env=env,
                      log_level="trace", **kw)


@pytest.fixture
def recv():
    made = []

    def make(**kw):
        kw.setdefault("region", REGION)
        kw.setdefault("service", SERVICE)
        r = F.FaultReceiver(**kw).start()
        made.append(r)
        return r

    yield make
    for r in made:
        r.stop()


ENV_SECRETS = {"env secret key": SECRET_KEY, "env session token": SESSION_TOKEN}


# ------------------------------------------------------------------------------------------------


def test_env_keys_with_session_token(recv):
    """Environment keys with a session token: a delivery, a 403 (logged with its body), a 403
    ExpiredToken (refresh and re-send), a 500, then success."""
    rcv = recv(credentials=[CREDENTIALS], require_token=True)
    rcv.script(Response(status=403, body='{"message":"User: arn:aws:iam::1:user/x is not '
                                         'authorized to perform: es:ESHttpPost"}'),
               Response(status=403, body='{"__type":"ExpiredTokenException","message":'
                                         '"The security token included in the request is '
                                         'expired"}'),
               Response(status=500, body="oops"))
    res = run([instance(rcv.endpoint("/logs"))], env=CREDS_ENV,
              chunks=F.numbered_chunks(3, 3), max_retries=3)
    assert res.returncode == 0, res.describe()
    assert [r.auth_ok for r in rcv.requests()].count(True) >= 3
    n = check(res, ENV_SECRETS, expect_logs=["HTTP 403", "not authorized", "refreshing",
                                              "HTTP 500", "delivered"], debug=True)
    print(f"env: {n} log lines, 0 secrets")


def _script(tmp: Path, name: str, body: str) -> Path:
    p = tmp / name
    p.write_text("#!/bin/sh\n" + body)
    p.chmod(p.stat().st_mode | stat.S_IXUSR)
    return p


def _process_profile(tmp: Path, script: Path) -> dict:
    cfg = tmp / "aws-config"
    cfg.write_text(f"[profile proc]\ncredential_process = {script}\n")
    return {"AWS_CONFIG_FILE": str(cfg), "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "none")}


PROCESS_JSON = json.dumps({"Version": 1, "AccessKeyId": PROCESS_KEY,
                           "SecretAccessKey": PROCESS_SECRET, "SessionToken": PROCESS_TOKEN,
                           "Expiration": "2099-01-01T00:00:00Z"})
PROCESS_SECRETS = {"process secret key": PROCESS_SECRET, "process token": PROCESS_TOKEN}


def test_credential_process_success_and_403(recv, tmp_path):
    script = _script(tmp_path, "cp-ok.sh",
                     f"echo 'credential helper: fetching (stderr is logged)' >&2\n"
                     f"cat <<'EOF'\n{PROCESS_JSON}\nEOF\n")
    rcv = recv(credentials=[(PROCESS_KEY, PROCESS_SECRET, PROCESS_TOKEN)], require_token=True)
    rcv.script(Response(status=403, body='{"message":"no permission for this index"}'))
    res = run([instance(rcv.endpoint("/logs"), aws_profile="proc")],
              env=_process_profile(tmp_path, script))
    assert res.returncode == 0, res.describe()
    assert any(r.auth_ok for r in rcv.requests())
    n = check(res, PROCESS_SECRETS, expect_logs=["credential_process", "HTTP 403", "delivered"],
              debug=True)
    print(f"credential_process: {n} log lines, 0 secrets")


def test_credential_process_exit_1_and_bad_json(recv, tmp_path):
    """The program prints credentials on stdout and then fails (exit 1), or prints JSON that is
    cut short: stdout is never logged, stderr is."""
    for name, body in (
        ("cp-exit1.sh", f"cat <<'EOF'\n{PROCESS_JSON}\nEOF\n"
                        "echo 'helper: token cache locked, giving up' >&2\nexit 1\n"),
        ("cp-badjson.sh", f"printf '%s' '{PROCESS_JSON[:-30]}'\n"),
    ):
        script = _script(tmp_path, name, body)
        rcv = recv(credentials=[(PROCESS_KEY, PROCESS_SECRET, PROCESS_TOKEN)])
        res = run([instance(rcv.endpoint("/logs"), aws_profile="proc")],
                  env=_process_profile(tmp_path, script))
        assert res.returncode == 0, res.describe()
        assert set(res.results()[0]) == {H.FLB_RETRY}, res.describe()
        assert rcv.requests() == []
        expect = ["token cache locked"] if "exit1" in name else ["credential_process"]
        n = check(res, PROCESS_SECRETS, expect_logs=expect + ["no usable credentials"])
        print(f"{name}: {n} log lines, 0 secrets")


def test_assumed_role_success_and_sts_failures(recv):
    """sts:AssumeRole at a fake STS (base: environment keys with a token): delivery with the
    assumed credentials, then STS answering broken XML, then an STS 403 error."""
    sts = FakeSTS("127.0.0.1", 0, base_credentials=[CREDENTIALS], lifetime=3600).start()
    try:
        rcv = recv(credentials=[], require_token=True,
                   extra_credentials=lambda: [i.cred for i in sts.issued()])
        inst = instance(rcv.endpoint("/logs"), aws_role_arn=ROLE, aws_sts_endpoint=sts.url)
        res_ok = run([inst], env=CREDS_ENV)
        sts.malformed = True
        res_xml = run([inst], env=CREDS_ENV)
        sts.malformed = False
        sts.fail = sts_error("AccessDenied", "User is not authorized to perform sts:AssumeRole")
        res_403 = run([inst], env=CREDS_ENV)
    finally:
        sts.stop()
    issued = sts.issued()
    assert issued, "the fake STS issued nothing"
    secrets = dict(ENV_SECRETS)
    for i, iss in enumerate(issued):
        secrets[f"assumed secret {i}"] = iss.secret_key
        secrets[f"assumed token {i}"] = iss.token
    assert res_ok.results()[0] == [H.FLB_OK], res_ok.describe()
    check(res_ok, secrets, expect_logs=["assume-role", "delivered"], debug=True)
    assert set(res_xml.results()[0]) == {H.FLB_RETRY}, res_xml.describe()
    check(res_xml, secrets, expect_logs=["no usable credentials"])
    assert set(res_403.results()[0]) == {H.FLB_RETRY}, res_403.describe()
    check(res_403, secrets, expect_logs=["AccessDenied"])


def test_container_token_file_and_env_token(recv, tmp_path):
    """Container credentials (AWS_CONTAINER_CREDENTIALS_FULL_URI on loopback) with the
    authorization token from a file, then from AWS_CONTAINER_AUTHORIZATION_TOKEN, then a wrong
    token (403 from the endpoint)."""
    fake = FakeContainer("127.0.0.1", 0, auth_token=CONTAINER_TOKEN, lifetime=3600).start()
    try:
        rcv = recv(credentials=[], require_token=True,
                   extra_credentials=lambda: [i.cred for i in fake.issued()])
        tok = tmp_path / "token"
        tok.write_text(CONTAINER_TOKEN)
        base = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{fake.url}{fake.path}"}
        res_file = run([instance(rcv.endpoint("/logs"))],
                       env=dict(base, AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=str(tok)))
        res_env = run([instance(rcv.endpoint("/logs"))],
                      env=dict(base, AWS_CONTAINER_AUTHORIZATION_TOKEN=CONTAINER_TOKEN))
        bad = tmp_path / "bad-token"
        bad.write_text(CONTAINER_TOKEN[::-1])
        res_bad = run([instance(rcv.endpoint("/logs"))],
                      env=dict(base, AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=str(bad)))
    finally:
        fake.stop()
    secrets = {"container token": CONTAINER_TOKEN, "wrong container token": CONTAINER_TOKEN[::-1]}
    for i, iss in enumerate(fake.issued()):
        secrets[f"container secret {i}"] = iss.secret_key
        secrets[f"container token {i}"] = iss.token
    assert res_file.results()[0] == [H.FLB_OK], res_file.describe()
    assert res_env.results()[0] == [H.FLB_OK], res_env.describe()
    assert set(res_bad.results()[0]) == {H.FLB_RETRY}, res_bad.describe()
    check(res_file, secrets, expect_logs=["container", "delivered"], debug=True)
    check(res_env, secrets, expect_logs=["AWS_CONTAINER_AUTHORIZATION_TOKEN", "delivered"])
    check(res_bad, secrets, expect_logs=["403"])


def test_web_identity_token(recv, tmp_path):
    """AssumeRoleWithWebIdentity with the token from AWS_WEB_IDENTITY_TOKEN_FILE; then a token
    the fake STS refuses (400 InvalidIdentityToken)."""
    sts = FakeSTS("127.0.0.1", 0, lifetime=3600, web_identity_token=WEB_IDENTITY_TOKEN).start()
    try:
        rcv = recv(credentials=[], require_token=True,
                   extra_credentials=lambda: [i.cred for i in sts.issued()])
        tok = tmp_path / "web-identity-token"
        tok.write_text(WEB_IDENTITY_TOKEN)
        env = {"AWS_WEB_IDENTITY_TOKEN_FILE": str(tok), "AWS_ROLE_ARN": ROLE,
               "AWS_ROLE_SESSION_NAME": "flbt-secrets"}
        inst = instance(rcv.endpoint("/logs"), aws_sts_endpoint=sts.url)
        res_ok = run([inst], env=env)
        tok.write_text(WEB_IDENTITY_TOKEN[::-1])
        res_bad = run([inst], env=env)
    finally:
        sts.stop()
    secrets = {"web identity token": WEB_IDENTITY_TOKEN,
               "refused web identity token": WEB_IDENTITY_TOKEN[::-1]}
    for i, iss in enumerate(sts.issued()):
        secrets[f"web identity secret {i}"] = iss.secret_key
        secrets[f"web identity session token {i}"] = iss.token
    assert res_ok.results()[0] == [H.FLB_OK], res_ok.describe()
    assert set(res_bad.results()[0]) == {H.FLB_RETRY}, res_bad.describe()
    check(res_ok, secrets, expect_logs=["web-identity", "delivered"], debug=True)
    check(res_bad, secrets, expect_logs=["InvalidIdentityToken"])


EXPIRED_403 = Response(status=403, body='{"__type":"ExpiredTokenException","message":"The '
                                      'security token included in the request is expired"}')


def test_shared_credentials_file_static_keys(recv, tmp_path):
    """Static keys (with a session token) from a shared credentials file: a delivery after a 403
    (logged with its body); then the same file with a line that has no ``=`` and carries a
    secret (a parse error, which must not quote that line's value); then a profile with a
    secret key but no key id."""
    key, secret, token = STATIC_KEY
    rcv = recv(credentials=[STATIC_KEY], require_token=True)
    rcv.script(Response(status=403, body='{"message":"no permission for this index"}'))
    creds = tmp_path / "credentials"
    env = {"AWS_SHARED_CREDENTIALS_FILE": str(creds),
           "AWS_CONFIG_FILE": str(tmp_path / "no-config")}
    creds.write_text(f"[default]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n"
                     f"aws_session_token = {token}\n")
    res_ok = run([instance(rcv.endpoint("/logs"))], env=env)
    creds.write_text(f"[default]\naws_access_key_id = {key}\n"
                     f"aws_secret_access_key {BROKEN_LINE_SECRET}\n")
    res_broken = run([instance(rcv.endpoint("/logs"))], env=env)
    creds.write_text(f"[default]\naws_secret_access_key = {secret}\n"
                     f"aws_session_token = {token}\n")
    res_half = run([instance(rcv.endpoint("/logs"))], env=env)
    secrets = {"static secret key": secret, "static session token": token,
               "secret on a broken line": BROKEN_LINE_SECRET}
    assert res_ok.returncode == 0 and res_ok.results()[0][-1] == H.FLB_OK, res_ok.describe()
    assert [r.auth_ok for r in rcv.requests()].count(True) >= 2
    check(res_ok, secrets, expect_logs=[str(creds), "HTTP 403", "delivered"], debug=True)
    assert res_broken.returncode == H.EXIT_INIT, res_broken.describe()
    check(res_broken, secrets, expect_logs=[str(creds), "line 3"], min_lines=1)
    assert res_half.returncode == H.EXIT_INIT, res_half.describe()
    check(res_half, secrets, expect_logs=["aws_access_key_id"], min_lines=1)


def test_imds_issued_credentials(recv):
    """EC2 instance metadata (a fake IMDSv2 on loopback, AWS_EC2_METADATA_SERVICE_ENDPOINT):
    delivery with the IMDS-issued credentials, a 403 ExpiredToken (fetched again from IMDS and
    re-sent), then an IMDS credentials document cut short after its secret key. The issued
    secret keys and session tokens and the IMDS session tokens appear nowhere."""
    imds = FakeIMDS("127.0.0.1", 0, lifetime=3600).start()
    try:
        rcv = recv(credentials=[], require_token=True,
                   extra_credentials=lambda: [i.cred for i in imds.issued()])
        rcv.script(EXPIRED_403)
        env = {"AWS_EC2_METADATA_DISABLED": None, "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url}
        inst = instance(rcv.endpoint("/logs"), aws_imds="on")
        res_ok = run([inst], env=env)
        imds.broken_credentials = ('{"Code":"Success","AccessKeyId":"ASIABROKENIMDS000001",'
                                   f'"SecretAccessKey":"{IMDS_BROKEN_SECRET}","Token":')
        res_bad = run([inst], env=env)
    finally:
        imds.stop()
    issued = imds.issued()
    assert len(issued) >= 2, "the ExpiredToken answer did not make the plugin fetch again"
    assert imds.tokens, "no IMDSv2 session token was handed out"
    secrets = {"IMDS secret on a broken document": IMDS_BROKEN_SECRET}
    for i, iss in enumerate(issued):
        secrets[f"imds secret {i}"] = iss.secret_key
        secrets[f"imds session token {i}"] = iss.token
    for i, tok in enumerate(sorted(imds.tokens)):
        secrets[f"IMDSv2 session token {i}"] = tok
    assert res_ok.results()[0][-1] == H.FLB_OK, res_ok.describe()
    assert {r.access_key for r in rcv.accepted()} <= {i.access_key for i in issued}
    check(res_ok, secrets, expect_logs=["imds", "refreshing", "delivered"], debug=True)
    assert set(res_bad.results()[0]) == {H.FLB_RETRY}, res_bad.describe()
    check(res_bad, secrets, expect_logs=["imds", "no usable credentials"])


# -- proxy with a password (network namespace) ---------------------------------------------------


def _ns_skip():
    try:
        from tests.helpers import netns as N
    except ImportError as e:  # pragma: no cover
        return str(e)
    return N.unavailable_reason()


@pytest.mark.skipif(_ns_skip() is not None, reason=f"network namespaces: {_ns_skip()}")
def test_proxy_password(tmp_path):
    """A proxy with user:password (the ``proxy`` property, then HTTPS_PROXY) in front of an https
    endpoint on a non-loopback address: success, then a wrong password (407). The password is
    in no log line, in no form — nor is the base64 of user:password that goes on the wire."""
    from tests.helpers import netns as N
    from tests.helpers import proxy as P

    if not P.available():
        pytest.skip("tinyproxy is not installed")
    remote = "10.201.0.1"
    ns = N.NetNS(addrs=(remote,)).create()
    stop = []
    try:
        tls = F.make_tls_files(tmp_path / "tls", ips=(remote,), names=())
        rcv = ns.call(lambda: F.FaultReceiver(
            bind_host=remote, tls=(str(tls["cert"]), str(tls["key"])), region=REGION,
            service=SERVICE, credentials=[CREDENTIALS], require_token=True).start())
        stop.append(rcv.stop)
        tp = P.Tinyproxy(ns, tmp_path / "tp", user=PROXY_USER, password=PROXY_PASSWORD,
                         connect_ports=(rcv.port,)).start()
        stop.append(tp.stop)
        good = f"http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{tp.port}"
        wrong_pw = PROXY_PASSWORD[::-1]
        bad = f"http://{PROXY_USER}:{wrong_pw}@127.0.0.1:{tp.port}"
        inst = instance(f"{rcv.url}/logs", tls_ca_file=tls["ca"])
        res_prop = run([dict(inst, proxy=good)], env=CREDS_ENV, ns=ns)
        res_env = run([inst], env=dict(CREDS_ENV, HTTPS_PROXY=good), ns=ns)
        res_bad = run([dict(inst, proxy=bad)], env=CREDS_ENV, ns=ns)
        res_bad_env = run([inst], env=dict(CREDS_ENV, HTTPS_PROXY=bad), ns=ns)
    finally:
        for s in reversed(stop):
            s()
        ns.delete()
    secrets = dict(ENV_SECRETS)
    secrets["proxy password"] = PROXY_PASSWORD
    secrets["wrong proxy password"] = wrong_pw
    secrets["basic auth"] = base64.b64encode(f"{PROXY_USER}:{PROXY_PASSWORD}".encode()).decode()
    secrets["basic auth (wrong)"] = base64.b64encode(f"{PROXY_USER}:{wrong_pw}".encode()).decode()
    assert res_prop.results()[0] == [H.FLB_OK], res_prop.describe()
    assert res_env.results()[0] == [H.FLB_OK], res_env.describe()
    assert set(res_bad.results()[0]) == {H.FLB_RETRY}, res_bad.describe()
    assert set(res_bad_env.results()[0]) == {H.FLB_RETRY}, res_bad_env.describe()
    for res in (res_prop, res_env):
        check(res, secrets, expect_logs=[f"{PROXY_USER}:***@", "delivered"], debug=True)
    for res in (res_bad, res_bad_env):
        check(res, secrets, expect_logs=["tunnel", "chunk kept for retry"])


def test_every_host_run_is_scanned_at_trace_level(recv, mock_so, plugin_so):
    """The suite-wide rules are live: a host run without a chosen level logs at trace, and a
    run whose output carries a secret fails — through tests/helpers/host.py and through
    tests/helpers/faults.py (the mock plugin logs a property's value when asked to)."""
    assert H.default_log_level() == "trace"
    assert "Log_Level trace" in H.config_text([{}]), H.config_text([{}])
    rcv = recv(credentials=[CREDENTIALS], require_token=True)
    res = H.run_host([instance(rcv.endpoint("/logs"))], F.numbered_chunks(1, 1),
                     so=plugin_so, env=CREDS_ENV)
    assert res.results() == [[H.FLB_OK]], res.describe()
    assert res.logs("debug"), res.describe()
    leaky = [{"mock_dump": "x_note", "x_note": f"oops-{SECRET_KEY[4:24]}"}]
    with pytest.raises(leaks.SecretLeak, match="conftest.py SECRET_KEY"):
        H.run_host(leaky, so=mock_so)
    with pytest.raises(leaks.SecretLeak, match="conftest.py SECRET_KEY"):
        F.run_host(leaky, so=mock_so)
    # a secret only this run was handed (its environment) is found too
    fresh = "HandedToThisRunOnly/" + token_urlsafe(16)
    with pytest.raises(leaks.SecretLeak, match="AWS_SESSION_TOKEN"):
        H.run_host([{"mock_dump": "x_note", "x_note": fresh}], so=mock_so,
                   env={"AWS_SESSION_TOKEN": fresh})
    assert H.run_host([{"mock_dump": "x_note", "x_note": "harmless"}], so=mock_so).returncode == 0


def test_leak_finder_is_not_blind():
    """The search itself: a planted secret, a JSON-escaped one and a 16-character piece are
    found."""
    blob = (f"[HOST] [debug] key={SECRET_KEY}\n".encode() +
            json.dumps({"x": "prefix " + SESSION_TOKEN[5:30]}).encode())
    hits = find_leaks(blob, ENV_SECRETS)
    assert {h[0] for h in hits} == {"env secret key", "env session token"}
    assert find_leaks(b"nothing here " + ACCESS_KEY.encode(), ENV_SECRETS) == []
    assert find_leaks(urllib.parse.quote(PROXY_PASSWORD + "/x", safe="").encode(),
                      {"p": PROXY_PASSWORD + "/x"})
    assert sys.getdefaultencoding() == "utf-8"
    # the suite-wide scan: a registered secret, and one a run was handed, are found
    assert leaks.REGISTRY.find(f"x {SECRET_KEY[3:25]} y")
    fresh = "RunOnlySecret/" + token_urlsafe(20)  # in no registry: found through the run's env
    with pytest.raises(leaks.SecretLeak):
        leaks.check_run(f"[HOST] [trace] {fresh[2:22]}".encode(),
                        {"AWS_SECRET_ACCESS_KEY": fresh})
    pw = "Passw0rd" + token_urlsafe(12)
    with pytest.raises(leaks.SecretLeak):
        leaks.check_run(base64.b64encode(f"u:{pw}".encode()),
                        {"HTTPS_PROXY": f"http://u:{pw}@127.0.0.1:3128"})
    assert leaks.check_run(b"[HOST] [info] nothing secret", dict(CREDS_ENV)) >= 2
